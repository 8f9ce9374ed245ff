"""The standard config schema: every key and default of detectron2's ``get_cfg()``.

Written out by hand, as detectron2 does, so that a reader sees the whole schema in one place and
every model-zoo YAML merges no matter which det distributions are installed. Plugins add keys for
their own components through the ``det_extend_config`` hook; nothing here depends on a plugin.

Conventions (as in detectron2): a key ending in ``_TRAIN`` applies to training, ``_TEST`` to
inference; tuples are used where a list-valued default should not be mutated in place.
"""

from __future__ import annotations

from det.core.config.config import CfgNode as CN

_C = CN()

# Config files written for detectron2 carry VERSION: 2; det accepts exactly that.
_C.VERSION = 2

_C.MODEL = CN()
_C.MODEL.LOAD_PROPOSALS = False
_C.MODEL.MASK_ON = False
_C.MODEL.KEYPOINT_ON = False
_C.MODEL.DEVICE = "cuda"
_C.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"

# A checkpoint path (or URL for detectron2); empty means random initialisation.
_C.MODEL.WEIGHTS = ""

# BGR order with values in [0, 255]: the statistics of the MSRA ImageNet models. Torchvision
# models want RGB with MEAN = [123.675, 116.280, 103.530] and STD = [58.395, 57.120, 57.375].
_C.MODEL.PIXEL_MEAN = [103.530, 116.280, 123.675]
# STD of 1 because the Caffe2 (MSRA) weights were trained on unscaled pixels.
_C.MODEL.PIXEL_STD = [1.0, 1.0, 1.0]

# -----------------------------------------------------------------------------
# INPUT
# -----------------------------------------------------------------------------
_C.INPUT = CN()
# A tuple: one of these shortest-edge sizes is drawn per training image ("choice"), or a size is
# drawn from the [min, max] range ("range").
_C.INPUT.MIN_SIZE_TRAIN = (800,)
_C.INPUT.MIN_SIZE_TRAIN_SAMPLING = "choice"
_C.INPUT.MAX_SIZE_TRAIN = 1333
# 0 disables resizing at test time.
_C.INPUT.MIN_SIZE_TEST = 800
_C.INPUT.MAX_SIZE_TEST = 1333
# "horizontal", "vertical" or "none".
_C.INPUT.RANDOM_FLIP = "horizontal"

# Random crop during training; SIZE is read according to TYPE (relative, relative_range,
# absolute, absolute_range).
_C.INPUT.CROP = CN({"ENABLED": False})
_C.INPUT.CROP.TYPE = "relative_range"
_C.INPUT.CROP.SIZE = [0.9, 0.9]

# Channel order the model receives: any PIL mode (RGB, L, ...) or "BGR" (OpenCV order).
_C.INPUT.FORMAT = "BGR"
# How instance masks are kept in memory: "polygon" or "bitmask".
_C.INPUT.MASK_FORMAT = "polygon"

# -----------------------------------------------------------------------------
# Dataset
# -----------------------------------------------------------------------------
_C.DATASETS = CN()
# Names of registered datasets.
_C.DATASETS.TRAIN = ()
# Precomputed proposal files, one per dataset of TRAIN/TEST, in the same order.
_C.DATASETS.PROPOSAL_FILES_TRAIN = ()
_C.DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TRAIN = 2000
_C.DATASETS.TEST = ()
_C.DATASETS.PROPOSAL_FILES_TEST = ()
_C.DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TEST = 1000

# -----------------------------------------------------------------------------
# DataLoader
# -----------------------------------------------------------------------------
_C.DATALOADER = CN()
_C.DATALOADER.NUM_WORKERS = 4
# Batch images of similar aspect ratio together: less padding, faster training.
_C.DATALOADER.ASPECT_RATIO_GROUPING = True
# "TrainingSampler" or "RepeatFactorTrainingSampler" (for long-tailed datasets such as LVIS).
_C.DATALOADER.SAMPLER_TRAIN = "TrainingSampler"
# Repeat-factor sampler: images of categories rarer than this frequency are repeated.
_C.DATALOADER.REPEAT_THRESHOLD = 0.0
_C.DATALOADER.REPEAT_SQRT = True
# Drop training images without annotations.
_C.DATALOADER.FILTER_EMPTY_ANNOTATIONS = True

