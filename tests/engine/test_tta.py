"""GeneralizedRCNNWithTTA: detect every augmented view, map the boxes back, merge them, run the
mask/keypoint heads on the merged boxes in every view, and answer like the model.

Two kinds of models: a hand-made GeneralizedRCNN that "detects" the bright pixels of an image (its
box and mask are known exactly, in any view), and the golden detectron2 models of
../shared/golden (real weights). The plain model is run one image at a time for comparisons:
batching pads images to a common size, which moves FPN features near the border.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from det.checkpoint import DetectionCheckpointer
from det.core import build_model, get_cfg
from det.core.layers import ROIAlign
from det.core.modeling import Backbone, GeneralizedRCNN
from det.engine import DatasetMapperTTA, GeneralizedRCNNWithTTA
from det.structures import Boxes, Instances, pairwise_iou

# --- a model whose right answer is known: the bright pixels are one object of class 1 ----------

H, W = 60, 80
BOX = (10.0, 15.0, 40.0, 45.0)  # x0, y0, x1, y1 of the object in the 60 x 80 image


def _triangle_mask() -> torch.Tensor:
    """The object: the lower-left half of BOX (not mirror-symmetric, left of the image centre)."""
    mask = torch.zeros(H, W, dtype=torch.bool)
    x0, y0, _, y1 = (int(v) for v in BOX)
    for y in range(y0, y1):
        mask[y, x0 : x0 + (y - y0) + 1] = True
    return mask


def _image(mask: torch.Tensor) -> torch.Tensor:
    return (mask.to(torch.uint8) * 255).expand(3, -1, -1).contiguous()


class _ImageBackbone(Backbone):
    """The normalised image itself is the one feature map "p" (stride 1)."""

    def __init__(self):
        super().__init__()
        self._out_features = ["p"]
        self._out_feature_channels = {"p": 3}
        self._out_feature_strides = {"p": 1}

    def forward(self, x):
        return {"p": x}


class _WholeImageProposals(nn.Module):
    def forward(self, images, features, gt_instances=None):
        proposals = []
        for h, w in images.image_sizes:
            p = Instances((h, w))
            p.proposal_boxes = Boxes(torch.tensor([[0.0, 0.0, w, h]]))
            p.objectness_logits = torch.zeros(1)
            proposals.append(p)
        return proposals, {}


class _Predictor(nn.Module):
    test_nms_thresh = 0.5
    test_topk_per_image = 100


class _BrightObjectHeads(nn.Module):
    """Box: the bounding box of the pixels brighter than half (pixel-edge coordinates); score 0.9;
    mask: the brightness inside the box (ROIAlign), so it shows the object's shape."""

    def __init__(self, mask_on=True, keypoint_on=False):
        super().__init__()
        self.mask_on = mask_on
        self.keypoint_on = keypoint_on
        self.box_predictor = _Predictor()
        self.pooler = ROIAlign((28, 28), spatial_scale=1.0, sampling_ratio=0, aligned=True)
        self.calls = []  # (mask_on, number of images) of every forward, to see what TTA asked

    def forward(self, images, features, proposals, targets=None):
        self.calls.append(("detect", self.mask_on, len(proposals)))
        results = []
        for i, (h, w) in enumerate(images.image_sizes):
            ys, xs = (features["p"][i, 0, :h, :w] > 0.5).nonzero(as_tuple=True)
            r = Instances((h, w))
            if len(xs):
                box = [[xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]]
                r.pred_boxes = Boxes(torch.tensor(box, dtype=torch.float32))
                r.scores, r.pred_classes = torch.tensor([0.9]), torch.tensor([1])
            else:
                r.pred_boxes = Boxes(torch.zeros(0, 4))
                r.scores, r.pred_classes = torch.zeros(0), torch.zeros(0, dtype=torch.int64)
            results.append(r)
        return self.forward_with_given_boxes(features, results), {}

    def forward_with_given_boxes(self, features, instances):
        if self.mask_on:
            self.calls.append(("masks", len(instances)))
            rois = torch.cat([torch.cat([torch.full((len(x), 1), float(i)), x.pred_boxes.tensor], 1)
                              for i, x in enumerate(instances)])
            probs = self.pooler(features["p"][:, :1].contiguous(), rois).clamp(0, 1)
            for x, p in zip(instances, probs.split([len(x) for x in instances])):
                x.pred_masks = p
        return instances


