"""det.core.registry in the main environment: in-process registration, errors, core's declarations."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from det.core import registry
from det.core.registry import (
    BACKBONE_REGISTRY,
    IN_PROCESS,
    META_ARCH_REGISTRY,
    ComponentConflictError,
    ComponentInfo,
    ComponentNotFoundError,
    Registry,
    get_component,
    list_components,
    prefer,
)


@pytest.fixture(autouse=True)
def _clean(fresh_plugins):
    yield


def test_core_declares_its_components():
    metas = {i.name: i for i in list_components("META_ARCH") if i.distribution == "det-core"}
    assert metas == {
        "GeneralizedRCNN": ComponentInfo("META_ARCH", "GeneralizedRCNN",
                                         "det.core.modeling.meta_arch:GeneralizedRCNN", "det-core"),
        "ProposalNetwork": ComponentInfo("META_ARCH", "ProposalNetwork",
                                         "det.core.modeling.meta_arch:ProposalNetwork", "det-core"),
    }
    anchors = [(i.name, i.target) for i in list_components("ANCHOR_GENERATOR") if i.distribution == "det-core"]
    assert anchors == [
        ("DefaultAnchorGenerator", "det.core.modeling.anchor_generator:DefaultAnchorGenerator"),
        ("RotatedAnchorGenerator", "det.core.modeling.anchor_generator:RotatedAnchorGenerator"),
    ]
    assert len([i for i in list_components() if i.distribution == "det-core"]) == 4
    assert "GeneralizedRCNN" in META_ARCH_REGISTRY


def test_every_standard_name_has_a_provider_hint(reference_dir: Path):
    names = set()
    for line in (reference_dir / "detectron2_registry_names.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            kind, _, rest = line.partition(":")
            names |= {(kind.strip(), n.strip()) for n in rest.split(",")}
    assert len(names) == 21
    assert names == set(registry.STANDARD_PROVIDERS)
    # detectron2's projects' components are in their own table, each provided by a distribution of
    # packages/projects/ (what the hint tells a user to install must exist)
    projects = {tomllib.loads(p.read_text())["project"]["name"]
                for p in (Path(__file__).resolve().parents[2] / "packages/projects").glob("*/pyproject.toml")}
    assert set(registry.STANDARD_PROJECT_PROVIDERS.values()) == projects
    assert not names & set(registry.STANDARD_PROJECT_PROVIDERS)
    assert registry.STANDARD_PROJECT_PROVIDERS[("ROI_MASK_HEAD", "PointRendMaskHead")] == "det-pointrend"
    assert registry.STANDARD_PROVIDERS[("ROI_KEYPOINT_HEAD", "KRCNNConvDeconvUpsampleHead")] == "det-heads-keypoint"
    assert registry.STANDARD_PROVIDERS[("META_ARCH", "PanopticFPN")] == "det-heads-semseg"
    assert registry.STANDARD_PROVIDERS[("ANCHOR_GENERATOR", "RotatedAnchorGenerator")] == "det-core"


def test_in_process_registration_detectron2_style():
    @BACKBONE_REGISTRY.register()
    def build_my_backbone(cfg, input_shape):
        return "mine"

    class MyThing:
        pass

    assert BACKBONE_REGISTRY.register(MyThing) is MyThing
    BACKBONE_REGISTRY.register(MyThing, name="AliasThing")
    assert BACKBONE_REGISTRY.get("build_my_backbone") is build_my_backbone
    assert get_component("BACKBONE", "MyThing") is MyThing
    assert get_component("BACKBONE", "AliasThing") is MyThing
    assert "build_my_backbone" in BACKBONE_REGISTRY and 3 not in BACKBONE_REGISTRY
    info = list_components("BACKBONE", pattern="build_my_*")
    assert info == [ComponentInfo("BACKBONE", "build_my_backbone",
                                  f"{__name__}:test_in_process_registration_detectron2_style.<locals>.build_my_backbone",
                                  IN_PROCESS)]
    # registering the same object again is harmless; another object under the name is refused
    BACKBONE_REGISTRY.register(build_my_backbone)
    with pytest.raises(ValueError, match="An object named 'MyThing' was already registered in the BACKBONE registry"):
        BACKBONE_REGISTRY.register(name="MyThing")(lambda cfg, shape: None)


def test_registry_views_share_one_kind_and_new_kinds_appear():
    my = Registry("MY_HEADS")
    assert "MY_HEADS" in registry.known_kinds()

    @my.register()
    class Head:
        pass

    assert Registry("MY_HEADS").get("Head") is Head
    assert get_component("MY_HEADS", "Head") is Head
    assert my.names() == ["Head"] and len(my) == 1 and list(my) == [("Head", Head)]
    assert "Head: " in repr(my) and "[in-process]" in repr(my)
    with pytest.raises(TypeError, match="A Registry is named by its kind"):
        Registry("")


def test_unknown_name_lists_installed_and_suggests():
    @BACKBONE_REGISTRY.register()
    def build_toy_backbone(cfg, input_shape):
        return None

    with pytest.raises(ComponentNotFoundError) as info:
        get_component("BACKBONE", "build_toy_backbon")
    message = str(info.value)
    assert message.startswith("No BACKBONE component named 'build_toy_backbon' is installed. Installed BACKBONE "
                              "components: ")
    assert "build_toy_backbone" in message and message.endswith("Did you mean 'build_toy_backbone'?")
    assert isinstance(info.value, KeyError)  # detectron2's Registry.get raises KeyError
    assert (info.value.kind, info.value.name, info.value.distribution) == ("BACKBONE", "build_toy_backbon", None)


def test_missing_standard_name_names_its_distribution(fresh_plugins, monkeypatch):
    from det.core import registry

    # other test modules register heads in-process for the whole session; this message lists none
    monkeypatch.setattr(registry, "_in_process", {})
    fresh_plugins.disable("det-heads-keypoint")
    with pytest.raises(ComponentNotFoundError) as info:
        get_component("ROI_KEYPOINT_HEAD", "KRCNNConvDeconvUpsampleHead")
    assert str(info.value) == (
        "No ROI_KEYPOINT_HEAD component named 'KRCNNConvDeconvUpsampleHead' is installed. Installed "
        "ROI_KEYPOINT_HEAD components: (none). It is provided by det-heads-keypoint, which is installed but "
        "disabled (check DET_DISABLE_PLUGINS and det.core.plugins.disable()).")
    assert info.value.distribution == "det-heads-keypoint"
    # the never-installed case ("pip install det-heads-keypoint") runs in tests/integration/test_plugin_wheels.py


def test_standard_name_missing_from_an_installed_provider_asks_for_an_upgrade():
    from det.core import plugins

    state = plugins._get_state()
    state.components[:] = [d for d in state.components if d.name != "GeneralizedRCNN"]
    with pytest.raises(ComponentNotFoundError) as info:
        get_component("META_ARCH", "GeneralizedRCNN")
    assert str(info.value).endswith("It is provided by det-core, but the installed version (0.1.0) does not "
                                    "declare it; upgrade it with: pip install -U det-core")


def test_name_of_another_kind_is_pointed_out():
    with pytest.raises(ComponentNotFoundError, match="'StandardRPNHead' is a RPN_HEAD component, not META_ARCH"):
        get_component("META_ARCH", "StandardRPNHead")


def test_bad_kinds_and_names():
    with pytest.raises(ValueError, match=r"Unknown component kind 'BACKBON'\. Did you mean 'BACKBONE'\? Known kinds: "
                                         r"META_ARCH, BACKBONE, "):
        get_component("BACKBON", "x")
    with pytest.raises(TypeError, match="A component kind is a string"):
        get_component(3, "x")
    with pytest.raises(TypeError, match="A component name is a string"):
        get_component("BACKBONE", None)
    with pytest.raises(ValueError, match="Unknown component kind"):
        list_components("NOPE")


def test_in_process_object_conflicts_with_a_plugin_until_preferred():
    class GeneralizedRCNN:
        pass

    META_ARCH_REGISTRY.register(GeneralizedRCNN)
    with pytest.raises(ComponentConflictError) as info:
        META_ARCH_REGISTRY.get("GeneralizedRCNN")
    assert info.value.distributions == ["in-process", "det-core"]
    assert "det-core (det.core.modeling.meta_arch:GeneralizedRCNN)" in str(info.value)
    prefer("META_ARCH", "GeneralizedRCNN", "in-process")
    assert META_ARCH_REGISTRY.get("GeneralizedRCNN") is GeneralizedRCNN
    with pytest.raises(TypeError, match="prefer\\(\\) needs a non-empty string distribution"):
        prefer("META_ARCH", "GeneralizedRCNN", "")


def test_preferences_live_with_the_plugin_state(monkeypatch):
    """prefer() and DET_PREFER are kept by det.core.plugins, under its lock, next to disable():
    disabling keeps the choices, reset() forgets them, and the API wins over the environment."""
    from det.core import plugins

    assert registry.prefer is plugins.prefer and registry.PREFER_ENV == plugins.PREFER_ENV == "DET_PREFER"
    monkeypatch.setenv("DET_PREFER", "ROI_HEADS:StandardROIHeads=det-a, BACKBONE:b=det-b")
    prefer("ROI_HEADS", "StandardROIHeads", "det-c")
    assert plugins.preferences() == {("ROI_HEADS", "StandardROIHeads"): "det-c", ("BACKBONE", "b"): "det-b"}
    plugins.disable("det-nothing")
    assert plugins.preferences()[("ROI_HEADS", "StandardROIHeads")] == "det-c"
    plugins.reset()
    assert plugins.preferences() == {("ROI_HEADS", "StandardROIHeads"): "det-a", ("BACKBONE", "b"): "det-b"}
    monkeypatch.setenv("DET_PREFER", "ROI_HEADS=det-a")
    with pytest.raises(ValueError, match="DET_PREFER entry 'ROI_HEADS=det-a' is malformed; expected "
                                         "KIND:Name=distribution"):
        plugins.preferences()


def test_import_failure_names_the_distribution():
    # det-core declares it; whether or not det.core.modeling exists yet, a bad attribute fails cleanly
    bad = Registry("BAD_KIND")
    with pytest.raises(ComponentNotFoundError, match=r"Installed BAD_KIND components: \(none\)\."):
        bad.get("x")
    from det.core import plugins

    with pytest.raises(ImportError, match=r"Cannot import thing 'det.core.nowhere:X' \(declared by det-x\): "
                                          "ModuleNotFoundError"):
        plugins.load_target("det.core.nowhere:X", "det-x", what="thing")