# ---------------------------------------------------------------------------- #
# Backbone options
# ---------------------------------------------------------------------------- #
_C.MODEL.BACKBONE = CN()
# A BACKBONE component name, called with (cfg, input_shape).
_C.MODEL.BACKBONE.NAME = "build_resnet_backbone"
# Stages up to and including this one are frozen: 1 = the stem, 2 = stem and res2, ...
# 0 trains everything.
_C.MODEL.BACKBONE.FREEZE_AT = 2

# ---------------------------------------------------------------------------- #
# FPN options
# ---------------------------------------------------------------------------- #
_C.MODEL.FPN = CN()
# Backbone features FPN builds on, e.g. ["res2", "res3", "res4", "res5"].
_C.MODEL.FPN.IN_FEATURES = []
_C.MODEL.FPN.OUT_CHANNELS = 256
# Normalisation of the lateral and output convs: "" (none), "GN", "SyncBN", ...
_C.MODEL.FPN.NORM = ""
# How a top-down feature is combined with the lateral one: "sum" or "avg".
_C.MODEL.FPN.FUSE_TYPE = "sum"

# ---------------------------------------------------------------------------- #
# Proposal generator options
# ---------------------------------------------------------------------------- #
_C.MODEL.PROPOSAL_GENERATOR = CN()
# A PROPOSAL_GENERATOR component name ("RPN", "RRPN") or "PrecomputedProposals".
_C.MODEL.PROPOSAL_GENERATOR.NAME = "RPN"
# Proposals narrower or shorter than this (in input-image pixels) are dropped.
_C.MODEL.PROPOSAL_GENERATOR.MIN_SIZE = 0

# ---------------------------------------------------------------------------- #
# Anchor generator options
# ---------------------------------------------------------------------------- #
_C.MODEL.ANCHOR_GENERATOR = CN()
_C.MODEL.ANCHOR_GENERATOR.NAME = "DefaultAnchorGenerator"
# Absolute anchor sizes in pixels. A list of lists: the outer list has one entry per feature map
# (or a single entry reused for every map), the inner list the sizes on that map.
_C.MODEL.ANCHOR_GENERATOR.SIZES = [[32, 64, 128, 256, 512]]
# Height/width ratios, with the same outer-list convention as SIZES.
_C.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]
# Rotated anchors only: angles in degrees, same convention.
_C.MODEL.ANCHOR_GENERATOR.ANGLES = [[-90, 0, 90]]
# Anchor centres sit at (offset * stride) inside each cell: 0.0 (top-left corner, detectron2's
# default) or 0.5 (centre).
_C.MODEL.ANCHOR_GENERATOR.OFFSET = 0.0

# ---------------------------------------------------------------------------- #
# RPN options
# ---------------------------------------------------------------------------- #
_C.MODEL.RPN = CN()
# An RPN_HEAD component name.
_C.MODEL.RPN.HEAD_NAME = "StandardRPNHead"
# Features the RPN runs on: "res4" for C4 models, ["p2", ..., "p6"] for FPN.
_C.MODEL.RPN.IN_FEATURES = ["res4"]
# Anchors reaching more than this many pixels outside the image are ignored in training;
# negative keeps every anchor.
_C.MODEL.RPN.BOUNDARY_THRESH = -1
# IoU thresholds and labels for matching anchors to ground truth: below 0.3 negative (0), between
# ignored (-1), at or above 0.7 positive (1).
_C.MODEL.RPN.IOU_THRESHOLDS = [0.3, 0.7]
_C.MODEL.RPN.IOU_LABELS = [0, -1, 1]
# Anchors sampled per image to train the RPN, and the positive share of them.
_C.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 256
_C.MODEL.RPN.POSITIVE_FRACTION = 0.5
# "smooth_l1", "giou" or "diou"
_C.MODEL.RPN.BBOX_REG_LOSS_TYPE = "smooth_l1"
_C.MODEL.RPN.BBOX_REG_LOSS_WEIGHT = 1.0
# Weights of the (dx, dy, dw, dh) deltas in Box2BoxTransform.
_C.MODEL.RPN.BBOX_REG_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
# 0.0 turns smooth L1 into L1.
_C.MODEL.RPN.SMOOTH_L1_BETA = 0.0
_C.MODEL.RPN.LOSS_WEIGHT = 1.0
# Top-scoring proposals kept before NMS, per feature map (FPN) or in total (C4).
_C.MODEL.RPN.PRE_NMS_TOPK_TRAIN = 12000
_C.MODEL.RPN.PRE_NMS_TOPK_TEST = 6000
# Proposals kept after NMS: per image (detectron2 >= v0.2; per batch in Detectron1).
_C.MODEL.RPN.POST_NMS_TOPK_TRAIN = 2000
_C.MODEL.RPN.POST_NMS_TOPK_TEST = 1000
_C.MODEL.RPN.NMS_THRESH = 0.7
# Channels of the head's hidden convs; -1 means "as many as the input features".
_C.MODEL.RPN.CONV_DIMS = [-1]

