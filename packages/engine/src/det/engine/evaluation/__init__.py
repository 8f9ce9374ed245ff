"""Evaluation (detectron2's ``detectron2.evaluation``): COCO AP through pycocotools, semantic
segmentation mIoU, panoptic quality, and the inference loop.

    from det.engine.evaluation import COCOEvaluator, inference_on_dataset
"""

from det.engine.evaluation.cityscapes_evaluation import CityscapesInstanceEvaluator, CityscapesSemSegEvaluator
from det.engine.evaluation.coco_evaluation import COCOEvaluator, instances_to_coco_json
from det.engine.evaluation.evaluator import (
    DatasetEvaluator,
    DatasetEvaluators,
    inference_context,
    inference_on_dataset,
)
from det.engine.evaluation.lvis_evaluation import LVISEvaluator
from det.engine.evaluation.panoptic_evaluation import COCOPanopticEvaluator
from det.engine.evaluation.pascal_voc_evaluation import PascalVOCDetectionEvaluator
from det.engine.evaluation.rotated_coco_evaluation import RotatedCOCOEvaluator
from det.engine.evaluation.sem_seg_evaluation import SemSegEvaluator
from det.engine.evaluation.testing import flatten_results_dict, print_csv_format, verify_results

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
    "flatten_results_dict",
    "inference_context",
    "inference_on_dataset",
    "instances_to_coco_json",
    "print_csv_format",
    "verify_results",
]
