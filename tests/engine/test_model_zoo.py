"""det.model_zoo: detectron2's model_zoo API over a configs folder det does not ship.

Configs come from ../shared/detectron2-configs (set as $DET_MODEL_ZOO_CONFIGS by a fixture). Nothing
is downloaded: checkpoint downloads are made to fail, and the tests that load weights put small
stand-in files where det's cache keeps a download of that URL.
"""

from __future__ import annotations

import os
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import det.checkpoint.file_io
from det import model_zoo
from det.core.config import CfgNode
from det.model_zoo.checkpoints import PUBLISHED_CHECKPOINTS, published_names

SHARED = Path(os.environ.get("DET_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
CONFIGS_ROOT = SHARED / "detectron2-configs"
ZOO_YAMLS = sorted(p.relative_to(CONFIGS_ROOT).as_posix() for p in CONFIGS_ROOT.rglob("*.yaml"))

# The YAMLs of detectron2's configs/ for which detectron2 published no trained model: bases,
# the quick_schedules used by detectron2's own CI, and a few configs without released weights.
WITHOUT_PUBLISHED_MODEL = {
    "Base-RCNN-C4.yaml",
    "Base-RCNN-DilatedC5.yaml",
    "Base-RCNN-FPN.yaml",
    "Base-RetinaNet.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x_giou.yaml",
    "COCO-Keypoints/Base-Keypoint-RCNN-FPN.yaml",
    "COCO-PanopticSegmentation/Base-Panoptic-FPN.yaml",
    "LVISv1-InstanceSegmentation/mask_rcnn_R_101_FPN_1x.yaml",
    "LVISv1-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml",
    "LVISv1-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_1x.yaml",
    "Misc/mask_rcnn_R_50_FPN_1x_cls_agnostic.yaml",
    "Misc/semantic_R_50_FPN_1x.yaml",
    "PascalVOC-Detection/faster_rcnn_R_50_FPN.yaml",
} | {name for name in ZOO_YAMLS if name.startswith("quick_schedules/")}

SMALL = "COCO-Detection/rpn_R_50_FPN_1x.yaml"  # ProposalNetwork R50-FPN: builds in a fraction of a second


@pytest.fixture(autouse=True)
def zoo_env(monkeypatch, configs_dir, tmp_path):
    """The shared configs as the zoo, an empty cache, and no network."""
    monkeypatch.setenv(model_zoo.CONFIGS_ENV_VAR, str(configs_dir))
    monkeypatch.setenv("DET_CACHE", str(tmp_path / "cache"))

    def no_download(url, *args, **kwargs):
        raise AssertionError(f"test tried to download {url}")

    monkeypatch.setattr(det.checkpoint.file_io, "download", no_download)


def _cached(tmp_path: Path, url: str) -> Path:
    """Where det's cache keeps the download of ``url`` (``<cache>/<URL path>``)."""
    prefix = "https://dl.fbaipublicfiles.com/"
    assert url.startswith(prefix)
    path = tmp_path / "cache" / url[len(prefix):]
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_from_det_import_model_zoo():
    import det.model_zoo

    assert model_zoo is det.model_zoo
    for name in ("get_config_file", "get_checkpoint_url", "get_config", "get"):
        assert callable(getattr(model_zoo, name))


# --- get_config_file / get_config --------------------------------------------------------------


def test_shared_configs_are_detectrons_92():
    assert len(ZOO_YAMLS) == 92


@pytest.mark.parametrize("name", ZOO_YAMLS)
def test_every_zoo_yaml_resolves_and_loads(name):
    path = model_zoo.get_config_file(name)
    assert Path(path) == CONFIGS_ROOT / name
    cfg = model_zoo.get_config(name)
    assert isinstance(cfg, CfgNode)
    assert cfg.MODEL.META_ARCHITECTURE


def test_get_config_follows_base_relative_to_the_file():
    cfg = model_zoo.get_config("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
    assert cfg.MODEL.BACKBONE.NAME == "build_resnet_fpn_backbone"  # from ../Base-RCNN-FPN.yaml
    assert cfg.MODEL.MASK_ON is True and cfg.MODEL.RESNETS.DEPTH == 50  # from the file itself
    assert tuple(cfg.SOLVER.STEPS) == (210000, 250000)
    # trained=False keeps the file's MODEL.WEIGHTS (the ImageNet backbone), as detectron2 does
    assert cfg.MODEL.WEIGHTS == "detectron2://ImageNetPretrained/MSRA/R-50.pkl"


def test_get_config_trained_sets_the_published_weights():
    name = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
    cfg = model_zoo.get_config(name, trained=True)
    weights = cfg.MODEL.WEIGHTS
    assert weights == model_zoo.get_checkpoint_url(name)
    assert weights.endswith("/137849600/model_final_f10217.pkl")


def test_get_config_trained_without_published_model_raises():
    with pytest.raises(RuntimeError, match="not available"):
        model_zoo.get_config("Misc/semantic_R_50_FPN_1x.yaml", trained=True)


def test_configs_root_argument_wins_over_the_environment(tmp_path):
    (tmp_path / "Mine").mkdir()
    (tmp_path / "Mine" / "tiny.yaml").write_text("_BASE_: ../base.yaml\nMODEL:\n  MASK_ON: True\n")
    (tmp_path / "base.yaml").write_text("MODEL:\n  META_ARCHITECTURE: ProposalNetwork\n")
    assert model_zoo.get_config_file("Mine/tiny.yaml", configs_root=tmp_path) == str(tmp_path / "Mine" / "tiny.yaml")
    cfg = model_zoo.get_config("Mine/tiny.yaml", configs_root=tmp_path)
    assert cfg.MODEL.META_ARCHITECTURE == "ProposalNetwork" and cfg.MODEL.MASK_ON is True
    with pytest.raises(model_zoo.ConfigNotFoundError):  # the shared zoo is not consulted
        model_zoo.get_config_file(SMALL, configs_root=tmp_path)


def test_an_installed_detectron2s_configs_are_found_without_importing_it(monkeypatch, tmp_path):
    package = tmp_path / "site" / "detectron2"
    (package / "model_zoo" / "configs" / "COCO-Detection").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('det imported detectron2')\n")
    wanted = package / "model_zoo" / "configs" / "COCO-Detection" / "tiny.yaml"
    wanted.write_text("MODEL:\n  MASK_ON: True\n")
    monkeypatch.delenv(model_zoo.CONFIGS_ENV_VAR)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert model_zoo.get_config_file("COCO-Detection/tiny.yaml") == str(wanted)
    # never imported (det-compat-detectron2's `detectron2` may be, by other tests)
    imported = sys.modules.get("detectron2")
    assert imported is None or str(tmp_path) not in str(getattr(imported, "__file__", ""))


# --- get_checkpoint_url ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "url"), [
    ("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml",
     "https://dl.fbaipublicfiles.com/detectron2/COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x/137849600/model_final_f10217.pkl"),
    ("COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml",
     "https://dl.fbaipublicfiles.com/detectron2/COCO-Detection/faster_rcnn_R_50_FPN_3x/137849458/model_final_280758.pkl"),
    ("COCO-Detection/retinanet_R_50_FPN_1x.yaml",
     "https://dl.fbaipublicfiles.com/detectron2/COCO-Detection/retinanet_R_50_FPN_1x/190397773/model_final_bfca0b.pkl"),
    ("COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml",
     "https://dl.fbaipublicfiles.com/detectron2/COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x/137849621/model_final_a6e10b.pkl"),
    ("COCO-PanopticSegmentation/panoptic_fpn_R_101_3x.yaml",
     "https://dl.fbaipublicfiles.com/detectron2/COCO-PanopticSegmentation/panoptic_fpn_R_101_3x/139514519/model_final_cafdb1.pkl"),
    ("LVISv0.5-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_1x.yaml",
     "https://dl.fbaipublicfiles.com/detectron2/LVISv0.5-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_1x/144219108/model_final_5e3439.pkl"),
    # the one published checkpoint that is not a model_final
    ("Misc/cascade_mask_rcnn_X_152_32x8d_FPN_IN5k_gn_dconv.yaml",
     "https://dl.fbaipublicfiles.com/detectron2/Misc/cascade_mask_rcnn_X_152_32x8d_FPN_IN5k_gn_dconv/18131413/model_0039999_e76410.pkl"),
    # LazyConfig names have URLs too (det reads no .py config, but the weights are just a file)
    ("new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ.py",
     "https://dl.fbaipublicfiles.com/detectron2/new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ/42047764/model_final_bb69de.pkl"),
    # as in detectron2, the suffix may be left out
    ("Cityscapes/mask_rcnn_R_50_FPN",
     "https://dl.fbaipublicfiles.com/detectron2/Cityscapes/mask_rcnn_R_50_FPN/142423278/model_final_af9cf5.pkl"),
])
def test_known_checkpoint_urls(name, url):
    assert model_zoo.get_checkpoint_url(name) == url


def test_table_has_all_64_published_models():
    names = published_names()
    assert len(names) == len(set(names)) == 64
    assert sum(len(v) for v in PUBLISHED_CHECKPOINTS.values()) == 64
    for name in names:
        url = model_zoo.get_checkpoint_url(name + ".yaml")
        assert url.startswith(f"https://dl.fbaipublicfiles.com/detectron2/{name}/")
        model_id, file = url.rsplit("/", 2)[-2:]
        assert model_id.isdigit() and file.startswith("model_") and file.endswith(".pkl")


def test_every_zoo_yaml_with_a_published_model_has_its_url():
    with_url, without_url = [], []
    for name in ZOO_YAMLS:
        try:
            with_url.append((name, model_zoo.get_checkpoint_url(name)))
        except RuntimeError:
            without_url.append(name)
    assert set(without_url) == WITHOUT_PUBLISHED_MODEL
    assert len(with_url) == 52
    # ...and every published YAML model is in the shared configs (the 12 others are LazyConfig .py)
    assert {n for n, _ in with_url} == {n + ".yaml" for n in published_names() if not n.startswith("new_baselines/")}


def test_unknown_checkpoint_names_close_matches():
    wanted = "COCO-Detection/faster_rcnn_R_50_FPN_2x.yaml"
    with pytest.raises(RuntimeError, match=re.escape(f"Pretrained model for {wanted} is not available")) as info:
        model_zoo.get_checkpoint_url("COCO-Detection/faster_rcnn_R_50_FPN_2x.yaml")
    assert "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml" in str(info.value)


# --- get -----------------------------------------------------------------------------------------


def test_get_trained_builds_on_cpu_and_loads_the_published_weights(tmp_path):
    weight = np.full((3, 256, 1, 1), 0.25, dtype=np.float32)  # RPN objectness of 3 anchors a position
    url = model_zoo.get_checkpoint_url(SMALL)
    with open(_cached(tmp_path, url), "wb") as f:
        pickle.dump({"model": {"proposal_generator.rpn_head.objectness_logits.weight": weight},
                     "__author__": "Detectron2 Model Zoo"}, f)
    model = model_zoo.get(SMALL, trained=True, device="cpu")
    assert type(model).__name__ == "ProposalNetwork"
    assert model.training  # detectron2 returns the model in training mode
    assert next(model.parameters()).device == torch.device("cpu")
    torch.testing.assert_close(model.proposal_generator.rpn_head.objectness_logits.weight.detach(),
                               torch.from_numpy(weight))


def test_get_untrained_loads_the_configs_own_weights(tmp_path):
    """Like detectron2: trained=False still loads MODEL.WEIGHTS of the file (the ImageNet backbone)."""
    stem = np.full((64, 3, 7, 7), -0.5, dtype=np.float32)
    cached = _cached(tmp_path, "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-50.pkl")
    with open(cached, "wb") as f:
        pickle.dump({"conv1_w": stem}, f)  # Caffe2 names, converted on load
    model = model_zoo.get(SMALL)  # no CUDA here: the default device is the CPU
    assert next(model.parameters()).device == torch.device("cpu")
    torch.testing.assert_close(model.backbone.bottom_up.stem.conv1.weight.detach(), torch.from_numpy(stem))


def test_get_downloads_through_the_checkpointer():
    # No cached file: the checkpointer asks for the published URL (the stub refuses to fetch it).
    with pytest.raises(AssertionError, match=re.escape("rpn_R_50_FPN_1x/137258492/model_final_02ce48.pkl")):
        model_zoo.get(SMALL, trained=True, device="cpu")


# --- errors --------------------------------------------------------------------------------------


def test_no_configs_folder_says_what_was_asked_where_det_looked_and_what_to_do(monkeypatch):
    monkeypatch.delenv(model_zoo.CONFIGS_ENV_VAR)
    monkeypatch.setattr("det.model_zoo.model_zoo._detectron2_configs", lambda: None)
    with pytest.raises(model_zoo.ConfigNotFoundError) as info:
        model_zoo.get_config_file(SMALL)
    message = str(info.value)
    assert SMALL in message
    assert "DET_MODEL_ZOO_CONFIGS is not set" in message and "no installed detectron2" in message
    assert "configs/ folder of a detectron2 git checkout" in message
    # a RuntimeError as in detectron2, and a FileNotFoundError
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, FileNotFoundError)


