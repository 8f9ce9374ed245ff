"""The alias table: which det objects stand behind detectron2's import paths.

Data only (no imports). Three kinds of entries:

``ALIASED_MODULES``
    detectron2 module path -> det module with the same content, file for file. Served by
    ``det.core.lazy.alias_package``: the path *is* det's module (one module object, two names,
    and every submodule below it follows).
``MODULES``
    detectron2 module path -> det modules searched in order for a name. The path is a module of
    its own (det has no single module that matches it); each name it serves is looked up in those
    modules and is the very object found there.
``NAMES``
    detectron2 module path -> {name: "module:attribute"} for names that live elsewhere in det,
    or under another name; they win over the search.

A path that has entries below it (``detectron2.modeling`` -> ``detectron2.modeling.roi_heads``) is
a package, and its submodules are attributes. Plugins add entries through the
``det_detectron2_names`` hook (see the distribution's README).
"""

from __future__ import annotations

# det module prefix -> the distribution that provides it (for "pip install ..." hints).
DISTRIBUTIONS = {
    "det.structures": "det-structures",
    "det.checkpoint": "det-checkpoint",
    "det.core": "det-core",
    "det.backbones": "det-backbones",
    "det.heads.rpn": "det-heads-rpn",
    "det.heads.roi": "det-heads-roi",
    "det.heads.mask": "det-heads-mask",
    "det.heads.keypoint": "det-heads-keypoint",
    "det.heads.semseg": "det-heads-semseg",
    "det.heads.retinanet": "det-heads-retinanet",
    "det.data": "det-data",
    "det.evaluation": "det-evaluation",
    "det.engine": "det-engine",
    "det.model_zoo": "det-engine",
    "det.export": "det-export",
    "det.mmdet_wrapper": "det-mmdet-wrapper",
}

_DATA = "det.data"
_EVAL = "det.evaluation"
_TRAIN = "det.engine.train"

