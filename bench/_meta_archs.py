"""One small model and one batch per meta-architecture, for the checks that must cover every one
of them: ``bench_syncs.py`` (host synchronisations per forward), ``gpu_check.py`` (a training step
on a real GPU) and ``tests/integration/test_cuda_emulated.py`` (CUDA-correctness without a GPU).

Each model is a stock model-zoo config of ``../shared/detectron2-configs`` (the rotated one is
Base-RCNN-FPN with detectron2's RRPN/RROIHeads keys) with the structure kept and the layers made
narrow (``SHRINK``, as tests/integration/test_all_configs.py does), few proposals, and a
data-dependent initialisation (:func:`unit_variance_`) so that activations stay near unit scale:
with the zoo's random init and identity FrozenBN statistics, R50 features reach 1e4, where float16
overflows, and an autocast check would test overflow instead of code. Batches are two 64x96
images with ground truth for every head (boxes, classes, masks, keypoints, sem_seg)::

    from _meta_archs import ARCHS, build, make_batch
    model = build("mask_rcnn_fpn")                 # CPU, train mode
    batch = make_batch("mask_rcnn_fpn")            # list[dict] of CPU tensors
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO.parent / "shared" / "detectron2-configs"

IMAGE_HW = (64, 96)
NUM_IMAGES = 2

SHRINK = [
    "MODEL.RESNETS.STEM_OUT_CHANNELS", 32, "MODEL.RESNETS.RES2_OUT_CHANNELS", 32,
    "MODEL.FPN.OUT_CHANNELS", 32, "MODEL.ROI_BOX_HEAD.FC_DIM", 64, "MODEL.ROI_BOX_HEAD.CONV_DIM", 32,
    "MODEL.ROI_MASK_HEAD.CONV_DIM", 32, "MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS", (32,) * 8,
    "MODEL.SEM_SEG_HEAD.CONVS_DIM", 32, "MODEL.WEIGHTS", "",
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN", 200, "MODEL.RPN.POST_NMS_TOPK_TRAIN", 50,
    "MODEL.RPN.PRE_NMS_TOPK_TEST", 200, "MODEL.RPN.POST_NMS_TOPK_TEST", 50,
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", 32, "MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0,
    "MODEL.RETINANET.SCORE_THRESH_TEST", 0.0, "MODEL.RETINANET.TOPK_CANDIDATES_TEST", 100,
    "TEST.DETECTIONS_PER_IMAGE", 10,
]
"""Narrow layers, few proposals; score thresholds 0 so that random weights still detect and the
mask/keypoint heads and postprocessing run."""

ROTATED = [
    "MODEL.PROPOSAL_GENERATOR.NAME", "RRPN", "MODEL.ANCHOR_GENERATOR.NAME", "RotatedAnchorGenerator",
    "MODEL.RPN.BBOX_REG_WEIGHTS", (1.0, 1.0, 1.0, 1.0, 1.0), "MODEL.ROI_HEADS.NAME", "RROIHeads",
    "MODEL.ROI_BOX_HEAD.POOLER_TYPE", "ROIAlignRotated",
    "MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS", (10.0, 10.0, 5.0, 5.0, 1.0),
    # det's rotated IoU is plain torch off CUDA: fewer anchors, proposals and classes keep it quick
    "MODEL.ANCHOR_GENERATOR.ANGLES", [[-60, 0, 60]], "MODEL.ROI_HEADS.NUM_CLASSES", 3,
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN", 50, "MODEL.RPN.POST_NMS_TOPK_TRAIN", 20,
    "MODEL.RPN.PRE_NMS_TOPK_TEST", 50, "MODEL.RPN.POST_NMS_TOPK_TEST", 20,
]
"""detectron2's keys for a rotated Faster R-CNN (it ships no zoo config for one)."""


C4_PROPOSALS = ("MODEL.RPN.POST_NMS_TOPK_TRAIN", 12, "MODEL.RPN.POST_NMS_TOPK_TEST", 12,
                "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", 16)


@dataclass(frozen=True)
class Arch:
    """A meta-architecture to check: its zoo config, extra keys, and the ground truth it trains on."""

    config: str
    overrides: tuple = ()
    gt: frozenset = field(default_factory=frozenset)  # of "masks", "keypoints", "sem_seg", "rotated"
    num_classes: int = 80  # MODEL.ROI_HEADS.NUM_CLASSES (RETINANET's for RetinaNet) of the config


ARCHS: dict[str, Arch] = {
    # C4 runs res5 on every proposal: fewer of them
    "faster_rcnn_c4": Arch("COCO-Detection/faster_rcnn_R_50_C4_1x.yaml", C4_PROPOSALS),
    "faster_rcnn_dc5": Arch("COCO-Detection/faster_rcnn_R_50_DC5_1x.yaml"),
    "faster_rcnn_fpn": Arch("COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml"),
    "mask_rcnn_fpn": Arch("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml", gt=frozenset({"masks"})),
    "keypoint_rcnn_fpn": Arch("COCO-Keypoints/keypoint_rcnn_R_50_FPN_1x.yaml", gt=frozenset({"keypoints"}), num_classes=1),
    "cascade_mask_rcnn_fpn": Arch("Misc/cascade_mask_rcnn_R_50_FPN_1x.yaml", gt=frozenset({"masks"})),
    "retinanet": Arch("COCO-Detection/retinanet_R_50_FPN_1x.yaml"),
    "proposal_network": Arch("COCO-Detection/rpn_R_50_FPN_1x.yaml"),
    "semantic_fpn": Arch("Misc/semantic_R_50_FPN_1x.yaml", gt=frozenset({"sem_seg"})),
    "panoptic_fpn": Arch("COCO-PanopticSegmentation/panoptic_fpn_R_50_1x.yaml", gt=frozenset({"masks", "sem_seg"})),
    "rotated_rcnn": Arch("Base-RCNN-FPN.yaml", tuple(ROTATED), frozenset({"rotated"}), num_classes=3),
}
"""Every meta-architecture det ships (Faster R-CNN C4/DC5/FPN, Mask, Keypoint, Cascade, RetinaNet,
ProposalNetwork, SemanticSegmentor, PanopticFPN, rotated RRPN + RROIHeads)."""