def test_configs_folder_that_does_not_exist(monkeypatch, tmp_path):
    missing = tmp_path / "no-such-configs"
    monkeypatch.setenv(model_zoo.CONFIGS_ENV_VAR, str(missing))
    with pytest.raises(model_zoo.ConfigNotFoundError, match=re.escape(f"DET_MODEL_ZOO_CONFIGS={str(missing)!r} is not a folder")):
        model_zoo.get_config(SMALL)
    with pytest.raises(model_zoo.ConfigNotFoundError, match=r"configs_root=.* is not a folder"):
        model_zoo.get_config_file(SMALL, configs_root=missing)


def test_unknown_config_name_lists_close_names():
    with pytest.raises(RuntimeError) as info:
        model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3.yaml")
    message = str(info.value)
    assert "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3.yaml not available in the model zoo" in message
    assert "Close names: COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml" in message
    assert str(CONFIGS_ROOT) in message


LAZY_ZOO_CONFIG = """
import torch
from det.core.config import LazyCall as L

model = L(torch.nn.Conv2d)(in_channels=3, out_channels=4, kernel_size=1)
train = dict(init_checkpoint="", device="cpu")
"""


def test_lazy_config_names_load_as_lazy_configs(tmp_path):
    from omegaconf import DictConfig

    (tmp_path / "new_baselines").mkdir()
    (tmp_path / "new_baselines" / "mask_rcnn_R_50_FPN_100ep_LSJ.py").write_text(LAZY_ZOO_CONFIG)
    name = "new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ.py"
    assert model_zoo.get_config_file(name, configs_root=tmp_path).endswith(name)
    cfg = model_zoo.get_config(name, configs_root=tmp_path)
    assert isinstance(cfg, DictConfig) and cfg.train.init_checkpoint == ""
    trained = model_zoo.get_config(name, trained=True, configs_root=tmp_path)
    assert trained.train.init_checkpoint == model_zoo.get_checkpoint_url(name)
    model = model_zoo.get(name, configs_root=tmp_path)
    assert isinstance(model, torch.nn.Conv2d) and model.training