def _bright_model(**heads) -> GeneralizedRCNN:
    return GeneralizedRCNN(
        backbone=_ImageBackbone(), proposal_generator=_WholeImageProposals(), roi_heads=_BrightObjectHeads(**heads),
        pixel_mean=(0.0, 0.0, 0.0), pixel_std=(255.0, 255.0, 255.0), input_format="BGR",
    ).eval()


def _mask_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a & b).sum() / (a | b).sum()).item()


def _tta(model, min_sizes, flip, **kwargs):
    cfg = get_cfg()
    cfg.TEST.AUG.MIN_SIZES = tuple(min_sizes)
    cfg.TEST.AUG.FLIP = flip
    return GeneralizedRCNNWithTTA(cfg, model, **kwargs)


def test_boxes_of_every_view_map_back_to_the_object_and_merge_into_one():
    model = _bright_model()
    tta = _tta(model, min_sizes=(60, 90, 45), flip=True)
    (out,) = tta([{"image": _image(_triangle_mask()), "height": H, "width": W}])
    inst = out["instances"]
    assert inst.image_size == (H, W)
    # six views (three sizes, each also mirrored) all found it; NMS kept one
    detect = [c for c in model.roi_heads.calls if c[0] == "detect"]
    assert sum(c[2] for c in detect) == 6 and all(c[1] is False for c in detect)  # masks off there
    assert len(inst) == 1 and inst.pred_classes.tolist() == [1]
    torch.testing.assert_close(inst.pred_boxes.tensor, torch.tensor([BOX]), atol=1.0, rtol=0)
    assert inst.scores.tolist() == pytest.approx([0.9])
    assert model.roi_heads.mask_on is True  # switched back on after the box pass
    # masks: one pass per view on the merged box, flipped views mirrored back, at 60 x 80
    assert inst.pred_masks.shape == (1, H, W) and inst.pred_masks.dtype == torch.bool
    assert _mask_iou(inst.pred_masks[0], _triangle_mask()) >= 0.9


def test_a_flipped_view_alone_gives_the_unflipped_answer():
    # Only the mirrored view: boxes and masks are right only if both are mirrored back.
    flip_only = DatasetMapperTTA(min_sizes=[60], max_size=1000, flip=True)
    tta = _tta(_bright_model(), min_sizes=(60,), flip=False, tta_mapper=lambda d: flip_only(d)[1:])
    truth = _triangle_mask()
    (out,) = tta([{"image": _image(truth)}])
    inst = out["instances"]
    torch.testing.assert_close(inst.pred_boxes.tensor, torch.tensor([BOX]), atol=1e-4, rtol=0)
    assert _mask_iou(inst.pred_masks[0], truth) >= 0.95
    mirrored_in_box = truth.clone()
    mirrored_in_box[:, 10:40] = truth[:, 10:40].flip(1)
    assert _mask_iou(inst.pred_masks[0], mirrored_in_box) < 0.5


def test_outputs_are_at_the_requested_size_when_the_input_was_resized():
    # The image given is the 60 x 80 original resized to 120 x 160 (as DatasetMapper would).
    big = Image.fromarray(_image(_triangle_mask()).permute(1, 2, 0).numpy()).resize((160, 120), Image.BILINEAR)
    image = torch.from_numpy(np.array(big)).permute(2, 0, 1).contiguous()
    tta = _tta(_bright_model(), min_sizes=(120, 60), flip=True)
    (out,) = tta([{"image": image, "height": H, "width": W}])
    inst = out["instances"]
    assert inst.image_size == (H, W) and inst.pred_masks.shape == (1, H, W)
    torch.testing.assert_close(inst.pred_boxes.tensor, torch.tensor([BOX]), atol=1.0, rtol=0)
    assert _mask_iou(inst.pred_masks[0], _triangle_mask()) >= 0.85


def test_no_detection_gives_empty_instances_with_masks():
    tta = _tta(_bright_model(), min_sizes=(30, 60), flip=True)
    (out,) = tta([{"image": torch.zeros(3, H, W, dtype=torch.uint8)}])
    inst = out["instances"]
    assert len(inst) == 0 and inst.image_size == (H, W)
    assert inst.pred_masks.shape == (0, H, W) and inst.pred_boxes.tensor.shape == (0, 4)