ALIASED_MODULES = {
    # structures, checkpoint, layers: det keeps detectron2's files
    **{f"detectron2.structures.{m}": f"det.structures.{m}"
       for m in ("boxes", "rotated_boxes", "instances", "image_list", "masks", "keypoints")},
    "detectron2.checkpoint.c2_model_loading": "det.checkpoint.c2_model_loading",
    "detectron2.checkpoint.detection_checkpoint": "det.checkpoint.detection_checkpoint",
    **{f"detectron2.layers.{m}": f"det.core.layers.{m}"
       for m in ("aspp", "batch_norm", "blocks", "deform_conv", "losses", "mask_ops", "nms", "roi_align",
                 "roi_align_rotated", "rotated_boxes", "shape_spec", "wrappers")},
    # config
    "detectron2.config.compat": "det.core.config.compat",
    "detectron2.config.config": "det.core.config.config",
    "detectron2.config.defaults": "det.core.config.defaults",
    "detectron2.config.lazy": "det.core.config.lazy",
    # modeling
    **{f"detectron2.modeling.{m}": f"det.core.modeling.{m}"
       for m in ("anchor_generator", "box_regression", "matcher", "poolers", "postprocessing", "sampling")},
    "detectron2.modeling.test_time_augmentation": "det.engine.test_time_augmentation",
    "detectron2.modeling.backbone.backbone": "det.core.modeling.backbone",
    "detectron2.modeling.backbone.fpn": "det.backbones.fpn",
    "detectron2.modeling.backbone.resnet": "det.backbones.resnet",
    "detectron2.modeling.backbone.regnet": "det.backbones.regnet",
    "detectron2.modeling.meta_arch.rcnn": "det.core.modeling.meta_arch",
    "detectron2.modeling.meta_arch.retinanet": "det.heads.retinanet.retinanet",
    "detectron2.modeling.meta_arch.dense_detector": "det.heads.retinanet.dense_detector",
    "detectron2.modeling.meta_arch.fcos": "det.heads.retinanet.fcos",
    "detectron2.modeling.meta_arch.panoptic_fpn": "det.heads.semseg.panoptic_fpn",
    "detectron2.modeling.meta_arch.semantic_seg": "det.heads.semseg.semantic_seg",
    "detectron2.modeling.proposal_generator.rpn": "det.heads.rpn.rpn",
    "detectron2.modeling.proposal_generator.rrpn": "det.heads.rpn.rrpn",
    "detectron2.modeling.proposal_generator.proposal_utils": "det.heads.rpn.proposal_utils",
    **{f"detectron2.modeling.roi_heads.{m}": f"det.heads.roi.{m}"
       for m in ("box_head", "cascade_rcnn", "fast_rcnn", "roi_heads", "rotated_fast_rcnn")},
    "detectron2.modeling.roi_heads.mask_head": "det.heads.mask.mask_head",
    "detectron2.modeling.roi_heads.keypoint_head": "det.heads.keypoint.keypoint_head",
    # data
    **{f"detectron2.data.{m}": f"{_DATA}.{m}"
       for m in ("benchmark", "build", "catalog", "common", "dataset_mapper", "detection_utils")},
    **{f"detectron2.data.datasets.{m}": f"{_DATA}.datasets.{m}"
       for m in ("builtin", "builtin_meta", "cityscapes", "cityscapes_panoptic", "coco", "coco_panoptic", "lvis",
                 "pascal_voc")},
    **{f"detectron2.data.transforms.{m}": f"{_DATA}.transforms.{m}"
       for m in ("augmentation", "augmentation_impl", "transform")},
    # evaluation
    **{f"detectron2.evaluation.{m}": f"{_EVAL}.{m}"
       for m in ("cityscapes_evaluation", "coco_evaluation", "evaluator", "lvis_evaluation", "panoptic_evaluation",
                 "pascal_voc_evaluation", "rotated_coco_evaluation", "sem_seg_evaluation", "testing")},
    # engine and solver
    **{f"detectron2.engine.{m}": f"{_TRAIN}.{m}" for m in ("hooks", "launch", "train_loop")},
    "detectron2.solver.build": f"{_TRAIN}.solver",
    "detectron2.solver.lr_scheduler": f"{_TRAIN}.lr_scheduler",
    # utils
    "detectron2.utils.comm": f"{_TRAIN}.comm",
    "detectron2.utils.logger": f"{_TRAIN}.logger",
    "detectron2.utils.visualizer": "det.engine.visualizer",
    "detectron2.utils.analysis": "det.engine.analysis",
    # model zoo and export
    "detectron2.model_zoo.model_zoo": "det.model_zoo.model_zoo",
    "detectron2.export.flatten": "det.export.flatten",
    "detectron2.export.torchscript": "det.export.torchscript",
}

_MODELING = (
    "det.core.modeling", "det.core.registry", "det.backbones", "det.heads.rpn", "det.heads.roi", "det.heads.mask",
    "det.heads.keypoint", "det.heads.semseg", "det.heads.retinanet", "det.engine.test_time_augmentation",
    "det.mmdet_wrapper",
)

