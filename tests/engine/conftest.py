"""Fixtures shared by the engine tests."""

from __future__ import annotations

import uuid

import pytest
import yaml

from det.data import DatasetCatalog
from det.data.shapes import ShapesConfig, register_shapes
from det.engine.demo import DEMO_CONFIG


@pytest.fixture(scope="session")
def make_tiny_config():
    """``make(root, prefix, num_train=, num_val=, seed=)``: a registered tiny shapes dataset (64-80 px
    images) and a config file over it (``_BASE_`` = the demo config, narrow heads, 2 iterations);
    returns ``{"root", "config", "names"}``. The datasets are removed at the end of the session."""
    registered: list[str] = []

    def make(root, prefix: str, *, num_train: int, num_val: int, seed: int) -> dict:
        names = (f"{prefix}_train_{uuid.uuid4().hex[:6]}", f"{prefix}_val_{uuid.uuid4().hex[:6]}")
        register_shapes(ShapesConfig(num_train=num_train, num_val=num_val, seed=seed, min_image_size=64,
                                     max_image_size=80, min_shape_size=16, max_shape_size=36),
                        root / "data", names=names)
        registered.extend(names)
        config = {
            "_BASE_": str(DEMO_CONFIG),
            "DATASETS": {"TRAIN": [names[0]], "TEST": [names[1]]},
            "INPUT": {"MIN_SIZE_TRAIN": [64], "MAX_SIZE_TRAIN": 128, "MIN_SIZE_TEST": 64, "MAX_SIZE_TEST": 128},
            "MODEL": {"FPN": {"OUT_CHANNELS": 32}, "ROI_BOX_HEAD": {"FC_DIM": 32},
                      "ROI_MASK_HEAD": {"CONV_DIM": 32}, "ROI_HEADS": {"BATCH_SIZE_PER_IMAGE": 32}},
            "SOLVER": {"IMS_PER_BATCH": 2, "MAX_ITER": 2, "WARMUP_ITERS": 1},
        }
        config_file = root / "tiny.yaml"
        config_file.write_text(yaml.safe_dump(config))
        return {"root": root, "config": config_file, "names": names}

    yield make
    for name in registered:
        if name in DatasetCatalog:
            DatasetCatalog.remove(name)



@pytest.fixture(scope="session")
def coco80_checkpoint(tmp_path_factory, configs_dir):
    """An "80-class model-zoo checkpoint": the zoo's Mask R-CNN, shrunk, saved as det saves it."""
    import torch

    from det.core import build_model

    from ._own_data import shrunk_zoo_cfg

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "coco80.pth"
    torch.save({"model": build_model(shrunk_zoo_cfg(configs_dir)).state_dict()}, path)
    return path
