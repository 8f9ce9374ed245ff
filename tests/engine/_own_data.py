"""What the own-data tests (issue #19) share: the zoo config they fine-tune, shrunk to test size."""

from __future__ import annotations

ZOO_MASK_RCNN = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
"""The model-zoo config the own-data tests fine-tune (from ``../shared/detectron2-configs``)."""

ZOO_SHRINK = ["MODEL.RESNETS.DEPTH", "18", "MODEL.RESNETS.RES2_OUT_CHANNELS", "64", "MODEL.FPN.OUT_CHANNELS", "32",
              "MODEL.ROI_BOX_HEAD.FC_DIM", "32", "MODEL.ROI_MASK_HEAD.CONV_DIM", "16", "MODEL.DEVICE", "cpu"]
"""Overrides that shrink the zoo's Mask R-CNN to test size: ResNet-18, narrow FPN and heads."""


def shrunk_zoo_cfg(configs_dir, num_classes: int = 80):
    from det.core import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(configs_dir / ZOO_MASK_RCNN))
    cfg.merge_from_list([*ZOO_SHRINK, "MODEL.ROI_HEADS.NUM_CLASSES", str(num_classes)])
    return cfg