def test_reads_file_name_and_batches_views(tmp_path):
    path = tmp_path / "tri.png"
    Image.fromarray(_image(_triangle_mask()).permute(1, 2, 0).numpy()).save(path)
    model = _bright_model()
    tta = _tta(model, min_sizes=(60, 90, 45), flip=True, batch_size=4)
    from_file, from_image = tta([{"file_name": str(path)}, {"image": _image(_triangle_mask())}])
    assert from_file["instances"].image_size == (H, W)
    for name in ("pred_boxes", "scores", "pred_classes", "pred_masks"):
        a, b = from_file["instances"].get(name), from_image["instances"].get(name)
        a, b = (a.tensor, b.tensor) if isinstance(a, Boxes) else (a, b)
        assert torch.equal(a, b), name
    # six views per image in batches of 4: 4 + 2 for boxes, then 4 + 2 for masks
    assert [c[-1] for c in model.roi_heads.calls if c[0] == "detect"] == [4, 2, 4, 2]
    assert [c[-1] for c in model.roi_heads.calls if c[0] == "masks"] == [4, 2, 4, 2]


# --- errors -------------------------------------------------------------------------------------


def test_refuses_what_it_cannot_augment():
    cfg = get_cfg()
    with pytest.raises(TypeError, match=r"only supported on GeneralizedRCNN.*Linear"):
        GeneralizedRCNNWithTTA(cfg, nn.Linear(2, 2))
    no_proposals = _bright_model()
    no_proposals.proposal_generator = None
    with pytest.raises(ValueError, match="pre-computed proposals"):
        GeneralizedRCNNWithTTA(cfg, no_proposals)
    with pytest.raises(ValueError, match="batch_size"):
        GeneralizedRCNNWithTTA(cfg, _bright_model(), batch_size=0)
    # keypoints cannot be mirrored back without the keypoint flip map (detectron2 refuses them)
    cfg.TEST.AUG.FLIP = True
    with pytest.raises(ValueError, match=r"flips.*keypoint.*TEST\.AUG\.FLIP = False"):
        GeneralizedRCNNWithTTA(cfg, _bright_model(keypoint_on=True))
    flipping = DatasetMapperTTA(min_sizes=[60], max_size=1000, flip=True)
    tta = GeneralizedRCNNWithTTA(cfg, _bright_model(keypoint_on=True), tta_mapper=lambda d: flipping(d))
    with pytest.raises(ValueError, match=r"flipped view.*keypoint"):
        tta([{"image": _image(_triangle_mask())}])


def test_refuses_bad_inputs_and_training_mode():
    tta = _tta(_bright_model(), min_sizes=(60,), flip=False)
    with pytest.raises(ValueError, match="neither 'image' nor 'file_name'"):
        tta([{"height": 3, "width": 4}])
    with pytest.raises(ValueError, match="list of dicts"):
        tta({"image": _image(_triangle_mask())})
    with pytest.raises(ValueError, match="'transforms'"):
        _tta(_bright_model(), (60,), False, tta_mapper=lambda d: [dict(d)])([{"image": _image(_triangle_mask())}])
    tta.model.train()
    with pytest.raises(RuntimeError, match="eval"):
        tta([{"image": _image(_triangle_mask())}])


# --- golden detectron2 models: one view at the model's own size is the plain model --------------


def _golden_model(golden_case, name):
    case = golden_case(name)
    cfg = get_cfg()
    cfg.merge_from_file(str(case.config_file))
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(str(case.pth))
    return cfg, model, case.inputs


@pytest.fixture(scope="module")
def mask_rcnn(golden_case):
    return _golden_model(golden_case, "mask_rcnn_R_50_FPN")


def _assert_same_instances(ours: Instances, theirs: Instances):
    assert ours.image_size == theirs.image_size and len(ours) == len(theirs) > 0
    torch.testing.assert_close(ours.pred_boxes.tensor, theirs.pred_boxes.tensor, atol=1e-3, rtol=0)
    torch.testing.assert_close(ours.scores, theirs.scores, atol=1e-6, rtol=0)
    assert torch.equal(ours.pred_classes, theirs.pred_classes)
    for name in ("pred_masks", "pred_keypoints", "pred_keypoint_heatmaps"):
        assert ours.has(name) == theirs.has(name), name
    if theirs.has("pred_masks"):
        differ = (ours.pred_masks ^ theirs.pred_masks).sum().item()
        assert differ <= 1e-4 * theirs.pred_masks.sum().item(), differ
    if theirs.has("pred_keypoints"):
        torch.testing.assert_close(ours.pred_keypoints, theirs.pred_keypoints, atol=1e-3, rtol=0)
        torch.testing.assert_close(ours.pred_keypoint_heatmaps, theirs.pred_keypoint_heatmaps)


