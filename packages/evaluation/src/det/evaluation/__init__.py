"""Evaluation (detectron2's ``detectron2.evaluation``): COCO AP (a compiled COCOeval that matches
pycocotools bit for bit, or pycocotools itself), semantic
segmentation mIoU, panoptic quality, and the inference loop.

    from det.evaluation import COCOEvaluator, inference_on_dataset
"""

from det.evaluation.cityscapes_evaluation import CityscapesInstanceEvaluator, CityscapesSemSegEvaluator
from det.evaluation.coco_evaluation import COCOEvaluator, evaluate_coco_results, instances_to_coco_json
from det.evaluation.evaluator import (
    DatasetEvaluator,
    DatasetEvaluators,
    inference_context,
    inference_on_dataset,
)
from det.evaluation.lvis_evaluation import LVISEvaluator
from det.evaluation.panoptic_evaluation import COCOPanopticEvaluator
from det.evaluation.pascal_voc_evaluation import PascalVOCDetectionEvaluator
from det.evaluation.rotated_coco_evaluation import RotatedCOCOEvaluator
from det.evaluation.sem_seg_evaluation import SemSegEvaluator
from det.evaluation.testing import flatten_results_dict, print_csv_format, verify_results
from det.evaluation.version import __version__

__all__ = [
    "COCOEvaluator",
    "COCOPanopticEvaluator",
    "CityscapesInstanceEvaluator",
    "CityscapesSemSegEvaluator",
    "DatasetEvaluator",
    "DatasetEvaluators",
    "LVISEvaluator",
    "PascalVOCDetectionEvaluator",
    "RotatedCOCOEvaluator",
    "SemSegEvaluator",
    "__version__",
    "evaluate_coco_results",
    "flatten_results_dict",
    "inference_context",
    "inference_on_dataset",
    "instances_to_coco_json",
    "print_csv_format",
    "verify_results",
]
