"""Generated COCO ground truth and detection results of any size, for testing and benchmarking the
evaluators without a dataset download.

One call gives a COCO instances json (as a dict) and a COCO results list that score to a
non-trivial AP; everything is drawn from one seed, so the same arguments give the same case::

    from det.evaluation.synthetic import synthetic_coco_case
    gt, results = synthetic_coco_case(num_images=20, seed=0)
    len(gt["images"]), gt["annotations"][0]["segmentation"][0][:4], results[0]["score"]

The case has what makes COCO evaluation hard to get exactly right: objects of every area range
(small, medium, large), polygon masks, crowd regions (``iscrowd=1`` with an uncompressed RLE, as
COCO's own crowd annotations are), images without objects, images without detections,
detections of the wrong class, duplicates of one object, tied scores, and, with
``keypoints=True``, a single "person" category with 17 keypoints of mixed visibility (some
people with none visible, whom COCOeval ignores).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pycocotools.mask as mask_util

__all__ = ["synthetic_coco_case"]

# COCO-like image sizes (height, width).
_IMAGE_SIZES = ((480, 640), (640, 480), (427, 640), (640, 427), (375, 500), (500, 375), (512, 512))
_NUM_KEYPOINTS = 17


def _category_ids(num_categories: int) -> list[int]:
    # Non-contiguous ids (COCO skips some too), so that id mapping mistakes show.
    return [i + 1 + i // 8 for i in range(num_categories)]


def _random_box(rng: np.random.RandomState, height: int, width: int) -> list[float]:
    """An XYWH box inside the image whose sqrt(area) is log-uniform in [6, 400] pixels."""
    side = float(np.exp(rng.uniform(np.log(6.0), np.log(400.0))))
    aspect = float(np.exp(rng.uniform(-0.8, 0.8)))
    w = min(side * aspect, width - 1.0)
    h = min(side / aspect, height - 1.0)
    x = rng.uniform(0, width - w)
    y = rng.uniform(0, height - h)
    return [x, y, w, h]


def _polygon_in_box(rng: np.random.RandomState, box: list[float]) -> list[float]:
    """A star-shaped polygon (8-20 vertices) inscribed in ``box``, as COCO's flat [x0, y0, ...]."""
    x, y, w, h = box
    n = int(rng.randint(8, 21))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = rng.uniform(0.75, 1.0, n)
    px = x + w / 2 + np.cos(angles) * radii * w / 2
    py = y + h / 2 + np.sin(angles) * radii * h / 2
    return np.round(np.stack([px, py], axis=1).reshape(-1), 2).tolist()


def _polygon_area(polygon: list[float]) -> float:
    xy = np.asarray(polygon).reshape(-1, 2)
    x, y = xy[:, 0], xy[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _polygon_bbox(polygon: list[float]) -> list[float]:
    xy = np.asarray(polygon).reshape(-1, 2)
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    return [round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2), round(float(y1 - y0), 2)]


