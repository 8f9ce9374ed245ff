"""detectron2's model zoo through det: find a zoo config, its trained weights, and build it.

det ships no copy of detectron2's YAML files. A zoo name such as
``"COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"`` is looked up in one configs folder, the
first of:

1. the ``configs_root`` argument,
2. the folder named by ``$DET_MODEL_ZOO_CONFIGS`` (laid out like detectron2's ``configs/``, e.g. a
   detectron2 git checkout's ``configs/``),
3. ``detectron2/model_zoo/configs`` of an installed detectron2 (found with importlib, never imported),
4. while ``LazyConfig.load`` executes a config file that asks for a zoo name (detectron2's
   ``Misc/torchvision_imagenet_R_50.py`` calls ``get_config("common/train.py")``): the nearest folder
   above that file which has the name, i.e. the configs tree the file was loaded from.

Trained weights come from detectron2's download server (see :mod:`det.model_zoo.checkpoints`);
:class:`~det.checkpoint.DetectionCheckpointer` downloads them into det's cache on first use.
"""

from __future__ import annotations

import difflib
import importlib.machinery
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from det.model_zoo.checkpoints import CHECKPOINT_URL_PREFIX, PUBLISHED_CHECKPOINTS, published_names

if TYPE_CHECKING:
    import torch
    from omegaconf import DictConfig

    from det.core.config import CfgNode

__all__ = ["CONFIGS_ENV_VAR", "ConfigNotFoundError", "get", "get_checkpoint_url", "get_config",
           "get_config_file", "get_configs_root"]

CONFIGS_ENV_VAR = "DET_MODEL_ZOO_CONFIGS"

_HOW_TO_POINT = (
    f"Point det at a folder laid out like detectron2's configs/ (e.g. the configs/ folder of a "
    f"detectron2 git checkout): set {CONFIGS_ENV_VAR}=/path/to/configs or pass configs_root=... .")


class ConfigNotFoundError(RuntimeError, FileNotFoundError):
    """A model-zoo config that cannot be found: no configs folder, or no such file in it.

    A RuntimeError, as detectron2's ``get_config_file`` raises, and a FileNotFoundError (a file is
    missing). The message says which name was asked for, where det looked and how to point it
    at a configs folder.
    """

    def __str__(self) -> str:  # OSError would format the arguments as a tuple
        return str(self.args[0])


def _split_suffix(config_path: str) -> tuple[str, str]:
    """``"A/b_3x.yaml"`` -> ``("A/b_3x", ".yaml")``; a name without suffix keeps ``""``."""
    for suffix in (".yaml", ".py"):
        if config_path.endswith(suffix):
            return config_path[: -len(suffix)], suffix
    return config_path, ""


def _check_relative(config_path: str) -> str:
    if not isinstance(config_path, str) or not config_path:
        raise TypeError(f"config_path must be a non-empty str like "
                        f"'COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml', got {config_path!r}")
    name = config_path.replace("\\", "/")
    if os.path.isabs(name) or name.startswith("/"):
        raise ValueError(f"{config_path!r} is an absolute path; model_zoo takes names relative to "
                         "detectron2's configs/ folder. Merge your own file with "
                         "get_cfg().merge_from_file(path) instead.")
    if ".." in name.split("/"):
        raise ValueError(f"{config_path!r} leaves the configs folder ('..'); give a name inside it")
    return name