def config(name: str, device: str = "cpu") -> Any:
    from det.core import get_cfg

    arch = ARCHS[name]
    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIGS / arch.config))
    cfg.merge_from_list([*SHRINK, *arch.overrides, "MODEL.DEVICE", device])
    return cfg


def build(name: str, *, seed: int = 0) -> Any:
    """The small model of ``name`` on the CPU, in train mode, calibrated by :func:`unit_variance_`."""
    import torch

    from det.core import build_model

    torch.manual_seed(seed)
    model = build_model(config(name))
    unit_variance_(model, make_batch(name, seed=seed))
    return model.train()


BOX_DELTA_LAYERS = ("bbox_pred", "anchor_deltas")


def unit_variance_(model: Any, batch: list[dict]) -> None:
    """Rescale every convolution and linear layer (a det ``Conv2d``'s FrozenBN affine terms, else
    the layer's weight and bias) so that its output on ``batch`` has unit standard deviation (0.1
    for the box-delta predictors of :data:`BOX_DELTA_LAYERS`): one
    eval-mode forward pass, in network order (a layer shared by the pyramid levels, on the first
    level it sees). Predictors included: with the zoo's init (std 0.01)
    every RetinaNet score is 0.01 to a few ulps, and their order would be decided by rounding."""
    import torch

    from det.core.layers.batch_norm import FrozenBatchNorm2d

    done: set[int] = set()

    def rescale(module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        # once per layer: heads shared by the pyramid levels see their first level only
        std = float(output.float().std()) / targets.get(id(module), 1.0)
        if id(module) in done or not (std > 0 and torch.isfinite(output).all()):
            return output
        done.add(id(module))
        norm = getattr(module, "norm", None)
        target = norm if isinstance(norm, FrozenBatchNorm2d) else module
        with torch.no_grad():
            target.weight.div_(std)
            if target.bias is not None:
                target.bias.div_(std)
        return output / std

    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    # box regression outputs a tenth of that: unit-scale deltas would make boxes of e^3 times
    # their anchors, some of them infinite
    targets = {id(m): 0.1 for name, m in model.named_modules() if name.rsplit(".", 1)[-1] in BOX_DELTA_LAYERS}
    handles = [m.register_forward_hook(rescale) for m in layers]
    try:
        was_training = model.training
        with torch.no_grad():
            model.eval()(batch[:1])
        model.train(was_training)
    finally:
        for h in handles:
            h.remove()


def make_batch(name: str, *, seed: int = 0) -> list[dict]:
    """Two images with the ground truth ``name`` trains on (CPU tensors; PolygonMasks)."""
    import torch

    from det.structures import Boxes, Instances, Keypoints, PolygonMasks, RotatedBoxes

    gt = ARCHS[name].gt
    g = torch.Generator().manual_seed(seed)
    h, w = IMAGE_HW
    batch = []
    for i in range(NUM_IMAGES):
        instances = Instances((h, w))
        boxes = torch.tensor([[10.0, 12.0, 50.0, 48.0], [40.0 + 4 * i, 20.0, 90.0, 60.0], [5.0, 30.0, 30.0, 62.0]])
        if "rotated" in gt:
            centers = (boxes[:, :2] + boxes[:, 2:]) / 2
            sizes = boxes[:, 2:] - boxes[:, :2]
            instances.gt_boxes = RotatedBoxes(torch.cat([centers, sizes, torch.tensor([[30.0], [-45.0], [0.0]])], 1))
        else:
            instances.gt_boxes = Boxes(boxes)
        instances.gt_classes = torch.tensor([1, 2, 0]) % ARCHS[name].num_classes
        if "masks" in gt:
            instances.gt_masks = PolygonMasks(
                [[[x0, y0, x1, y0, x1, y1, x0, y1]] for x0, y0, x1, y1 in boxes.tolist()]
            )
        if "keypoints" in gt:
            kp = torch.rand(3, 17, 3, generator=g)
            kp[:, :, 0] = boxes[:, None, 0] + kp[:, :, 0] * (boxes[:, None, 2] - boxes[:, None, 0])
            kp[:, :, 1] = boxes[:, None, 1] + kp[:, :, 1] * (boxes[:, None, 3] - boxes[:, None, 1])
            kp[:, :, 2] = 2.0
            instances.gt_keypoints = Keypoints(kp)
        item = {"image": torch.rand(3, h, w, generator=g) * 255, "instances": instances, "height": h, "width": w}
        if "sem_seg" in gt:
            sem = torch.randint(0, 54, (h, w), generator=g)
            sem[:4] = 255  # detectron2's ignore value
            item["sem_seg"] = sem
        batch.append(item)
    return batch


def inference_inputs(batch: list[dict]) -> list[dict]:
    """``batch`` without its ground truth."""
    return [{"image": x["image"], "height": x["height"], "width": x["width"]} for x in batch]


def batch_to(batch: list[dict], device: Any) -> list[dict]:
    """``batch`` with its tensors and Instances moved by ``.to(device)``."""
    import torch

    from det.structures import Instances

    moved = []
    for item in batch:
        out = {}
        for key, value in item.items():
            out[key] = value.to(device) if isinstance(value, (torch.Tensor, Instances)) else value
        moved.append(out)
    return moved
