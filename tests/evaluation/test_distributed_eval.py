"""Distributed evaluation: COCOEvaluator under torchrun (2 processes, gloo) over a dataset whose
size is not a multiple of the process count sees every image exactly once, gathers the
predictions once, and gives the single-process AP exactly; an image processed twice counts once."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

from det.data import DatasetCatalog, MetadataCatalog, register_coco_instances
from det.evaluation import COCOEvaluator
from det.evaluation.synthetic import synthetic_coco_case
from det.structures import Boxes, BoxMode, Instances

_NUM_IMAGES = 7  # 4 + 3 on two processes


def _outputs(gt: dict, results: list[dict], contiguous: dict[int, int]) -> dict[int, Instances]:
    """Each image's results as the Instances a model would return."""
    by_image: dict[int, list[dict]] = {img["id"]: [] for img in gt["images"]}
    for r in results:
        by_image[r["image_id"]].append(r)
    outputs = {}
    for img in gt["images"]:
        rs = by_image[img["id"]]
        inst = Instances((img["height"], img["width"]))
        boxes = np.array([r["bbox"] for r in rs], dtype=np.float64).reshape(-1, 4)
        inst.pred_boxes = Boxes(torch.as_tensor(BoxMode.convert(boxes, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)))
        inst.scores = torch.tensor([r["score"] for r in rs], dtype=torch.float64)
        inst.pred_classes = torch.tensor([contiguous[r["category_id"]] for r in rs], dtype=torch.int64)
        masks = [mask_util.decode(r["segmentation"]).astype(bool) for r in rs]
        inst.pred_masks = torch.from_numpy(np.stack(masks)) if masks else torch.zeros(
            (0, img["height"], img["width"]), dtype=torch.bool)
        outputs[img["id"]] = inst
    return outputs


_SCRIPT = textwrap.dedent('''
    """One process of the distributed evaluation: evaluates its shard and writes what it saw."""
    import json, os, sys
    import torch.distributed as dist
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    gt_file, results_file, out_dir = sys.argv[1:4]

    from det.data import DatasetCatalog, MetadataCatalog, build_detection_test_loader, comm, register_coco_instances
    from det.evaluation import COCOEvaluator, inference_on_dataset
    import helpers  # noqa: E402

    gathers = []
    real_gather = comm.gather
    def counting_gather(data, dst=0):
        gathers.append(len(data))
        return real_gather(data, dst=dst)
    comm.gather = counting_gather

    register_coco_instances("dist_eval", {}, gt_file, "/nonexistent")
    dicts = DatasetCatalog.get("dist_eval")
    meta = MetadataCatalog.get("dist_eval")
    outputs = helpers.outputs(gt_file, results_file, meta.thing_dataset_id_to_contiguous_id)
    seen = []
    def model(inputs):
        seen.extend(x["image_id"] for x in inputs)
        return [{"instances": outputs[x["image_id"]]} for x in inputs]
    loader = build_detection_test_loader(
        dicts, mapper=lambda d: {"image_id": d["image_id"], "height": d["height"], "width": d["width"]})
    evaluator = COCOEvaluator("dist_eval", distributed=True, output_dir=os.path.join(out_dir, "eval"))
    results = inference_on_dataset(model, loader, evaluator, progress=False)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "world_size": dist.get_world_size(), "seen": seen, "gathers": gathers,
                   "results": results}, f)
    dist.barrier()
    dist.destroy_process_group()
''')

_HELPERS = textwrap.dedent('''
    import json, sys
    sys.path.insert(0, {test_dir!r})
    from test_distributed_eval import _outputs

    def outputs(gt_file, results_file, contiguous):
        with open(gt_file) as f:
            gt = json.load(f)
        with open(results_file) as f:
            results = json.load(f)
        return _outputs(gt, results, contiguous)
''')


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("disteval")
    gt, results = synthetic_coco_case(_NUM_IMAGES, num_categories=3, dets_per_image=10, crowd_fraction=0.1,
                                      empty_image_fraction=0.0, no_detection_fraction=0.0, seed=5)
    (tmp / "gt.json").write_text(json.dumps(gt))
    (tmp / "results.json").write_text(json.dumps(results))
    return tmp, gt, results


def _single_process(tmp, gt, results) -> tuple[dict, COCOEvaluator, dict]:
    name = f"disteval_{uuid.uuid4().hex[:6]}"
    register_coco_instances(name, {}, str(tmp / "gt.json"), "/nonexistent")
    try:
        DatasetCatalog.get(name)
        outputs = _outputs(gt, results, MetadataCatalog.get(name).thing_dataset_id_to_contiguous_id)
        evaluator = COCOEvaluator(name, distributed=False)
        evaluator.reset()
        for image_id, inst in outputs.items():
            evaluator.process([{"image_id": image_id}], [{"instances": inst}])
        return evaluator.evaluate(), evaluator, outputs
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


@pytest.mark.slow
def test_torchrun_two_processes_give_the_single_process_ap(case):
    tmp, gt, results = case
    run_dir = tmp / "run"
    run_dir.mkdir()
    (run_dir / "worker.py").write_text(_SCRIPT)
    (run_dir / "helpers.py").write_text(_HELPERS.format(test_dir=os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(run_dir / "worker.py"), str(tmp / "gt.json"), str(tmp / "results.json"), str(run_dir)],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((run_dir / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]

    # every image exactly once: 4 on rank 0, 3 on rank 1, in dataset order
    all_ids = [img["id"] for img in gt["images"]]
    assert ranks[0]["seen"] == all_ids[:4] and ranks[1]["seen"] == all_ids[4:]
    # one gather per process: rank 0 sent its 4 predictions, rank 1 its 3
    assert ranks[0]["gathers"] == [4] and ranks[1]["gathers"] == [3]
    # results on the main process only, identical to one process evaluating everything
    assert ranks[1]["results"] == {}
    single, _, _ = _single_process(tmp, gt, results)
    assert list(ranks[0]["results"]) == ["bbox", "segm"]
    for task, metrics in single.items():
        for metric, value in metrics.items():
            got = ranks[0]["results"][task][metric]
            assert got == value or (math.isnan(got) and math.isnan(value)), (task, metric, got, value)
    assert single["bbox"]["AP"] > 10
    # the main process saved all 7 images' predictions, once each
    saved = torch.load(run_dir / "eval" / "instances_predictions.pth", weights_only=False)
    assert sorted(p["image_id"] for p in saved) == sorted(all_ids)


def test_an_image_processed_twice_counts_once(case, caplog):
    tmp, gt, results = case
    single, evaluator, outputs = _single_process(tmp, gt, results)
    name = f"disteval_{uuid.uuid4().hex[:6]}"
    register_coco_instances(name, {}, str(tmp / "gt.json"), "/nonexistent")
    try:
        DatasetCatalog.get(name)
        evaluator = COCOEvaluator(name, distributed=False)
        evaluator.reset()
        ids = list(outputs)
        for image_id in [*ids, ids[0], ids[-1]]:  # a padding sampler would repeat images like this
            evaluator.process([{"image_id": image_id}], [{"instances": outputs[image_id]}])
        with caplog.at_level(logging.WARNING, logger="det.evaluation.coco_evaluation"):
            again = evaluator.evaluate()
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    assert again == single
    assert "2 of 9 predictions repeat an image_id" in caplog.text
