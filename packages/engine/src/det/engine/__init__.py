"""Training loop, visualization, test-time augmentation, model analysis and the commands of det
(the data pipeline is det.data, the evaluators det.evaluation; both are re-exported here).

Public names are imported on first use (PEP 562), so ``import det.engine`` stays cheap::

    from det.engine import DatasetCatalog, DatasetMapper, COCOEvaluator, Visualizer
"""

from __future__ import annotations

from det.core.lazy import alias_package, lazy_exports
from det.engine.version import __version__

# The data pipeline and the evaluators moved to det-data and det-evaluation; their old paths keep
# working for one release as aliases of the same modules.
alias_package(
    "det.engine.data", "det.data", warning="det.engine.data moved to det.data (distribution det-data); import det.data"
)
alias_package(
    "det.engine.evaluation",
    "det.evaluation",
    warning="det.engine.evaluation moved to det.evaluation (distribution det-evaluation); import det.evaluation",
)

# name -> module that defines it. Each engineer adds the names of their modules here.
_LAZY = {
    # data pipeline
    "DatasetCatalog": "det.data.catalog",
    "MetadataCatalog": "det.data.catalog",
    "Metadata": "det.data.catalog",
    "DatasetMapper": "det.data.dataset_mapper",
    "DatasetMapperTTA": "det.data.dataset_mapper",
    "build_detection_train_loader": "det.data.build",
    "build_detection_test_loader": "det.data.build",
    "get_detection_dataset_dicts": "det.data.build",
    "TrainingSampler": "det.data.samplers",
    "InferenceSampler": "det.data.samplers",
    "RepeatFactorTrainingSampler": "det.data.samplers",
    "RandomSubsetTrainingSampler": "det.data.samplers",
    "load_coco_json": "det.data.datasets.coco",
    "load_sem_seg": "det.data.datasets.coco",
    "register_coco_instances": "det.data.datasets.coco",
    "register_pascal_voc": "det.data.datasets.pascal_voc",
    "load_voc_instances": "det.data.datasets.pascal_voc",
    "register_all_builtin": "det.data.datasets.builtin",
    "get_builtin_metadata": "det.data.datasets.builtin_meta",
    "load_lvis_json": "det.data.datasets.lvis",
    "register_lvis_instances": "det.data.datasets.lvis",
    "load_cityscapes_instances": "det.data.datasets.cityscapes",
    "load_cityscapes_semantic": "det.data.datasets.cityscapes",
    "ShapesConfig": "det.data.shapes",
    "register_shapes": "det.data.shapes",
    "prepare_shapes": "det.data.shapes",
    # test-time augmentation (detectron2's modeling.test_time_augmentation)
    "GeneralizedRCNNWithTTA": "det.engine.test_time_augmentation",
    # evaluation
    "DatasetEvaluator": "det.evaluation.evaluator",
    "DatasetEvaluators": "det.evaluation.evaluator",
    "inference_on_dataset": "det.evaluation.evaluator",
    "inference_context": "det.evaluation.evaluator",
    "COCOEvaluator": "det.evaluation.coco_evaluation",
    "SemSegEvaluator": "det.evaluation.sem_seg_evaluation",
    "COCOPanopticEvaluator": "det.evaluation.panoptic_evaluation",
    "PascalVOCDetectionEvaluator": "det.evaluation.pascal_voc_evaluation",
    "LVISEvaluator": "det.evaluation.lvis_evaluation",
    "CityscapesInstanceEvaluator": "det.evaluation.cityscapes_evaluation",
    "CityscapesSemSegEvaluator": "det.evaluation.cityscapes_evaluation",
    "RotatedCOCOEvaluator": "det.evaluation.rotated_coco_evaluation",
    "print_csv_format": "det.evaluation.testing",
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


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = ["__version__", *sorted(_LAZY)]
