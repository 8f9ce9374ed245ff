"""Data pipeline, training loop, evaluation, visualization and commands for det.

Public names are imported on first use (PEP 562), so ``import det.engine`` stays cheap::

    from det.engine import DatasetCatalog, DatasetMapper, COCOEvaluator, Visualizer
"""

from __future__ import annotations

from det.core.lazy import lazy_exports
from det.engine.version import __version__

# name -> module that defines it. Each engineer adds the names of their modules here.
_LAZY = {
    # data pipeline
    "DatasetCatalog": "det.engine.data.catalog",
    "MetadataCatalog": "det.engine.data.catalog",
    "Metadata": "det.engine.data.catalog",
    "DatasetMapper": "det.engine.data.dataset_mapper",
    "DatasetMapperTTA": "det.engine.data.dataset_mapper",
    "build_detection_train_loader": "det.engine.data.build",
    "build_detection_test_loader": "det.engine.data.build",
    "get_detection_dataset_dicts": "det.engine.data.build",
    "TrainingSampler": "det.engine.data.samplers",
    "InferenceSampler": "det.engine.data.samplers",
    "RepeatFactorTrainingSampler": "det.engine.data.samplers",
    "RandomSubsetTrainingSampler": "det.engine.data.samplers",
    "load_coco_json": "det.engine.data.datasets.coco",
    "load_sem_seg": "det.engine.data.datasets.coco",
    "register_coco_instances": "det.engine.data.datasets.coco",
    "register_pascal_voc": "det.engine.data.datasets.pascal_voc",
    "load_voc_instances": "det.engine.data.datasets.pascal_voc",
    "register_all_builtin": "det.engine.data.datasets.builtin",
    "get_builtin_metadata": "det.engine.data.datasets.builtin_meta",
    "load_lvis_json": "det.engine.data.datasets.lvis",
    "register_lvis_instances": "det.engine.data.datasets.lvis",
    "load_cityscapes_instances": "det.engine.data.datasets.cityscapes",
    "load_cityscapes_semantic": "det.engine.data.datasets.cityscapes",
    "ShapesConfig": "det.engine.data.shapes",
    "register_shapes": "det.engine.data.shapes",
    "prepare_shapes": "det.engine.data.shapes",
    # test-time augmentation (detectron2's modeling.test_time_augmentation)
    "GeneralizedRCNNWithTTA": "det.engine.test_time_augmentation",
    # evaluation
    "DatasetEvaluator": "det.engine.evaluation.evaluator",
    "DatasetEvaluators": "det.engine.evaluation.evaluator",
    "inference_on_dataset": "det.engine.evaluation.evaluator",
    "inference_context": "det.engine.evaluation.evaluator",
    "COCOEvaluator": "det.engine.evaluation.coco_evaluation",
    "SemSegEvaluator": "det.engine.evaluation.sem_seg_evaluation",
    "COCOPanopticEvaluator": "det.engine.evaluation.panoptic_evaluation",
    "PascalVOCDetectionEvaluator": "det.engine.evaluation.pascal_voc_evaluation",
    "LVISEvaluator": "det.engine.evaluation.lvis_evaluation",
    "CityscapesInstanceEvaluator": "det.engine.evaluation.cityscapes_evaluation",
    "CityscapesSemSegEvaluator": "det.engine.evaluation.cityscapes_evaluation",
    "RotatedCOCOEvaluator": "det.engine.evaluation.rotated_coco_evaluation",
    "print_csv_format": "det.engine.evaluation.testing",
    # visualization
    "Visualizer": "det.engine.visualizer",
    "ColorMode": "det.engine.visualizer",
    "VisImage": "det.engine.visualizer",
    # training (detectron2's engine + solver)
    "HookBase": "det.engine.train.train_loop",
    "TrainerBase": "det.engine.train.train_loop",
    "SimpleTrainer": "det.engine.train.train_loop",
    "AMPTrainer": "det.engine.train.train_loop",
    "DefaultTrainer": "det.engine.train.defaults",
    "create_ddp_model": "det.engine.train.defaults",
    "default_argument_parser": "det.engine.train.defaults",
    "default_setup": "det.engine.train.defaults",
    "default_writers": "det.engine.train.defaults",
    "launch": "det.engine.train.launch",
    "hooks": "det.engine.train",
    "comm": "det.engine.train",
    "build_optimizer": "det.engine.train.solver",
    "build_lr_scheduler": "det.engine.train.solver",
    "get_default_optimizer_params": "det.engine.train.solver",
    "JSONWriter": "det.engine.train.writers",
    "CommonMetricPrinter": "det.engine.train.writers",
    "TensorboardXWriter": "det.engine.train.writers",
    "DefaultPredictor": "det.core.predictor",
    # model statistics (detectron2's utils.analysis)
    "parameter_count": "det.engine.analysis",
    "parameter_count_table": "det.engine.analysis",
    "flop_count_operators": "det.engine.analysis",
    "activation_count_operators": "det.engine.analysis",
    "run_demo": "det.engine.demo",
}


# importing a det.engine.data module imports det.engine.data first, which registers the builtin datasets
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = ["__version__", *sorted(_LAZY)]
