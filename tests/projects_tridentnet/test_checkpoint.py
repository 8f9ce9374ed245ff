"""TridentNet checkpoints load strictly: a trident block owns exactly a bottleneck block's
parameters, so the state_dict is detectron2's C4 layout. Proven with a state_dict written from the
documented names and shapes, and with detectron2's own Faster R-CNN C4 golden checkpoint, whose
outputs the trident model reproduces when its test branch is the dilation-1 one."""

from __future__ import annotations

import pytest
import torch

GOLDEN_CASE = "faster_rcnn_R_50_C4"
TRIDENT = ["MODEL.BACKBONE.NAME", "build_trident_resnet_backbone", "MODEL.PROPOSAL_GENERATOR.NAME", "TridentRPN",
           "MODEL.ROI_HEADS.NAME", "TridentRes5ROIHeads"]


def documented_c4_keys(depth: int, stem: int, res2: int, width: int, num_classes: int, anchors: int) -> dict:
    """Parameter/buffer name -> shape of detectron2's R-C4 Faster R-CNN (TridentNet's included),
    from the naming of detectron2's ResNet, RPN and Res5ROIHeads with FrozenBN norms."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(prefix: str, out_c: int, in_c: int, k: int) -> None:
        shapes[f"{prefix}.weight"] = (out_c, in_c, k, k)
        for buf in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.norm.{buf}"] = (out_c,)

    def stage(prefix: str, blocks: int, in_c: int, bottleneck: int, out_c: int) -> None:
        for i in range(blocks):
            block_in = in_c if i == 0 else out_c
            if block_in != out_c:
                conv(f"{prefix}.{i}.shortcut", out_c, block_in, 1)
            conv(f"{prefix}.{i}.conv1", bottleneck, block_in, 1)
            conv(f"{prefix}.{i}.conv2", bottleneck, bottleneck, 3)
            conv(f"{prefix}.{i}.conv3", out_c, bottleneck, 1)

    conv("backbone.stem.conv1", stem, 3, 7)
    blocks = {50: (3, 4, 6), 101: (3, 4, 23)}[depth]
    in_c, out_c, bottleneck = stem, res2, width
    for name, n in zip(("res2", "res3", "res4"), blocks):
        stage(f"backbone.{name}", n, in_c, bottleneck, out_c)
        in_c, out_c, bottleneck = out_c, out_c * 2, bottleneck * 2
    res4 = in_c
    shapes |= {
        "proposal_generator.rpn_head.conv.weight": (res4, res4, 3, 3),
        "proposal_generator.rpn_head.conv.bias": (res4,),
        "proposal_generator.rpn_head.objectness_logits.weight": (anchors, res4, 1, 1),
        "proposal_generator.rpn_head.objectness_logits.bias": (anchors,),
        "proposal_generator.rpn_head.anchor_deltas.weight": (4 * anchors, res4, 1, 1),
        "proposal_generator.rpn_head.anchor_deltas.bias": (4 * anchors,),
    }
    stage("roi_heads.res5", 3, res4, bottleneck, out_c)
    shapes |= {
        "roi_heads.box_predictor.cls_score.weight": (num_classes + 1, out_c),
        "roi_heads.box_predictor.cls_score.bias": (num_classes + 1,),
        "roi_heads.box_predictor.bbox_pred.weight": (4 * num_classes, out_c),
        "roi_heads.box_predictor.bbox_pred.bias": (4 * num_classes,),
    }
    return shapes


@pytest.mark.parametrize("config", ["tridentnet_fast_R_50_C4_1x.yaml", "tridentnet_fast_R_101_C4_3x.yaml"])
def test_a_state_dict_of_the_documented_names_loads_strictly(config, shared_dir):
    from det.core import build_model, get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(shared_dir / "detectron2-projects/projects/TridentNet/configs" / config))
    cfg.merge_from_list(["MODEL.RESNETS.STEM_OUT_CHANNELS", 16, "MODEL.RESNETS.RES2_OUT_CHANNELS", 16,
                         "MODEL.RESNETS.WIDTH_PER_GROUP", 4, "MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu"])
    model = build_model(cfg)
    shapes = documented_c4_keys(cfg.MODEL.RESNETS.DEPTH, 16, 16, 4, 80, anchors=15)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == shapes
    g = torch.Generator().manual_seed(0)
    written = {k: torch.rand(shape, generator=g) for k, shape in shapes.items()}
    model.load_state_dict(written, strict=True)
    assert torch.equal(model.backbone.res4[5 if cfg.MODEL.RESNETS.DEPTH == 50 else 22].conv2.weight,
                       written[f"backbone.res4.{5 if cfg.MODEL.RESNETS.DEPTH == 50 else 22}.conv2.weight"])


def _check_matches_golden(outputs, golden, assert_matches_golden):
    assert len(outputs) == len(golden.outputs)
    for ours, theirs in zip(outputs, golden.outputs):
        instances = ours["instances"]
        assert len(instances) == 100
        assert len(assert_matches_golden(instances, theirs["instances"])) >= 98
        torch.testing.assert_close(instances.scores[:10], theirs["instances"]["scores"][:10], rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def trident_from_pth(golden):
    cfg = golden.cfg()
    cfg.merge_from_list([*TRIDENT, "MODEL.TRIDENT.TEST_BRANCH_IDX", 0])  # branch 0: dilation 1
    return golden.build("pth", cfg)  # strict: no missing or unexpected name


@pytest.mark.slow  # detectron2's golden images through a whole model
def test_the_dilation_1_branch_of_detectron2s_c4_weights_is_detectron2s_c4(
        trident_from_pth, golden, assert_matches_golden):
    assert type(trident_from_pth.roi_heads).__name__ == "TridentRes5ROIHeads"
    with torch.no_grad():
        outputs = trident_from_pth(golden.inputs)
    assert len(outputs) == 2
    _check_matches_golden(outputs, golden, assert_matches_golden)


def test_detectron2s_model_zoo_pkl_loads_strictly_into_tridentnet(trident_from_pth, golden):
    """detectron2's released TridentNet weights are model-zoo .pkl files of this layout."""
    cfg = golden.cfg()
    cfg.merge_from_list(TRIDENT)
    from_pkl = golden.build("pkl", cfg)
    expected = trident_from_pth.state_dict()
    loaded = from_pkl.state_dict()
    assert list(loaded) == list(expected)
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)


@pytest.mark.slow  # detectron2's golden images through three branches
def test_three_identical_branches_merge_back_to_detectron2s_c4(golden, assert_matches_golden):
    """Every branch at inference (TEST_BRANCH_IDX -1) with dilations 1, 1, 1: the three branches
    find the same detections and the per-class NMS merge keeps one of each."""
    cfg = golden.cfg()
    cfg.merge_from_list([*TRIDENT, "MODEL.TRIDENT.TEST_BRANCH_IDX", -1, "MODEL.TRIDENT.BRANCH_DILATIONS", [1, 1, 1]])
    model = golden.build("pth", cfg)
    with torch.no_grad():
        outputs = model(golden.inputs)  # both images: they share one padded batch, as detectron2 ran them
    assert len(outputs) == 2
    _check_matches_golden(outputs, golden, assert_matches_golden)