def test_mask_rcnn_one_view_at_the_input_size_equals_the_model(mask_rcnn):
    cfg, model, inputs = mask_rcnn
    # inputs[1] is a 640 x 480 resize of a 427 x 320 original: its outputs are rescaled
    cfg = cfg.clone()
    cfg.TEST.AUG.MIN_SIZES = (480,)
    cfg.TEST.AUG.FLIP = False
    tta = GeneralizedRCNNWithTTA(cfg, model)
    with torch.no_grad():
        outputs = tta(inputs)
        for x, out in zip(inputs, outputs):
            (plain,) = model([x])
            assert out["instances"].image_size == (x["height"], x["width"])
            _assert_same_instances(out["instances"], plain["instances"])


def test_mask_rcnn_with_flips_is_mirror_consistent(mask_rcnn):
    # The views of an image and of its mirror image are the same two pictures, so TTA's answer
    # for the mirror image must be its answer for the image, mirrored: boxes, classes, scores
    # and masks. Mapping boxes or masks back wrongly breaks this.
    cfg, model, inputs = mask_rcnn
    cfg = cfg.clone()
    cfg.TEST.AUG.MIN_SIZES = (480,)
    cfg.TEST.AUG.FLIP = True
    tta = GeneralizedRCNNWithTTA(cfg, model)
    mirrored_inputs = [dict(x, image=x["image"].flip(2)) for x in inputs]
    with torch.no_grad():
        outputs, mirrored = tta(inputs), tta(mirrored_inputs)
    for x, out, mir in zip(inputs, outputs, mirrored):
        a, b = out["instances"], mir["instances"]
        assert a.image_size == b.image_size == (x["height"], x["width"]) and len(a) == len(b) == 100
        b_boxes = b.pred_boxes.tensor.clone()
        b_boxes[:, [0, 2]] = x["width"] - b.pred_boxes.tensor[:, [2, 0]]
        torch.testing.assert_close(a.pred_boxes.tensor, b_boxes, atol=1e-3, rtol=0)
        assert torch.equal(a.scores, b.scores) and torch.equal(a.pred_classes, b.pred_classes)
        assert (a.pred_masks ^ b.pred_masks.flip(2)).sum().item() <= 1e-4 * a.pred_masks.sum().item()
        # and the merged detections really combine both views: not all of them are the model's own
        with torch.no_grad():
            (plain,) = model([x])
        best = pairwise_iou(a.pred_boxes, plain["instances"].pred_boxes).max(dim=1).values
        assert 0 < (best > 0.99).sum().item() < len(a)


def test_mask_rcnn_outputs_at_requested_size_with_several_views(mask_rcnn):
    cfg, model, inputs = mask_rcnn
    cfg = cfg.clone()
    cfg.TEST.AUG.MIN_SIZES = (320, 400)
    cfg.TEST.AUG.FLIP = True
    with torch.no_grad():
        (out,) = GeneralizedRCNNWithTTA(cfg, model)([inputs[1]])
    inst = out["instances"]
    assert inst.image_size == (427, 320) and inst.pred_masks.shape == (len(inst), 427, 320)
    assert 0 < len(inst) <= cfg.TEST.DETECTIONS_PER_IMAGE
    boxes = inst.pred_boxes.tensor
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 320).all() and (boxes[:, 3] <= 427).all()
    assert (inst.scores[:-1] >= inst.scores[1:]).all()


def test_keypoint_rcnn_one_view_equals_the_model(golden_case):
    cfg, model, inputs = _golden_model(golden_case, "keypoint_rcnn_R_50_FPN")
    cfg.TEST.AUG.MIN_SIZES = (480,)
    cfg.TEST.AUG.FLIP = False
    tta = GeneralizedRCNNWithTTA(cfg, model)
    with torch.no_grad():
        (out,) = tta([inputs[1]])
        (plain,) = model([inputs[1]])
    assert out["instances"].pred_keypoints.shape == (len(plain["instances"]), 17, 3)
    _assert_same_instances(out["instances"], plain["instances"])
    cfg.TEST.AUG.FLIP = True
    with pytest.raises(ValueError, match="keypoint"):
        GeneralizedRCNNWithTTA(cfg, model)


def test_c4_box_model_one_view_equals_the_model(golden_case):
    cfg, model, inputs = _golden_model(golden_case, "faster_rcnn_R_50_C4")
    cfg.TEST.AUG.MIN_SIZES = (480,)
    cfg.TEST.AUG.FLIP = False
    with torch.no_grad():
        (out,) = GeneralizedRCNNWithTTA(cfg, model)([inputs[0]])
        (plain,) = model([inputs[0]])
    _assert_same_instances(out["instances"], plain["instances"])