def test_trained_lazy_config_without_init_checkpoint_is_refused(tmp_path):
    (tmp_path / "new_baselines").mkdir()
    name = "new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ.py"
    (tmp_path / name).write_text("model = dict(a=1)\n")
    with pytest.raises(NotImplementedError, match=r"has no train\.init_checkpoint"):
        model_zoo.get_config(name, trained=True, configs_root=tmp_path)


def test_absolute_paths_are_refused(configs_dir):
    with pytest.raises(ValueError, match="absolute path"):
        model_zoo.get_config_file(str(configs_dir / SMALL))
    with pytest.raises(ValueError, match="leaves the configs folder"):
        model_zoo.get_config_file("../detectron2-configs/" + SMALL)


def test_a_config_file_finds_zoo_names_in_its_own_configs_tree(monkeypatch, tmp_path):
    """detectron2's Misc/torchvision_imagenet_R_50.py calls get_config("common/train.py"): loaded
    from a file path with no configs folder set, the name resolves in the tree that file is in."""
    from det.core.config import LazyConfig

    monkeypatch.delenv(model_zoo.CONFIGS_ENV_VAR)
    monkeypatch.setattr("det.model_zoo.model_zoo._detectron2_configs", lambda: None)
    (tmp_path / "configs" / "common").mkdir(parents=True)
    (tmp_path / "configs" / "Misc").mkdir()
    (tmp_path / "configs" / "common" / "train.py").write_text("train = dict(max_iter=7, init_checkpoint='x')\n")
    (tmp_path / "configs" / "Misc" / "mine.py").write_text(
        "from det.model_zoo import get_config\ntrain = get_config('common/train.py').train\ntrain.max_iter += 1\n")
    cfg = LazyConfig.load(str(tmp_path / "configs" / "Misc" / "mine.py"))
    assert cfg.train.max_iter == 8 and cfg.train.init_checkpoint == "x"

    (tmp_path / "configs" / "Misc" / "other.py").write_text(
        "from det.model_zoo import get_config\ntrain = get_config('common/missing.py').train\n")
    with pytest.raises(model_zoo.ConfigNotFoundError, match="no config file being loaded has it in a folder above"):
        LazyConfig.load(str(tmp_path / "configs" / "Misc" / "other.py"))
    # outside a LazyConfig load the tree of no file is searched
    with pytest.raises(model_zoo.ConfigNotFoundError, match="DET_MODEL_ZOO_CONFIGS is not set"):
        model_zoo.get_config("common/train.py")