# ---------------------------------------------------------------------------- #
# ROI HEADS options
# ---------------------------------------------------------------------------- #
_C.MODEL.ROI_HEADS = CN()
_C.MODEL.ROI_HEADS.NAME = "Res5ROIHeads"
# Foreground classes (background is not counted).
_C.MODEL.ROI_HEADS.NUM_CLASSES = 80
# Features the ROI heads pool from: "res4" for C4, ["p2", ..., "p5"] for FPN.
_C.MODEL.ROI_HEADS.IN_FEATURES = ["res4"]
# Proposals with IoU >= 0.5 are foreground (1), below are background (0).
_C.MODEL.ROI_HEADS.IOU_THRESHOLDS = [0.5]
_C.MODEL.ROI_HEADS.IOU_LABELS = [0, 1]
# RoIs sampled per image for training, and the foreground share of them.
_C.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 512
_C.MODEL.ROI_HEADS.POSITIVE_FRACTION = 0.25
# Inference: detections scoring below this are dropped before NMS.
_C.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.05
_C.MODEL.ROI_HEADS.NMS_THRESH_TEST = 0.5
# Add ground-truth boxes to the proposals during training.
_C.MODEL.ROI_HEADS.PROPOSAL_APPEND_GT = True

# ---------------------------------------------------------------------------- #
# Box Head
# ---------------------------------------------------------------------------- #
_C.MODEL.ROI_BOX_HEAD = CN()
# An ROI_BOX_HEAD component name; "" for heads that build their own (Res5ROIHeads).
_C.MODEL.ROI_BOX_HEAD.NAME = ""
# "smooth_l1", "giou", "diou" or "ciou"
_C.MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE = "smooth_l1"
_C.MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_WEIGHT = 1.0
# (10, 10, 5, 5) is Detectron1's choice; it scales the deltas to roughly unit variance.
_C.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
_C.MODEL.ROI_BOX_HEAD.SMOOTH_L1_BETA = 0.0
_C.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 14
# 0 lets ROIAlign choose adaptively.
_C.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO = 0
# "ROIAlignV2" (aligned=True), "ROIAlign", "ROIPool" or "ROIAlignRotated".
_C.MODEL.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlignV2"

_C.MODEL.ROI_BOX_HEAD.NUM_FC = 0
_C.MODEL.ROI_BOX_HEAD.FC_DIM = 1024
_C.MODEL.ROI_BOX_HEAD.NUM_CONV = 0
_C.MODEL.ROI_BOX_HEAD.CONV_DIM = 256
_C.MODEL.ROI_BOX_HEAD.NORM = ""
# One box regressor shared by all classes instead of one per class.
_C.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = False
# Cascade-style: train on the boxes predicted from the proposals rather than the proposals.
_C.MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES = False
# Sigmoid cross-entropy and federated loss (for long-tailed datasets).
_C.MODEL.ROI_BOX_HEAD.USE_SIGMOID_CE = False
_C.MODEL.ROI_BOX_HEAD.USE_FED_LOSS = False
_C.MODEL.ROI_BOX_HEAD.FED_LOSS_FREQ_WEIGHT_POWER = 0.5
_C.MODEL.ROI_BOX_HEAD.FED_LOSS_NUM_CLASSES = 50

