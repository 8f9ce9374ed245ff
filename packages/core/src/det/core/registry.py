"""The component registry: detectron2's registries, filled lazily from plugin declarations.

A component is found by (kind, name). Plugins declare it as ``(kind, name, "module:attribute")``
and its module is imported only when :func:`get_component` asks for it; user code can also
register objects in-process, detectron2-style::

    from det.core.registry import BACKBONE_REGISTRY, get_component

    @BACKBONE_REGISTRY.register()
    def build_toy_backbone(cfg, input_shape): ...

    get_component("ROI_HEADS", "StandardROIHeads")   # imports det.heads.roi only now

Two providers of one (kind, name) are an error that names both, unless one is chosen with
:func:`prefer` or ``DET_PREFER="ROI_HEADS:StandardROIHeads=det-heads-roi[,KIND:Name=dist...]"``.
Code registered in-process counts as the provider ``"in-process"``.
"""

from __future__ import annotations

import difflib
import fnmatch
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from det.core import plugins

# prefer() and DET_PREFER are choices about plugins, kept (and cleared by reset()) with the others
from det.core.plugins import PREFER_ENV, STANDARD_KINDS, normalize_name, prefer

IN_PROCESS = "in-process"

# Which distribution provides each of detectron2's standard component names: used to tell a user
# what to install when a name is missing.
STANDARD_PROVIDERS: dict[tuple[str, str], str] = {
    ("META_ARCH", "GeneralizedRCNN"): "det-core",
    ("META_ARCH", "ProposalNetwork"): "det-core",
    ("META_ARCH", "SemanticSegmentor"): "det-heads-semseg",
    ("META_ARCH", "PanopticFPN"): "det-heads-semseg",
    ("META_ARCH", "RetinaNet"): "det-heads-retinanet",
    ("BACKBONE", "build_resnet_backbone"): "det-backbones",
    ("BACKBONE", "build_resnet_fpn_backbone"): "det-backbones",
    ("BACKBONE", "build_retinanet_resnet_fpn_backbone"): "det-backbones",
    ("PROPOSAL_GENERATOR", "RPN"): "det-heads-rpn",
    ("PROPOSAL_GENERATOR", "RRPN"): "det-heads-rpn",
    ("RPN_HEAD", "StandardRPNHead"): "det-heads-rpn",
    ("ANCHOR_GENERATOR", "DefaultAnchorGenerator"): "det-core",
    ("ANCHOR_GENERATOR", "RotatedAnchorGenerator"): "det-core",
    ("ROI_HEADS", "StandardROIHeads"): "det-heads-roi",
    ("ROI_HEADS", "Res5ROIHeads"): "det-heads-roi",
    ("ROI_HEADS", "CascadeROIHeads"): "det-heads-roi",
    ("ROI_HEADS", "RROIHeads"): "det-heads-roi",
    ("ROI_BOX_HEAD", "FastRCNNConvFCHead"): "det-heads-roi",
    ("ROI_MASK_HEAD", "MaskRCNNConvUpsampleHead"): "det-heads-mask",
    ("ROI_KEYPOINT_HEAD", "KRCNNConvDeconvUpsampleHead"): "det-heads-keypoint",
    ("SEM_SEG_HEADS", "SemSegFPNHead"): "det-heads-semseg",
}