def _detectron2_configs() -> Path | None:
    """``detectron2/model_zoo/configs`` of an installed detectron2, found without importing it."""
    try:
        # the path finder, not find_spec: an imported `detectron2` (det-compat-detectron2) would
        # answer from sys.modules and hide a detectron2 installation further down sys.path
        spec = importlib.machinery.PathFinder.find_spec("detectron2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "model_zoo" / "configs"
        if folder.is_dir():
            return folder
    return None


def get_configs_root(configs_root: str | os.PathLike[str] | None = None) -> Path:
    """The configs folder zoo names are resolved against (see the module docstring for the order).

    Raises:
        ConfigNotFoundError: ``configs_root`` or ``$DET_MODEL_ZOO_CONFIGS`` is not a folder, or
            neither is given and no installed detectron2 has its configs.
    """
    return _configs_root(configs_root, wanted=None)


def _configs_root(configs_root: str | os.PathLike[str] | None, wanted: str | None) -> Path:
    asked = f"Cannot look up model-zoo config {wanted}: " if wanted else ""
    if configs_root is not None:
        folder = Path(configs_root).expanduser()
        if not folder.is_dir():
            raise ConfigNotFoundError(f"{asked}configs_root={os.fspath(configs_root)!r} is not a folder. "
                                      f"{_HOW_TO_POINT}")
        return folder
    from_env = os.environ.get(CONFIGS_ENV_VAR)
    if from_env:
        folder = Path(from_env).expanduser()
        if not folder.is_dir():
            raise ConfigNotFoundError(f"{asked}${CONFIGS_ENV_VAR}={from_env!r} is not a folder. {_HOW_TO_POINT}")
        return folder
    installed = _detectron2_configs()
    if installed is not None:
        return installed
    beside = _tree_of_loading_config(wanted)
    if beside is not None:
        return beside
    loading = "" if wanted is None else (
        " and no config file being loaded has it in a folder above" if _loading_config_files() else "")
    raise ConfigNotFoundError(
        f"{asked}det ships no copy of detectron2's model-zoo configs, and found none: "
        f"configs_root was not given, ${CONFIGS_ENV_VAR} is not set, no installed detectron2 "
        f"package (searched sys.path) has model_zoo/configs{loading}. {_HOW_TO_POINT}")


def _loading_config_files() -> list[str]:
    # a config file can only be loading if det's LazyConfig module is imported: checking
    # sys.modules keeps plain YAML lookups from importing it (and omegaconf)
    lazy = sys.modules.get("det.core.config.lazy")
    return lazy.loading_config_files() if lazy is not None else []


def _tree_of_loading_config(wanted: str | None) -> Path | None:
    """The nearest folder above a config file being loaded (innermost file first) that holds
    ``wanted``: the configs tree that file belongs to."""
    if wanted is None:
        return None
    for config_file in reversed(_loading_config_files()):
        for folder in Path(config_file).parents:
            if (folder / wanted).is_file():
                return folder
    return None


def _zoo_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for pattern in ("*.yaml", "*.py") for p in root.rglob(pattern))


def get_config_file(config_path: str, *, configs_root: str | os.PathLike[str] | None = None) -> str:
    """The real path of a model-zoo config, like detectron2's ``model_zoo.get_config_file``.

    Args:
        config_path: file name relative to detectron2's ``configs/``, e.g.
            ``"COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"``.
        configs_root: the configs folder to use instead of ``$DET_MODEL_ZOO_CONFIGS`` or an
            installed detectron2's.

    Returns:
        str: the path of the file; ``get_cfg().merge_from_file`` follows its ``_BASE_`` chain
        relative to it.

    Raises:
        ConfigNotFoundError: no configs folder, or no such file in it (close names are listed).
    """
    name = _check_relative(config_path)
    root = _configs_root(configs_root, wanted=name)
    path = root / name
    if path.is_file():
        return os.fspath(path)
    close = difflib.get_close_matches(name, _zoo_files(root), n=5, cutoff=0.6)
    hint = f" Close names: {', '.join(close)}." if close else ""
    raise ConfigNotFoundError(f"{config_path} not available in the model zoo: no file {path}.{hint} "
                              f"If {root} is not the configs folder you meant: {_HOW_TO_POINT}")


def get_checkpoint_url(config_path: str) -> str:
    """The URL of the model detectron2 trained with a zoo config, like detectron2's
    ``model_zoo.get_checkpoint_url``.

    Args:
        config_path: zoo name, e.g. ``"COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"``
            (``.yaml``, ``.py`` or no suffix).

    Returns:
        str: ``https://dl.fbaipublicfiles.com/detectron2/<name>/<model id>/model_final_<hash>.pkl``.

    Raises:
        RuntimeError: detectron2 published no model for that name (close names are listed).
    """
    name, given_suffix = _split_suffix(_check_relative(config_path))
    folder, _, config_name = name.rpartition("/")
    suffix = PUBLISHED_CHECKPOINTS.get(folder, {}).get(config_name)
    if suffix is None:
        close = difflib.get_close_matches(name, published_names(), n=5, cutoff=0.6)
        hint = f" Close names with a published model: {', '.join(c + given_suffix for c in close)}." if close else ""
        raise RuntimeError(f"Pretrained model for {config_path} is not available: detectron2 published "
                           f"no checkpoint for it.{hint}")
    return f"{CHECKPOINT_URL_PREFIX}{name}/{suffix}"