# ---------------------------------------------------------------------------- #
# Cascaded Box Head
# ---------------------------------------------------------------------------- #
_C.MODEL.ROI_BOX_CASCADE_HEAD = CN()
# One entry per cascade stage, after the first (whose values come from ROI_BOX_HEAD/ROI_HEADS).
_C.MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS = (
    (10.0, 10.0, 5.0, 5.0),
    (20.0, 20.0, 10.0, 10.0),
    (30.0, 30.0, 15.0, 15.0),
)
_C.MODEL.ROI_BOX_CASCADE_HEAD.IOUS = (0.5, 0.6, 0.7)

# ---------------------------------------------------------------------------- #
# Mask Head
# ---------------------------------------------------------------------------- #
_C.MODEL.ROI_MASK_HEAD = CN()
_C.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
_C.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 14
_C.MODEL.ROI_MASK_HEAD.POOLER_SAMPLING_RATIO = 0
# Number of convs before the upsampling deconv.
_C.MODEL.ROI_MASK_HEAD.NUM_CONV = 0
_C.MODEL.ROI_MASK_HEAD.CONV_DIM = 256
_C.MODEL.ROI_MASK_HEAD.NORM = ""
# One mask for all classes instead of one per class.
_C.MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK = False
_C.MODEL.ROI_MASK_HEAD.POOLER_TYPE = "ROIAlignV2"

# ---------------------------------------------------------------------------- #
# Keypoint Head
# ---------------------------------------------------------------------------- #
_C.MODEL.ROI_KEYPOINT_HEAD = CN()
_C.MODEL.ROI_KEYPOINT_HEAD.NAME = "KRCNNConvDeconvUpsampleHead"
_C.MODEL.ROI_KEYPOINT_HEAD.POOLER_RESOLUTION = 14
_C.MODEL.ROI_KEYPOINT_HEAD.POOLER_SAMPLING_RATIO = 0
_C.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = tuple(512 for _ in range(8))
# 17 is the COCO person keypoint count.
_C.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS = 17

# Training images with fewer visible keypoints than this are skipped.
_C.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE = 1
# True: divide the loss by the visible keypoints of the batch. False: by a fixed count
# (NUM_KEYPOINTS * images * sampled RoIs * positive fraction), so LOSS_WEIGHT needs retuning.
_C.MODEL.ROI_KEYPOINT_HEAD.NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS = True
_C.MODEL.ROI_KEYPOINT_HEAD.LOSS_WEIGHT = 1.0
_C.MODEL.ROI_KEYPOINT_HEAD.POOLER_TYPE = "ROIAlignV2"

# ---------------------------------------------------------------------------- #
# Semantic Segmentation Head
# ---------------------------------------------------------------------------- #
_C.MODEL.SEM_SEG_HEAD = CN()
_C.MODEL.SEM_SEG_HEAD.NAME = "SemSegFPNHead"
_C.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["p2", "p3", "p4", "p5"]
# Label ignored by the loss (unlabelled pixels).
_C.MODEL.SEM_SEG_HEAD.IGNORE_VALUE = 255
# 54 = 53 COCO stuff classes + 1 "things" class for Panoptic FPN.
_C.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 54
_C.MODEL.SEM_SEG_HEAD.CONVS_DIM = 128
# Stride of the head's output relative to the input image.
_C.MODEL.SEM_SEG_HEAD.COMMON_STRIDE = 4
_C.MODEL.SEM_SEG_HEAD.NORM = "GN"
_C.MODEL.SEM_SEG_HEAD.LOSS_WEIGHT = 1.0

_C.MODEL.PANOPTIC_FPN = CN()
# Panoptic FPN: instance losses are scaled by this, the semantic loss by SEM_SEG_HEAD.LOSS_WEIGHT.
_C.MODEL.PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT = 1.0

# Heuristic that merges instance and semantic outputs into a panoptic segmentation.
_C.MODEL.PANOPTIC_FPN.COMBINE = CN({"ENABLED": True})
_C.MODEL.PANOPTIC_FPN.COMBINE.OVERLAP_THRESH = 0.5
_C.MODEL.PANOPTIC_FPN.COMBINE.STUFF_AREA_LIMIT = 4096
_C.MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH = 0.5