# Which distribution adds each config key (or whole section, by prefix) that detectron2's projects
# add with their add_*_config(), or that det's own distributions add: used to tell a user what to
# install when a YAML names a key no installed plugin added. A key added by several distributions
# maps to all of them.
STANDARD_CONFIG_PROVIDERS: dict[str, str | tuple[str, ...]] = {
    "DATALOADER.AUGMENTATION_RNG": "det-data",
    "MODEL.TORCHVISION_BACKBONE": "det-backbones",
    "MODEL.POINT_HEAD": "det-pointrend",
    "MODEL.IMPLICIT_POINTREND": "det-pointrend",
    "MODEL.ROI_MASK_HEAD.IN_FEATURES": "det-pointrend",
    "MODEL.ROI_MASK_HEAD.FC_DIM": "det-pointrend",
    "MODEL.ROI_MASK_HEAD.NUM_FC": "det-pointrend",
    "MODEL.ROI_MASK_HEAD.OUTPUT_SIDE_RESOLUTION": "det-pointrend",
    "MODEL.ROI_MASK_HEAD.POINT_HEAD_ON": "det-pointrend",
    "INPUT.COLOR_AUG_SSD": "det-pointrend",
    "INPUT.CROP.SINGLE_CATEGORY_MAX_AREA": ("det-pointrend", "det-deeplab"),
    "MODEL.TRIDENT": "det-tridentnet",
    "SOLVER.POLY_LR_POWER": "det-deeplab",
    "SOLVER.POLY_LR_CONSTANT_ENDING": "det-deeplab",
    "MODEL.SEM_SEG_HEAD.LOSS_TYPE": "det-deeplab",
    "MODEL.SEM_SEG_HEAD.PROJECT_FEATURES": "det-deeplab",
    "MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS": "det-deeplab",
    "MODEL.SEM_SEG_HEAD.ASPP_CHANNELS": "det-deeplab",
    "MODEL.SEM_SEG_HEAD.ASPP_DILATIONS": "det-deeplab",
    "MODEL.SEM_SEG_HEAD.ASPP_DROPOUT": "det-deeplab",
    "MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV": "det-deeplab",
    "MODEL.RESNETS.RES4_DILATION": "det-deeplab",
    "MODEL.RESNETS.RES5_MULTI_GRID": "det-deeplab",
    "MODEL.RESNETS.STEM_TYPE": "det-deeplab",
    "INPUT.GAUSSIAN_SIGMA": "det-panoptic-deeplab",
    "INPUT.IGNORE_STUFF_IN_OFFSET": "det-panoptic-deeplab",
    "INPUT.SMALL_INSTANCE_AREA": "det-panoptic-deeplab",
    "INPUT.SMALL_INSTANCE_WEIGHT": "det-panoptic-deeplab",
    "INPUT.IGNORE_CROWD_IN_SEMANTIC": "det-panoptic-deeplab",
    "SOLVER.OPTIMIZER": "det-panoptic-deeplab",
    "MODEL.SEM_SEG_HEAD.HEAD_CHANNELS": "det-panoptic-deeplab",
    "MODEL.SEM_SEG_HEAD.LOSS_TOP_K": "det-panoptic-deeplab",
    "MODEL.INS_EMBED_HEAD": "det-panoptic-deeplab",
    "MODEL.PANOPTIC_DEEPLAB": "det-panoptic-deeplab",
}

# STANDARD_PROVIDERS' twin for the components of detectron2's projects, each a plugin distribution (with kinds
# beyond detectron2's registries: LR_SCHEDULER for SOLVER.LR_SCHEDULER_NAME, INS_EMBED_BRANCHES
# for Panoptic-DeepLab).
STANDARD_PROJECT_PROVIDERS: dict[tuple[str, str], str] = {
    ("ROI_HEADS", "PointRendROIHeads"): "det-pointrend",
    ("ROI_MASK_HEAD", "PointRendMaskHead"): "det-pointrend",
    ("ROI_MASK_HEAD", "ImplicitPointRendMaskHead"): "det-pointrend",
    ("SEM_SEG_HEADS", "PointRendSemSegHead"): "det-pointrend",
    ("BACKBONE", "build_trident_resnet_backbone"): "det-tridentnet",
    ("PROPOSAL_GENERATOR", "TridentRPN"): "det-tridentnet",
    ("ROI_HEADS", "TridentRes5ROIHeads"): "det-tridentnet",
    ("ROI_HEADS", "TridentStandardROIHeads"): "det-tridentnet",
    ("BACKBONE", "build_resnet_deeplab_backbone"): "det-deeplab",
    ("SEM_SEG_HEADS", "DeepLabV3Head"): "det-deeplab",
    ("SEM_SEG_HEADS", "DeepLabV3PlusHead"): "det-deeplab",
    ("LR_SCHEDULER", "WarmupPolyLR"): "det-deeplab",
    ("META_ARCH", "PanopticDeepLab"): "det-panoptic-deeplab",
    ("SEM_SEG_HEADS", "PanopticDeepLabSemSegHead"): "det-panoptic-deeplab",
    ("INS_EMBED_BRANCHES", "PanopticDeepLabInsEmbedHead"): "det-panoptic-deeplab",
}