MODULES: dict[str, tuple[str, ...]] = {
    "detectron2": (),
    "detectron2.config": ("det.core.config",),
    "detectron2.structures": ("det.structures",),
    "detectron2.checkpoint": ("det.checkpoint",),
    "detectron2.layers": ("det.core.layers",),
    "detectron2.modeling": _MODELING,
    "detectron2.modeling.backbone": ("det.backbones", "det.core.modeling", "det.core.registry"),
    "detectron2.modeling.backbone.build": ("det.core.modeling.build", "det.core.registry"),
    "detectron2.modeling.meta_arch": ("det.core.modeling", "det.core.registry", "det.heads.semseg",
                                      "det.heads.retinanet"),
    "detectron2.modeling.meta_arch.build": ("det.core.modeling.build", "det.core.registry"),
    "detectron2.modeling.proposal_generator": ("det.heads.rpn", "det.core.modeling.build", "det.core.registry"),
    "detectron2.modeling.proposal_generator.build": ("det.core.modeling.build", "det.core.registry"),
    "detectron2.modeling.roi_heads": ("det.heads.roi", "det.heads.mask", "det.heads.keypoint", "det.core.modeling",
                                      "det.core.registry"),
    "detectron2.modeling.mmdet_wrapper": ("det.mmdet_wrapper",),
    "detectron2.data": (_DATA,),
    "detectron2.data.datasets": (f"{_DATA}.datasets",),
    "detectron2.data.transforms": (f"{_DATA}.transforms",),
    "detectron2.data.samplers": (f"{_DATA}.samplers",),
    "detectron2.data.samplers.distributed_sampler": (f"{_DATA}.samplers",),
    "detectron2.data.samplers.grouped_batch_sampler": (f"{_DATA}.samplers", f"{_DATA}.common"),
    "detectron2.evaluation": (_EVAL,),
    "detectron2.engine": (_TRAIN, f"{_TRAIN}.hooks", f"{_TRAIN}.defaults", f"{_TRAIN}.launch", "det.core.predictor"),
    "detectron2.engine.defaults": (f"{_TRAIN}.defaults", "det.core.predictor"),
    "detectron2.solver": (f"{_TRAIN}.solver", f"{_TRAIN}.lr_scheduler"),
    "detectron2.utils": (),
    "detectron2.utils.env": (f"{_TRAIN}.defaults",),
    "detectron2.utils.collect_env": ("det.core.machine",),
    "detectron2.utils.registry": ("det.core.registry", "det.core.config.instantiate"),
    "detectron2.utils.colormap": ("det.engine.visualizer",),
    "detectron2.utils.file_io": ("det.checkpoint.path_manager",),
    "detectron2.utils.video_visualizer": ("det.engine.video_visualizer",),
    "detectron2.utils.events": ("det.core.events", f"{_TRAIN}.writers"),
    "detectron2.model_zoo": ("det.model_zoo",),
    "detectron2.export": ("det.export", "det.export.flatten"),
}

NAMES: dict[str, dict[str, str]] = {
    "detectron2.config": {
        "instantiate": "det.core.config.instantiate:instantiate",
        "LazyCall": "det.core.config.lazy:LazyCall",
        "LazyConfig": "det.core.config.lazy:LazyConfig",
    },
    "detectron2.modeling": {
        "ShapeSpec": "det.core.layers:ShapeSpec",
        "DatasetMapperTTA": "det.engine.test_time_augmentation:DatasetMapperTTA",
    },
    "detectron2.modeling.meta_arch": {"build_model": "det.core.modeling.build:build_model"},
    "detectron2.modeling.backbone": {"build_backbone": "det.core.modeling.build:build_backbone",
                                     "Backbone": "det.core.modeling.backbone:Backbone"},
    "detectron2.modeling.proposal_generator": {
        "build_proposal_generator": "det.core.modeling.build:build_proposal_generator"},
    "detectron2.modeling.roi_heads": {"build_roi_heads": "det.core.modeling.build:build_roi_heads"},
    # `launch` is both a submodule and (what the package exports, as in detectron2) the function
    "detectron2.engine": {"DefaultPredictor": "det.core.predictor:DefaultPredictor",
                          "launch": f"{_TRAIN}.launch:launch"},
    "detectron2.solver": {"LRScheduler": "torch.optim.lr_scheduler:LRScheduler"},
    "detectron2.utils.env": {"seed_all_rng": f"{_TRAIN}.defaults:seed_all_rng",
                             "TORCH_VERSION": f"{_TRAIN}.defaults:TORCH_VERSION"},
    "detectron2.utils.registry": {"locate": "det.core.config.instantiate:locate",
                                  "_convert_target_to_string": "det.core.config.instantiate:_convert_target_to_string"},
}