# ---------------------------------------------------------------------------- #
# RetinaNet Head
# ---------------------------------------------------------------------------- #
_C.MODEL.RETINANET = CN()
_C.MODEL.RETINANET.NUM_CLASSES = 80
_C.MODEL.RETINANET.IN_FEATURES = ["p3", "p4", "p5", "p6", "p7"]
# Convs in each of the classification and regression towers.
_C.MODEL.RETINANET.NUM_CONVS = 4
# Anchor matching: below 0.4 background, between ignored, at or above 0.5 foreground.
_C.MODEL.RETINANET.IOU_THRESHOLDS = [0.4, 0.5]
_C.MODEL.RETINANET.IOU_LABELS = [0, -1, 1]
# Initial foreground probability of the classifier (sets its bias), for a stable start.
_C.MODEL.RETINANET.PRIOR_PROB = 0.01
_C.MODEL.RETINANET.SCORE_THRESH_TEST = 0.05
# Candidates kept per feature level before NMS.
_C.MODEL.RETINANET.TOPK_CANDIDATES_TEST = 1000
_C.MODEL.RETINANET.NMS_THRESH_TEST = 0.5
_C.MODEL.RETINANET.BBOX_REG_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
_C.MODEL.RETINANET.FOCAL_LOSS_GAMMA = 2.0
_C.MODEL.RETINANET.FOCAL_LOSS_ALPHA = 0.25
_C.MODEL.RETINANET.SMOOTH_L1_LOSS_BETA = 0.1
# "smooth_l1", "giou", "diou" or "ciou"
_C.MODEL.RETINANET.BBOX_REG_LOSS_TYPE = "smooth_l1"
# "" (none), "BN" or "GN" in the head's convs (BN statistics are per level).
_C.MODEL.RETINANET.NORM = ""

# ---------------------------------------------------------------------------- #
# ResNe[X]t options (ResNets = {ResNet, ResNeXt})
# ---------------------------------------------------------------------------- #
_C.MODEL.RESNETS = CN()
_C.MODEL.RESNETS.DEPTH = 50
# Stages whose outputs the backbone returns: res2..res5, or "stem".
_C.MODEL.RESNETS.OUT_FEATURES = ["res4"]
# 1 = ResNet, > 1 = ResNeXt.
_C.MODEL.RESNETS.NUM_GROUPS = 1
# "FrozenBN", "BN", "SyncBN", "GN", ...
_C.MODEL.RESNETS.NORM = "FrozenBN"
# Bottleneck width per group (ResNeXt "d").
_C.MODEL.RESNETS.WIDTH_PER_GROUP = 64
# True: stride 2 in the 1x1 conv (MSRA/Caffe2 models); False: in the 3x3 conv (torchvision).
_C.MODEL.RESNETS.STRIDE_IN_1X1 = True
# 2 turns res5 into a dilated stage (the "DC5" models).
_C.MODEL.RESNETS.RES5_DILATION = 1
# Output channels of res2; 64 for R18/R34.
_C.MODEL.RESNETS.RES2_OUT_CHANNELS = 256
_C.MODEL.RESNETS.STEM_OUT_CHANNELS = 64
# Deformable convolution per stage (res2, res3, res4, res5).
_C.MODEL.RESNETS.DEFORM_ON_PER_STAGE = [False, False, False, False]
# True: modulated (v2) deformable convs; False: v1.
_C.MODEL.RESNETS.DEFORM_MODULATED = False
_C.MODEL.RESNETS.DEFORM_NUM_GROUPS = 1