class ComponentNotFoundError(KeyError, LookupError):
    """No installed component has this (kind, name). A KeyError, as detectron2's Registry.get
    raises; the message lists what is installed and, for a standard name, what to pip install."""

    def __init__(self, message: str, kind: str, name: str, distribution: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.name = name
        self.distribution = distribution

    def __str__(self) -> str:
        return str(self.args[0])


class ComponentConflictError(LookupError):
    """Two or more distributions provide the same (kind, name) and none was chosen."""

    def __init__(self, message: str, kind: str, name: str, distributions: list[str]) -> None:
        super().__init__(message)
        self.kind = kind
        self.name = name
        self.distributions = distributions


@dataclass(frozen=True)
class ComponentInfo:
    """One provider of a component: ``target`` is "module:attribute"; nothing is imported."""

    kind: str
    name: str
    target: str
    distribution: str


# in-process registrations: kind -> name -> object
_in_process: dict[str, dict[str, Any]] = {}
_lock = threading.RLock()
# (kind, name, distribution, target) -> imported object
_imported: dict[tuple[str, str, str, str], Any] = {}


def _target_of(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', getattr(obj, '__name__', repr(obj)))}"


def _providers(kind: str, name: str) -> list[tuple[ComponentInfo, Any]]:
    """(info, in-process object or None) of every provider of (kind, name); a plugin declaring the
    very object that was also registered in-process counts once."""
    found: list[tuple[ComponentInfo, Any]] = []
    targets: set[str] = set()
    obj = _in_process.get(kind, {}).get(name)
    if obj is not None:
        target = _target_of(obj)
        found.append((ComponentInfo(kind, name, target, IN_PROCESS), obj))
        targets.add(target)
    seen: set[tuple[str, str]] = set()
    for decl in plugins.component_declarations():
        if decl.kind != kind or decl.name != name:
            continue
        key = (normalize_name(decl.distribution), decl.target)
        if decl.target in targets or key in seen:
            continue
        seen.add(key)
        found.append((ComponentInfo(kind, name, decl.target, decl.distribution), None))
    return found


def known_kinds() -> list[str]:
    """Standard kinds, then any other kind a plugin declares, user code registers or
    :data:`STANDARD_PROJECT_PROVIDERS` names (so a missing project's component gets its install
    hint)."""
    kinds = list(STANDARD_KINDS)
    declared = [d.kind for d in plugins.component_declarations()]
    for kind in [*_in_process, *declared, *(k for k, _ in STANDARD_PROJECT_PROVIDERS)]:
        if kind not in kinds:
            kinds.append(kind)
    return kinds


def _check_kind(kind: Any) -> None:
    if not isinstance(kind, str):
        raise TypeError(f"A component kind is a string like 'BACKBONE', got {kind!r}")
    kinds = known_kinds()
    if kind not in kinds:
        close = difflib.get_close_matches(kind, kinds, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown component kind {kind!r}.{hint} Known kinds: {', '.join(kinds)}")


def _hint_for_missing(kind: str, name: str) -> tuple[str, str | None]:
    """Advice on how to get (kind, name), and the distribution that provides it if standard."""
    dist = STANDARD_PROVIDERS.get((kind, name)) or STANDARD_PROJECT_PROVIDERS.get((kind, name))
    if dist is None:
        return "", None
    return install_advice(dist), dist


def config_key_provider(full_key: str) -> tuple[str, ...]:
    """The distributions that add config key ``full_key`` (longest matching prefix of
    :data:`STANDARD_CONFIG_PROVIDERS`, at a dot boundary); empty when none is known.

        config_key_provider("MODEL.POINT_HEAD.NUM_CLASSES")   # ("det-pointrend",)
    """
    parts = full_key.split(".")
    for end in range(len(parts), 0, -1):
        found = STANDARD_CONFIG_PROVIDERS.get(".".join(parts[:end]))
        if found is not None:
            return (found,) if isinstance(found, str) else tuple(found)
    return ()


def config_key_hint(full_key: str) -> tuple[str, tuple[str, ...]]:
    """Advice on how to get config key ``full_key`` and the distributions that add it (("", ())
    when no distribution is known to add it): installed but disabled or failed, or what to
    pip install."""
    dists = config_key_provider(full_key)
    if not dists:
        return "", ()
    if len(dists) == 1:
        return install_advice(dists[0], what="This key is added by"), dists
    # several providers: say what is wrong with the installed ones, else how to install any
    present = [install_advice(d, what="This key is added by") for d in dists if _installed_plugin(d) is not None]
    if present:
        return "".join(present), dists
    return (f" This key is added by any of the distributions {' or '.join(dists)}; install one, e.g.: "
            f"pip install {dists[0]}"), dists


def _installed_plugin(dist: str) -> Any:
    """The plugin record (det.core.plugins.list_plugins()) of installed distribution ``dist``, or
    None when it is not installed."""
    wanted = normalize_name(dist)
    return next((p for p in plugins.list_plugins() if normalize_name(p.distribution) == wanted), None)


def install_advice(dist: str, what: str = "It is provided by") -> str:
    """One sentence: ``dist`` is installed but disabled / failed / too old, or how to install it."""
    plugin = _installed_plugin(dist)
    status = plugin.status if plugin is not None else None
    if status == "disabled":
        return (f" {what} {dist}, which is installed but disabled (check {plugins.DISABLE_ENV} "
                "and det.core.plugins.disable()).")
    if status == "failed":
        return f" {what} {dist}, which is installed but failed to load: {plugin.error}"
    if status == "loaded":
        return (f" {what} {dist}, but the installed version ({plugin.version}) does not declare "
                f"it; upgrade it with: pip install -U {dist}")
    return f" {what} the distribution {dist}; install it with: pip install {dist}"


def get_component(kind: str, name: str) -> Any:
    """The object registered as (kind, name), importing its module now if it was declared by a
    plugin. Raises ComponentNotFoundError (with what is installed and what to install),
    ComponentConflictError (several providers, none chosen) or ImportError (it failed to import,
    naming its distribution).

        build = get_component("BACKBONE", "build_resnet_fpn_backbone")
    """
    _check_kind(kind)
    if not isinstance(name, str):
        raise TypeError(f"A component name is a string, got {name!r}")
    providers = _providers(kind, name)
    if not providers:
        installed = sorted({info.name for info in list_components(kind)})
        advice, dist = _hint_for_missing(kind, name)
        if dist is None:
            close = difflib.get_close_matches(name, installed, n=1)
            if close:
                advice = f" Did you mean {close[0]!r}?"
            else:
                elsewhere = sorted({info.kind for info in list_components() if info.name == name}
                                   | {k for (k, n) in [*STANDARD_PROVIDERS, *STANDARD_PROJECT_PROVIDERS] if n == name})
                if elsewhere:
                    advice = f" {name!r} is a {' / '.join(elsewhere)} component, not {kind}."
        listing = ", ".join(installed) if installed else "(none)"
        failed = sorted({p.distribution for p in plugins.list_plugins() if p.status == "failed"})
        if failed and dist is None:
            advice += f" Plugins that failed to load (see `det plugins`): {', '.join(failed)}."
        raise ComponentNotFoundError(
            f"No {kind} component named {name!r} is installed. Installed {kind} components: {listing}.{advice}",
            kind, name, dist)
    if len(providers) > 1:
        dists = [info.distribution for info, _ in providers]
        wanted = plugins.preferences().get((kind, name))
        chosen = [p for p in providers if wanted is not None and normalize_name(p[0].distribution) == normalize_name(wanted)]
        if not chosen:
            listing = ", ".join(f"{info.distribution} ({info.target})" for info, _ in providers)
            why = (f"The preferred distribution {wanted!r} is not one of them. " if wanted else "")
            raise ComponentConflictError(
                f"{kind} component {name!r} is provided by several distributions: {listing}. {why}Choose one with "
                f"det.core.registry.prefer({kind!r}, {name!r}, {dists[0]!r}) or the environment variable "
                f"{PREFER_ENV}={kind}:{name}={dists[0]}, or uninstall/disable the others "
                f"({plugins.DISABLE_ENV}).", kind, name, dists)
        providers = chosen[:1]
    info, obj = providers[0]
    if obj is not None:
        return obj
    key = (kind, name, info.distribution, info.target)
    if key not in _imported:
        # Converters are handed to det.checkpoint here: building a component means torch is in use.
        plugins.register_checkpoint_converters()
        _imported[key] = plugins.load_target(info.target, info.distribution, what=f"{kind} component {name!r}")
    return _imported[key]


def list_components(kind: str | None = None, pattern: str | None = None) -> list[ComponentInfo]:
    """Every provider of every component (of ``kind``; names matching the glob ``pattern``),
    sorted by kind and name; nothing is imported.

        [c.name for c in list_components("BACKBONE")]
    """
    if kind is not None:
        _check_kind(kind)
    found: list[ComponentInfo] = []
    for k, objs in _in_process.items():
        for n, obj in objs.items():
            found.append(ComponentInfo(k, n, _target_of(obj), IN_PROCESS))
    targets = {(i.kind, i.name, i.target) for i in found}
    for decl in plugins.component_declarations():
        if (decl.kind, decl.name, decl.target) in targets:
            continue
        targets.add((decl.kind, decl.name, decl.target))
        found.append(ComponentInfo(decl.kind, decl.name, decl.target, decl.distribution))
    if kind is not None:
        found = [i for i in found if i.kind == kind]
    if pattern is not None:
        found = [i for i in found if fnmatch.fnmatchcase(i.name, pattern)]
    order = {k: i for i, k in enumerate(known_kinds())}
    return sorted(found, key=lambda i: (order.get(i.kind, len(order)), i.kind, i.name, i.distribution))


class Registry:
    """A view of one kind of component, with detectron2's Registry interface.

    Invariant: ``get(name)`` returns what ``get_component(kind, name)`` returns; ``register()``
    adds an object in-process (no plugin needed), refusing a name already registered in-process.

        MY_REGISTRY = Registry("BACKBONE")
        @MY_REGISTRY.register()
        def build_toy(cfg, input_shape): ...
    """

    def __init__(self, name: str, doc: str | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"A Registry is named by its kind (e.g. 'BACKBONE'), got {name!r}")
        self._name = name
        if doc is not None:
            self.__doc__ = doc
        with _lock:
            _in_process.setdefault(name, {})

    @property
    def name(self) -> str:
        return self._name

    def _do_register(self, name: str, obj: Any) -> None:
        with _lock:
            objs = _in_process.setdefault(self._name, {})
            if name in objs and objs[name] is not obj:
                raise ValueError(f"An object named {name!r} was already registered in the {self._name} "
                                 f"registry ({_target_of(objs[name])})")
            objs[name] = obj

    def register(self, obj: Any = None, *, name: str | None = None) -> Any:
        """Register ``obj`` under its ``__name__`` (or ``name``); without ``obj``, a decorator."""
        if obj is None:
            def deco(func_or_class: Any) -> Any:
                self._do_register(name or func_or_class.__name__, func_or_class)
                return func_or_class

            return deco
        self._do_register(name or obj.__name__, obj)
        return obj

    def get(self, name: str) -> Any:
        return get_component(self._name, name)

    def names(self) -> list[str]:
        """Names available for this kind (declared or registered), without importing anything."""
        return sorted({info.name for info in list_components(self._name)})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """(name, object) pairs, as detectron2's Registry; this imports every component."""
        return iter([(n, self.get(n)) for n in self.names()])

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        rows = "".join(f"\n  {i.name}: {i.target} [{i.distribution}]" for i in list_components(self._name))
        return f"Registry of {self._name}:{rows}"

    __str__ = __repr__


# detectron2's registries: each a view of one kind, documented with what its components are called with
META_ARCH_REGISTRY = Registry(
    "META_ARCH", doc="Meta-architectures (the whole model): called with ``cfg``, returns an nn.Module."
)
BACKBONE_REGISTRY = Registry(
    "BACKBONE", doc="Backbones: called with ``(cfg, input_shape)``, returns a Backbone."
)
PROPOSAL_GENERATOR_REGISTRY = Registry(
    "PROPOSAL_GENERATOR", doc="Proposal generators: called with ``(cfg, input_shape)``."
)
RPN_HEAD_REGISTRY = Registry("RPN_HEAD", doc="RPN heads: called with ``(cfg, input_shape)``.")
ANCHOR_GENERATOR_REGISTRY = Registry(
    "ANCHOR_GENERATOR", doc="Anchor generators: called with ``(cfg, input_shape)``."
)
ROI_HEADS_REGISTRY = Registry("ROI_HEADS", doc="ROI heads: called with ``(cfg, input_shape)``.")
ROI_BOX_HEAD_REGISTRY = Registry("ROI_BOX_HEAD", doc="Box heads: called with ``(cfg, input_shape)``.")
ROI_MASK_HEAD_REGISTRY = Registry("ROI_MASK_HEAD", doc="Mask heads: called with ``(cfg, input_shape)``.")
ROI_KEYPOINT_HEAD_REGISTRY = Registry(
    "ROI_KEYPOINT_HEAD", doc="Keypoint heads: called with ``(cfg, input_shape)``."
)
SEM_SEG_HEADS_REGISTRY = Registry(
    "SEM_SEG_HEADS", doc="Semantic segmentation heads: called with ``(cfg, input_shape)``."
)


def _forget_imports() -> None:
    _imported.clear()


plugins.on_reset(_forget_imports)


__all__ = [
    "ANCHOR_GENERATOR_REGISTRY",
    "BACKBONE_REGISTRY",
    "IN_PROCESS",
    "META_ARCH_REGISTRY",
    "PREFER_ENV",
    "PROPOSAL_GENERATOR_REGISTRY",
    "ROI_BOX_HEAD_REGISTRY",
    "ROI_HEADS_REGISTRY",
    "ROI_KEYPOINT_HEAD_REGISTRY",
    "ROI_MASK_HEAD_REGISTRY",
    "RPN_HEAD_REGISTRY",
    "SEM_SEG_HEADS_REGISTRY",
    "STANDARD_CONFIG_PROVIDERS",
    "STANDARD_PROJECT_PROVIDERS",
    "STANDARD_PROVIDERS",
    "ComponentConflictError",
    "ComponentInfo",
    "ComponentNotFoundError",
    "Registry",
    "config_key_provider",
    "get_component",
    "install_advice",
    "known_kinds",
    "list_components",
    "prefer",
]
