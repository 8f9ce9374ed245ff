"""det-data and det-evaluation install alone: a user who loads datasets, or who only scores
predictions made elsewhere, needs neither the trainer (det-engine) nor any model part.

Every det distribution is built into one wheel folder; fresh environments with only third-party
packages get `pip install --no-index --find-links WHEELS det-data` (then `det-evaluation`), so pip
picks the closure from the local wheels alone. In them a COCO-format dataset is registered,
loaded, mapped and batched (det-data), and predictions are scored with COCOEvaluator through
inference_on_dataset (det-evaluation).
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow  # builds every wheel and two child environments

# det-core's third-party requirements (det-data depends on it), det-data's and det-evaluation's
CORE = {"det-structures", "det-checkpoint", "det-core"}
ABSENT = ["det.engine", "det.backbones", "det.heads.roi", "det.heads.rpn", "det.export"]

WRITE_DATASET = """
import importlib.util, json, os
import numpy as np
from PIL import Image

def absent(module):
    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:  # its parent package is missing too
        return True

def write_dataset(root):
    os.makedirs(root, exist_ok=True)
    images, annotations = [], []
    for image_id, (w, h) in enumerate([(64, 48), (40, 56)], start=1):
        Image.fromarray(np.full((h, w, 3), 30 * image_id, np.uint8)).save(f"{root}/{image_id}.png")
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": w, "height": h})
        for k, (x, y, bw, bh) in enumerate([(4, 6, 20, 16), (22, 20, 14, 18)]):
            annotations.append({"id": 10 * image_id + k, "image_id": image_id, "category_id": 7 + k,
                                "bbox": [x, y, bw, bh], "area": bw * bh, "iscrowd": 0})
    categories = [{"id": 7, "name": "circle"}, {"id": 8, "name": "square"}]
    with open(f"{root}/instances.json", "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
"""

USE_DATA = WRITE_DATASET + """
import sys
import importlib.util
from det.data import DatasetCatalog, DatasetMapper, MetadataCatalog, build_detection_test_loader
from det.data import register_coco_instances
import det.data.transforms as T

write_dataset(ROOT)
register_coco_instances("tiny", {}, ROOT + "/instances.json", ROOT)
dicts = DatasetCatalog.get("tiny")
mapper = DatasetMapper(False, augmentations=[T.ResizeShortestEdge(32, 64)], image_format="BGR")
batches = list(build_detection_test_loader(dicts, mapper=mapper, batch_size=2))
print(json.dumps({
    "file": __import__("det.data").data.__file__,
    "classes": MetadataCatalog.get("tiny").thing_classes,
    "boxes": [d["annotations"][0]["bbox"] for d in dicts],
    "shapes": [list(x["image"].shape) for b in batches for x in b],
    "absent": [m for m in %r if absent(m)],
    "evaluation_imported": any(m.startswith("det.evaluation") for m in sys.modules),
}))
""" % (ABSENT + ["det.evaluation"],)

SCORE_PREDICTIONS = WRITE_DATASET + """
import importlib.util, sys
import torch
from det.data import DatasetCatalog, register_coco_instances
from det.evaluation import COCOEvaluator, inference_on_dataset
from det.structures import Boxes, BoxMode, Instances

write_dataset(ROOT)
register_coco_instances("tiny", {}, ROOT + "/instances.json", ROOT)
dicts = DatasetCatalog.get("tiny")


class GroundTruthAsPredictions(torch.nn.Module):
    # predictions made elsewhere: here, the annotations themselves, one box shifted by 8 px
    def forward(self, inputs):
        outputs = []
        for x in inputs:
            d = next(d for d in dicts if d["image_id"] == x["image_id"])
            boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in d["annotations"]]
            if x["image_id"] == 2:
                boxes[1] = [v + 8 for v in boxes[1]]
            inst = Instances((d["height"], d["width"]))
            inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
            inst.scores = torch.tensor([0.9, 0.8])
            inst.pred_classes = torch.tensor([a["category_id"] for a in d["annotations"]])
            outputs.append({"instances": inst})
        return outputs


loader = [[{"image_id": d["image_id"], "height": d["height"], "width": d["width"]}] for d in dicts]
results = inference_on_dataset(GroundTruthAsPredictions(), loader, COCOEvaluator("tiny", output_dir=None),
                               progress=False)
print(json.dumps({
    "file": __import__("det.evaluation").evaluation.__file__,
    "bbox": {k: round(v, 3) for k, v in results["bbox"].items() if k in ("AP", "AP50", "AP-circle", "AP-square")},
    "absent": [m for m in %r if absent(m)],
}))
""" % (ABSENT,)


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_det_data_installs_alone_and_loads_a_coco_dataset(all_wheels, make_child_venv, third_party_of, tmp_path):
    venv = make_child_venv(inherit=third_party_of("det-data"))
    assert venv.pip_install_names("--find-links", all_wheels, "det-data") == CORE | {"det-data"}
    report = _last_json(venv.run(f"ROOT = {str(tmp_path / 'tiny')!r}\n" + USE_DATA).stdout)
    assert str(venv.root) in report["file"]  # the wheel, not the tree
    assert report["classes"] == ["circle", "square"]
    assert report["boxes"] == [[4, 6, 20, 16], [4, 6, 20, 16]]
    # shortest edge 32 (longest at most 64): 48x64 -> 32x43, 56x40 -> 45x32
    assert report["shapes"] == [[3, 32, 43], [3, 45, 32]]
    assert report["absent"] == ABSENT + ["det.evaluation"]
    assert report["evaluation_imported"] is False


def test_det_evaluation_installs_alone_and_scores_predictions(all_wheels, make_child_venv, third_party_of, tmp_path):
    venv = make_child_venv(inherit=third_party_of("det-evaluation"))
    installed = venv.pip_install_names("--find-links", all_wheels, "det-evaluation")
    assert installed == CORE | {"det-data", "det-evaluation"}
    report = _last_json(venv.run(f"ROOT = {str(tmp_path / 'tiny')!r}\n" + SCORE_PREDICTIONS).stdout)
    assert str(venv.root) in report["file"]
    assert report["absent"] == ABSENT
    # circles all exact (AP 100); of the two squares one is shifted 8 px: IoU 0.27 -> a miss everywhere
    assert report["bbox"]["AP-circle"] == 100.0
    assert report["bbox"]["AP-square"] == pytest.approx(50.495, abs=0.01)
    assert report["bbox"]["AP"] == pytest.approx((100.0 + 50.495) / 2, abs=0.01)