# ---------------------------------------------------------------------------- #
# Solver
# ---------------------------------------------------------------------------- #
_C.SOLVER = CN()
# "WarmupMultiStepLR", "WarmupCosineLR" or "WarmupStepWithFixedGammaLR".
_C.SOLVER.LR_SCHEDULER_NAME = "WarmupMultiStepLR"
_C.SOLVER.MAX_ITER = 40000
_C.SOLVER.BASE_LR = 0.001
# Cosine schedule: the learning rate at the end.
_C.SOLVER.BASE_LR_END = 0.0
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.NESTEROV = False
_C.SOLVER.WEIGHT_DECAY = 0.0001
# Weight decay of normalisation layers' parameters.
_C.SOLVER.WEIGHT_DECAY_NORM = 0.0
_C.SOLVER.GAMMA = 0.1
# Iterations at which the learning rate is multiplied by GAMMA.
_C.SOLVER.STEPS = (30000,)
# WarmupStepWithFixedGammaLR: number of decays over the run.
_C.SOLVER.NUM_DECAYS = 3
_C.SOLVER.WARMUP_FACTOR = 1.0 / 1000
_C.SOLVER.WARMUP_ITERS = 1000
_C.SOLVER.WARMUP_METHOD = "linear"
# WarmupStepWithFixedGammaLR: whether decay steps are rescaled after warm-up.
_C.SOLVER.RESCALE_INTERVAL = False
# Save a checkpoint every this many iterations.
_C.SOLVER.CHECKPOINT_PERIOD = 5000
# Images per batch over all workers; with 8 GPUs and 16 images, 2 per GPU.
_C.SOLVER.IMS_PER_BATCH = 16
# When > 0, rescale IMS_PER_BATCH, BASE_LR, STEPS and friends linearly from this world size to
# the actual one.
_C.SOLVER.REFERENCE_WORLD_SIZE = 0
# Detectron1 trained biases with 2x the learning rate and no weight decay; 1.0 and None (use
# WEIGHT_DECAY) treat them like other parameters.
_C.SOLVER.BIAS_LR_FACTOR = 1.0
_C.SOLVER.WEIGHT_DECAY_BIAS = None

# Gradient clipping: "value" clips each element to [-CLIP_VALUE, CLIP_VALUE]; "norm" clips the
# NORM_TYPE-norm of each parameter's gradient to CLIP_VALUE.
_C.SOLVER.CLIP_GRADIENTS = CN({"ENABLED": False})
_C.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "value"
_C.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 1.0
_C.SOLVER.CLIP_GRADIENTS.NORM_TYPE = 2.0

# Automatic mixed precision in training.
_C.SOLVER.AMP = CN({"ENABLED": False})

# ---------------------------------------------------------------------------- #
# Specific test options
# ---------------------------------------------------------------------------- #
_C.TEST = CN()
# Regression tests: [[task, metric, value, tolerance], ...].
_C.TEST.EXPECTED_RESULTS = []
# Evaluate every this many iterations during training; 0 only at the end.
_C.TEST.EVAL_PERIOD = 0
# Per-keypoint OKS sigmas for COCO keypoint AP; empty uses COCO's person sigmas.
_C.TEST.KEYPOINT_OKS_SIGMAS = []
# Detections kept per image (COCO's AP uses at most 100).
_C.TEST.DETECTIONS_PER_IMAGE = 100

# Test-time augmentation.
_C.TEST.AUG = CN({"ENABLED": False})
_C.TEST.AUG.MIN_SIZES = (400, 500, 600, 700, 800, 900, 1000, 1100, 1200)
_C.TEST.AUG.MAX_SIZE = 4000
_C.TEST.AUG.FLIP = True

# Recompute BatchNorm statistics before evaluation.
_C.TEST.PRECISE_BN = CN({"ENABLED": False})
_C.TEST.PRECISE_BN.NUM_ITER = 200

# ---------------------------------------------------------------------------- #
# Misc options
# ---------------------------------------------------------------------------- #
# Where checkpoints, logs and evaluation results go.
_C.OUTPUT_DIR = "./output"
# Negative: a different seed each run; otherwise the seed of every worker.
_C.SEED = -1
# Let cudnn pick the fastest algorithms (best when input sizes do not vary).
_C.CUDNN_BENCHMARK = False
# torch float32 matmul precision ("highest", "high", "medium"); "" leaves torch's setting.
_C.FLOAT32_PRECISION = ""
# Visualise training samples and proposals every this many iterations; 0 disables it.
_C.VIS_PERIOD = 0

# Global knobs for experiments that no component owns.
_C.GLOBAL = CN()
_C.GLOBAL.HACK = 1.0
