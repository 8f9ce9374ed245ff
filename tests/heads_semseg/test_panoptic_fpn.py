"""PanopticFPN: the panoptic combination on a hand-made case (exact ids and areas), the zoo
config building/training/predicting in detectron2's output format, INSTANCE_LOSS_WEIGHT, and
the [panoptic] extra's error when the instance branch is not installed."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from det.core import EventStorage, build_model, get_cfg
from det.heads.semseg import PanopticFPN, combine_panoptic_outputs, combine_semantic_and_instance_outputs
from det.structures import Boxes, Instances, PolygonMasks


def _box_mask(rows, cols, size=8):
    m = torch.zeros(size, size, dtype=torch.bool)
    m[rows[0] : rows[1], cols[0] : cols[1]] = True
    return m


def _hand_made_case():
    """8x8 image. Semantic map: columns 0-3 are "things" (class 0), the top-right quarter is
    stuff class 2, the bottom-right quarter stuff class 3."""
    semantic = torch.zeros(8, 8, dtype=torch.int64)
    semantic[:4, 4:] = 2
    semantic[4:, 4:] = 3
    inst = Instances((8, 8))
    inst.scores = torch.tensor([0.9, 0.95, 0.8, 0.7, 0.3, 0.6])
    inst.pred_classes = torch.tensor([7, 2, 1, 4, 9, 5])
    inst.pred_masks = torch.stack([
        _box_mask((0, 4), (0, 4)),  # 0: 16 px, half of it under instance 1 (0.5, not > 0.5): keeps 8 px
        _box_mask((2, 6), (0, 4)),  # 1: best score, pasted first: 16 px
        _box_mask((4, 6), (0, 2)),  # 2: entirely under instance 1: dropped
        _box_mask((0, 0), (0, 0)),  # 3: empty mask: skipped
        _box_mask((6, 8), (0, 4)),  # 4: score 0.3 < 0.5: the loop stops here
        _box_mask((6, 8), (6, 8)),  # 5: 4 px over stuff class 3
    ])
    return inst, semantic


def test_combination_gives_exact_ids_areas_and_segments_info():
    inst, semantic = _hand_made_case()
    pan, info = combine_semantic_and_instance_outputs(inst, semantic, 0.5, 13, 0.5)
    assert pan.dtype == torch.int32 and pan.shape == (8, 8)
    assert pan.tolist() == [
        [2, 2, 2, 2, 4, 4, 4, 4],
        [2, 2, 2, 2, 4, 4, 4, 4],
        [1, 1, 1, 1, 4, 4, 4, 4],
        [1, 1, 1, 1, 4, 4, 4, 4],
        [1, 1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 3, 3],
        [0, 0, 0, 0, 0, 0, 3, 3],
    ]
    assert info == [
        {"id": 1, "isthing": True, "score": pytest.approx(0.95), "category_id": 2, "instance_id": 1},
        {"id": 2, "isthing": True, "score": pytest.approx(0.9), "category_id": 7, "instance_id": 0},
        {"id": 3, "isthing": True, "score": pytest.approx(0.6), "category_id": 5, "instance_id": 5},
        # class 3 has 16 - 4 = 12 free pixels < 13: dropped; class 0 ("things") never becomes stuff
        {"id": 4, "isthing": False, "category_id": 2, "area": 16},
    ]
    assert all(type(s["score"]) is float and type(s["instance_id"]) is int for s in info[:3])


def test_combination_thresholds():
    inst, semantic = _hand_made_case()
    _, info = combine_panoptic_outputs(inst, semantic, 0.5, 12, 0.5)
    assert info[-1] == {"id": 5, "isthing": False, "category_id": 3, "area": 12}
    # a stricter overlap threshold drops instance 0 (half covered), so ids shift
    pan, info = combine_semantic_and_instance_outputs(inst, semantic, 0.4, 13, 0.5)
    assert [(s["id"], s.get("instance_id")) for s in info] == [(1, 1), (2, 5), (3, None)]
    assert (pan == 0).sum().item() == 64 - 16 - 4 - 16
    # a lower score threshold lets instance 4 in (after instance 3, which has no pixels)
    _, info = combine_semantic_and_instance_outputs(inst, semantic, 0.5, 13, 0.2)
    assert [s.get("instance_id") for s in info] == [1, 0, 5, 4, None]


def test_combination_without_instances_is_stuff_only():
    empty = Instances((8, 8), scores=torch.zeros(0), pred_classes=torch.zeros(0, dtype=torch.int64),
                      pred_masks=torch.zeros(0, 8, 8, dtype=torch.bool))
    _, semantic = _hand_made_case()
    pan, info = combine_semantic_and_instance_outputs(empty, semantic, 0.5, 0, 0.5)
    assert info == [{"id": 1, "isthing": False, "category_id": 2, "area": 16},
                    {"id": 2, "isthing": False, "category_id": 3, "area": 16}]
    assert (pan[:, :4] == 0).all()


def test_combination_errors():
    inst, semantic = _hand_made_case()
    with pytest.raises(ValueError, match=r"\(H, W\) tensor of class ids"):
        combine_semantic_and_instance_outputs(inst, semantic[None], 0.5, 0, 0.5)
    with pytest.raises(ValueError, match="at the output resolution"):
        combine_semantic_and_instance_outputs(inst, semantic[:4], 0.5, 0, 0.5)
    no_masks = Instances((8, 8), scores=inst.scores, pred_classes=inst.pred_classes)
    with pytest.raises(ValueError, match="'pred_masks'"):
        combine_semantic_and_instance_outputs(no_masks, semantic, 0.5, 0, 0.5)


def _small_cfg(configs_dir, *extra):
    cfg = get_cfg()
    cfg.merge_from_file(str(configs_dir / "COCO-PanopticSegmentation" / "panoptic_fpn_R_50_3x.yaml"))
    cfg.merge_from_list([
        "MODEL.RESNETS.STEM_OUT_CHANNELS", 16, "MODEL.RESNETS.WIDTH_PER_GROUP", 4,
        "MODEL.RESNETS.RES2_OUT_CHANNELS", 16, "MODEL.FPN.OUT_CHANNELS", 16,
        "MODEL.ROI_BOX_HEAD.FC_DIM", 64, "MODEL.ROI_BOX_HEAD.CONV_DIM", 32,
        "MODEL.ROI_MASK_HEAD.CONV_DIM", 32, "MODEL.SEM_SEG_HEAD.CONVS_DIM", 32,
        "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", *extra,
    ])
    return cfg


def _train_inputs():
    g = torch.Generator().manual_seed(0)
    gt = Instances((96, 128))
    gt.gt_boxes = Boxes(torch.tensor([[10.0, 10, 50, 60], [60, 20, 120, 90]]))
    gt.gt_classes = torch.tensor([1, 5])
    gt.gt_masks = PolygonMasks([[[10, 10, 50, 10, 50, 60, 10, 60]], [[60, 20, 120, 20, 120, 90]]])
    sem_seg = torch.randint(0, 54, (96, 128), generator=g)
    image = torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8, generator=g)
    return [{"image": image, "instances": gt, "sem_seg": sem_seg}]


def _train_step(cfg):
    torch.manual_seed(0)
    model = build_model(cfg)
    with EventStorage(0):
        torch.manual_seed(1)
        losses = model(_train_inputs())
    return model, losses


@pytest.fixture(scope="module")
def trained(configs_dir):
    return _train_step(_small_cfg(configs_dir))


@pytest.mark.slow
def test_panoptic_zoo_config_builds_with_detectron2_structure(trained):
    model, _ = trained
    assert type(model) is PanopticFPN
    assert [type(m).__name__ for m in (model.proposal_generator, model.roi_heads, model.sem_seg_head)] == [
        "RPN", "StandardROIHeads", "SemSegFPNHead"]
    assert model.sem_seg_head.loss_weight == 0.5  # Base-Panoptic-FPN.yaml
    assert (model.combine_overlap_thresh, model.combine_stuff_area_thresh, model.combine_instances_score_thresh) == (
        0.5, 4096, 0.5)
    names = set(model.state_dict())
    assert {"sem_seg_head.p2.0.weight", "sem_seg_head.predictor.weight", "roi_heads.mask_head.predictor.weight",
            "proposal_generator.rpn_head.conv.weight"} <= names


@pytest.mark.slow
def test_panoptic_trains_a_step_with_all_losses(trained):
    model, losses = trained
    assert set(losses) == {"loss_sem_seg", "loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_mask"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.sem_seg_head.predictor.weight.grad.abs().sum() > 0
    assert model.roi_heads.mask_head.predictor.weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_panoptic_inference_returns_detectron2_formats(trained):
    model, _ = trained
    model.eval()
    model.combine_stuff_area_thresh = 16  # small images: let some stuff through
    image = _train_inputs()[0]["image"]
    with torch.no_grad():
        out = model([{"image": image, "height": 48, "width": 64}])
        raw_instances, raw_sem_seg = model.inference([{"image": image}], do_postprocess=False)
    assert set(out[0]) == {"instances", "sem_seg", "panoptic_seg"}
    inst, sem_seg = out[0]["instances"], out[0]["sem_seg"]
    assert inst.image_size == (48, 64) and inst.pred_masks.shape[1:] == (48, 64)
    assert inst.pred_masks.dtype == torch.bool
    assert sem_seg.shape == (54, 48, 64)
    pan, info = out[0]["panoptic_seg"]
    assert pan.shape == (48, 64) and pan.dtype == torch.int32
    assert set(pan.unique().tolist()) <= {0} | {s["id"] for s in info}
    assert [s["id"] for s in info] == list(range(1, len(info) + 1))
    for s in info:
        if s["isthing"]:
            assert set(s) == {"id", "isthing", "score", "category_id", "instance_id"}
            assert s["score"] >= 0.5 and s["category_id"] == inst.pred_classes[s["instance_id"]].item()
        else:
            assert set(s) == {"id", "isthing", "category_id", "area"}
            assert s["area"] == (pan == s["id"]).sum().item() >= 16 and s["category_id"] != 0
    # the panoptic map is exactly the combination of the returned instances and argmax
    expected, expected_info = combine_semantic_and_instance_outputs(inst, sem_seg.argmax(0), 0.5, 16, 0.5)
    assert torch.equal(pan, expected) and info == expected_info
    assert isinstance(raw_instances[0], Instances) and raw_sem_seg.shape == (1, 54, 96, 128)


@pytest.mark.slow
def test_instance_loss_weight_scales_box_predictor_and_mask_losses(configs_dir, trained):
    _, base = trained
    model, losses = _train_step(_small_cfg(configs_dir, "MODEL.PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT", 0.5))
    assert model.roi_heads.mask_head.loss_weight == 0.5
    assert model.roi_heads.box_predictor.loss_weight == {"loss_box_reg": 0.5}
    for name in ("loss_mask", "loss_box_reg"):
        assert losses[name].item() == pytest.approx(0.5 * base[name].item(), rel=1e-5)
    for name in ("loss_sem_seg", "loss_rpn_cls", "loss_rpn_loc"):
        assert losses[name].item() == pytest.approx(base[name].item(), rel=1e-5)


@pytest.mark.slow
def test_panoptic_training_errors(trained):
    model, _ = trained
    model.train()
    inputs = _train_inputs()
    del inputs[0]["sem_seg"]
    with EventStorage(0), pytest.raises(ValueError, match="no 'sem_seg' key"):
        model(inputs)
    with pytest.raises(RuntimeError, match="EventStorage"):
        model(_train_inputs())


@pytest.mark.slow
def test_missing_instance_branch_names_the_panoptic_extra(configs_dir):
    # a child interpreter where det-heads-mask is neither importable nor registered
    code = f"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "det.heads.mask" or name.startswith("det.heads.mask."):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Block())
import det.heads.semseg.panoptic_fpn
assert not any(m.startswith(("det.heads.rpn", "det.heads.roi", "det.heads.mask")) for m in sys.modules), "eager import"
from det.core import get_cfg, build_model
cfg = get_cfg()
cfg.merge_from_file({str(configs_dir / "COCO-PanopticSegmentation" / "panoptic_fpn_R_50_3x.yaml")!r})
cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.RESNETS.STEM_OUT_CHANNELS", 16, "MODEL.RESNETS.WIDTH_PER_GROUP", 4,
                     "MODEL.RESNETS.RES2_OUT_CHANNELS", 16, "MODEL.FPN.OUT_CHANNELS", 16])
try:
    build_model(cfg)
except ImportError as e:
    print(e)
"""
    env = {"DET_DISABLE_PLUGINS": "heads-mask", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        "PanopticFPN's instance branch needs det-heads-mask, which is not installed: "
        "pip install 'det-heads-semseg[panoptic]'"
    )


@pytest.mark.slow
def test_model_zoo_pkl_checkpoint_loads_every_panoptic_parameter(configs_dir, trained, tmp_path):
    # the .pkl form detectron2's model zoo uses: numpy arrays, matched by name heuristics
    import pickle

    from det.checkpoint import DetectionCheckpointer

    source, _ = trained
    state = {k: v.detach().numpy().copy() for k, v in source.state_dict().items()}
    path = tmp_path / "model_final.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": state, "__author__": "Detectron2 Model Zoo", "matching_heuristics": True}, f)
    torch.manual_seed(123)
    model = build_model(_small_cfg(configs_dir))
    DetectionCheckpointer(model).load(str(path))
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], torch.from_numpy(v)) for k, v in state.items())