def _uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO's uncompressed RLE of a binary (H, W) mask: run lengths in column-major order,
    starting with a run of zeros."""
    flat = mask.flatten(order="F").astype(np.uint8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0, *counts]
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def _keypoints(rng: np.random.RandomState, box: list[float], visible_fraction: float) -> list[float]:
    x, y, w, h = box
    out: list[float] = []
    for _ in range(_NUM_KEYPOINTS):
        if rng.uniform() < visible_fraction:
            out += [round(float(x + rng.uniform(0, w)), 2), round(float(y + rng.uniform(0, h)), 2),
                    int(rng.choice([1, 2]))]
        else:
            out += [0, 0, 0]
    return out


def _jitter_box(rng: np.random.RandomState, box: list[float], height: int, width: int,
                amount: float) -> list[float]:
    x, y, w, h = box
    x = x + rng.normal(0, amount) * w
    y = y + rng.normal(0, amount) * h
    w = w * float(np.exp(rng.normal(0, amount)))
    h = h * float(np.exp(rng.normal(0, amount)))
    x = float(np.clip(x, 0, width - 2))
    y = float(np.clip(y, 0, height - 2))
    w = float(np.clip(w, 1, width - x))
    h = float(np.clip(h, 1, height - y))
    return [x, y, w, h]


def synthetic_coco_case(
    num_images: int = 50,
    *,
    objects_per_image: float = 7.3,
    num_categories: int = 80,
    dets_per_image: int = 100,
    masks: bool = True,
    keypoints: bool = False,
    crowd_fraction: float = 0.01,
    empty_image_fraction: float = 0.02,
    no_detection_fraction: float = 0.02,
    seed: int = 0,
) -> tuple[dict, list[dict]]:
    """A COCO instances dict (``images``, ``annotations``, ``categories``) and a COCO results list
    (``image_id``, ``category_id`` of the dataset, XYWH ``bbox``, ``score``, with ``masks`` a
    compressed RLE ``segmentation`` whose counts are a str, with ``keypoints`` 17 x (x, y, score)).

    ``objects_per_image`` is the mean of a Poisson count (COCO val2017: 36,781 objects in 5,000
    images, 7.3 each); ``crowd_fraction`` of the objects are crowd regions; ``dets_per_image``
    results are made for every image except the ``no_detection_fraction`` that get none.
    ``keypoints=True`` needs ``num_categories=1`` (COCO's person-keypoints json has one category).
    """
    if num_images <= 0 or num_categories <= 0 or dets_per_image < 0:
        raise ValueError(
            f"synthetic_coco_case needs num_images > 0, num_categories > 0 and dets_per_image >= 0, "
            f"got {num_images}, {num_categories}, {dets_per_image}"
        )
    if keypoints and num_categories != 1:
        raise ValueError(
            f"synthetic_coco_case(keypoints=True) makes COCO's single 'person' category; got "
            f"num_categories={num_categories}, pass num_categories=1"
        )
    rng = np.random.RandomState(seed)
    cat_ids = _category_ids(num_categories)
    categories: list[dict[str, Any]] = [
        {"id": c, "name": f"class_{c}", "supercategory": "thing"} for c in cat_ids
    ]
    if keypoints:
        categories = [{
            "id": cat_ids[0], "name": "person", "supercategory": "person",
            "keypoints": [f"kp{i}" for i in range(_NUM_KEYPOINTS)], "skeleton": [],
        }]

    images: list[dict] = []
    annotations: list[dict] = []
    results: list[dict] = []
    for image_index in range(num_images):
        image_id = 1000 + 3 * image_index  # not 0..N-1 either
        height, width = _IMAGE_SIZES[rng.randint(len(_IMAGE_SIZES))]
        images.append({"id": image_id, "height": height, "width": width, "file_name": f"{image_id:012d}.jpg"})

        num_objects = 0 if rng.uniform() < empty_image_fraction else int(rng.poisson(objects_per_image))
        objects = []
        for _ in range(num_objects):
            category_id = cat_ids[rng.randint(num_categories)]
            ann: dict[str, Any] = {"id": len(annotations) + 1, "image_id": image_id, "category_id": category_id}
            if rng.uniform() < crowd_fraction:
                box = _random_box(rng, height, width)
                x, y, w, h = (round(v) for v in box)
                region = np.zeros((height, width), dtype=np.uint8)
                region[y : y + max(h, 1), x : x + max(w, 1)] = 1
                ann.update(
                    iscrowd=1,
                    segmentation=_uncompressed_rle(region),
                    area=float(region.sum()),
                    bbox=[float(x), float(y), float(max(w, 1)), float(max(h, 1))],
                )
            else:
                polygon = _polygon_in_box(rng, _random_box(rng, height, width))
                ann.update(iscrowd=0, segmentation=[polygon], area=_polygon_area(polygon),
                           bbox=_polygon_bbox(polygon))
            if keypoints:
                # a quarter of the people have no visible keypoint (COCOeval ignores them)
                kps = _keypoints(rng, ann["bbox"], 0.0 if rng.uniform() < 0.25 else 0.7)
                ann["keypoints"] = kps
                ann["num_keypoints"] = int(sum(1 for v in kps[2::3] if v > 0))
            annotations.append(ann)
            objects.append(ann)

        if rng.uniform() < no_detection_fraction or dets_per_image == 0:
            continue
        image_results: list[dict[str, Any]] = []
        for obj in objects:  # 1-3 detections per object: a good one, duplicates, wrong classes
            for copy_index in range(int(rng.randint(1, 4))):
                if len(image_results) >= dets_per_image:
                    break
                category_id = obj["category_id"] if rng.uniform() < 0.85 else cat_ids[rng.randint(num_categories)]
                amount = 0.04 if copy_index == 0 else 0.15
                box = _jitter_box(rng, obj["bbox"], height, width, amount)
                image_results.append({
                    "category_id": category_id, "bbox": box,
                    "score": round(float(rng.uniform(0.3, 1.0)), 3),  # 3 decimals: ties happen
                    "_source": obj,
                })
        while len(image_results) < dets_per_image:  # background detections
            image_results.append({
                "category_id": cat_ids[rng.randint(num_categories)],
                "bbox": _random_box(rng, height, width),
                "score": round(float(rng.uniform(0.0, 0.6)), 3),
                "_source": None,
            })
        if masks:
            polygons = [_polygon_in_box(rng, list(r["bbox"])) for r in image_results]
            rles = mask_util.frPyObjects(polygons, height, width)
            for r, rle in zip(image_results, rles):
                r["segmentation"] = {"size": [height, width], "counts": rle["counts"].decode("ascii")}
        for r in image_results:
            source: Any = r.pop("_source")
            r["image_id"] = image_id
            r["bbox"] = [round(float(v), 2) for v in r["bbox"]]
            if keypoints:
                if source is not None and "keypoints" in source and source["num_keypoints"] > 0:
                    points = np.asarray(source["keypoints"], dtype=np.float64).reshape(-1, 3)
                    noise = rng.normal(0, 0.05, size=(_NUM_KEYPOINTS, 2)) * np.array(source["bbox"][2:])
                    points[:, :2] = np.where(points[:, 2:3] > 0, points[:, :2] + noise, points[:, :2])
                    points[:, 2] = np.round(rng.uniform(0, 1, _NUM_KEYPOINTS), 3)
                    r["keypoints"] = np.round(points, 2).reshape(-1).tolist()
                else:
                    r["keypoints"] = [v if i % 3 != 2 else round(float(rng.uniform()), 3)
                                      for i, v in enumerate(_keypoints(rng, list(r["bbox"]), 1.0))]
        results.extend(image_results)

    gt = {
        "info": {"description": f"det synthetic COCO case (seed {seed})"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    return gt, results