def get_config(config_path: str, trained: bool = False, *,
               configs_root: str | os.PathLike[str] | None = None) -> CfgNode | DictConfig:
    """det's config for a zoo model, like detectron2's ``model_zoo.get_config``.

    Args:
        config_path: zoo name of a YAML config (``"COCO-Detection/retinanet_R_50_FPN_1x.yaml"``)
            or of a LazyConfig Python file (``"new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ.py"``).
        trained: if True, the weights are the URL of detectron2's trained model
            (``MODEL.WEIGHTS`` of a YAML config, ``train.init_checkpoint`` of a LazyConfig);
            otherwise what the file says (usually ImageNet weights for the backbone only).
        configs_root: see :func:`get_config_file`.

    Returns:
        CfgNode: for a YAML name, ``get_cfg()`` (with the keys of installed plugins) merged with
        the file. DictConfig: for a ``.py`` name, ``LazyConfig.load`` of the file (its
        ``detectron2.*`` imports need det-compat-detectron2).

    Raises:
        NotImplementedError: ``trained=True`` for a LazyConfig without ``train.init_checkpoint``
            (as detectron2).
    """
    cfg_file = get_config_file(config_path, configs_root=configs_root)
    if _split_suffix(cfg_file)[1] == ".py":
        from det.core.config import LazyConfig

        lazy_cfg: DictConfig = LazyConfig.load(cfg_file)
        if trained:
            url = get_checkpoint_url(config_path)
            if "train" not in lazy_cfg or "init_checkpoint" not in lazy_cfg.train:
                raise NotImplementedError(f"{config_path} has no train.init_checkpoint to set the trained "
                                          f"weights {url} into")
            lazy_cfg.train.init_checkpoint = url
        return lazy_cfg

    from det.core import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(cfg_file)
    if trained:
        cfg.MODEL.WEIGHTS = get_checkpoint_url(config_path)
    return cfg


def get(config_path: str, trained: bool = False, device: str | None = None, *,
        configs_root: str | os.PathLike[str] | None = None) -> torch.nn.Module:
    """Build a zoo model and load its weights, like detectron2's ``model_zoo.get``.

        model = model_zoo.get("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml", trained=True)
        model.eval()

    Args:
        config_path: zoo name of a YAML config or a LazyConfig ``.py`` file.
        trained: load detectron2's trained model (downloaded into det's cache once); otherwise the
            config's own weights are loaded (usually an ImageNet backbone, also downloaded).
        device: the device to build on; by default the config's (``"cuda"``) when CUDA is
            available, else ``"cpu"``.
        configs_root: see :func:`get_config_file`.

    Returns:
        torch.nn.Module: the model, in training mode as detectron2 returns it (call ``.eval()``
        before inference). A YAML config's ``MODEL.WEIGHTS`` is loaded; a LazyConfig's
        ``train.init_checkpoint`` when it has one.
    """
    import torch

    from det.checkpoint import DetectionCheckpointer

    cfg = get_config(config_path, trained, configs_root=configs_root)
    if device is None and not torch.cuda.is_available():
        device = "cpu"
    from det.core.config import CfgNode

    if not isinstance(cfg, CfgNode):
        from det.core.config import instantiate

        model: torch.nn.Module = instantiate(cfg.model)
        if device is not None:
            model = model.to(device)
        if "train" in cfg and "init_checkpoint" in cfg.train:
            DetectionCheckpointer(model).load(cfg.train.init_checkpoint)
        return model

    from det.core import build_model

    if device is not None:
        cfg.MODEL.DEVICE = device
    model = build_model(cfg)
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    return model
