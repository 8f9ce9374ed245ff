"""``det.data.check`` and ``det data check``: every planted fault is found, counted, located by
file and id, and given the action training takes; the loader does what the report says."""

from __future__ import annotations

import json
import shutil

import pytest

from det.core.cli import main as det_main
from det.data.check import FAULT_KINDS, DataCheckError, check_coco_json, inspect_image


@pytest.fixture(scope="module")
def clean(tmp_path_factory, make_coco_dataset):
    return make_coco_dataset(tmp_path_factory.mktemp("clean"), num_train=12, num_val=3, seed=3)


def _plant_faults(paths, root):
    """A copy of the clean train split with one or more records of every fault kind."""
    images_dir = root / "images"
    shutil.copytree(paths["train_images"], images_dir)
    data = json.loads(paths["train_json"].read_text())
    images, anns = data["images"], data["annotations"]
    anns_of = {img["id"]: [a for a in anns if a["image_id"] == img["id"]] for img in images}

    (images_dir / images[0]["file_name"]).unlink()  # missing_image
    (images_dir / images[1]["file_name"]).write_bytes(b"")  # unreadable: 0 bytes
    (images_dir / images[2]["file_name"]).write_text("not an image\n")  # unreadable: text
    png = (images_dir / images[3]["file_name"]).read_bytes()
    (images_dir / images[3]["file_name"]).write_bytes(png[: len(png) // 2])  # truncated PNG
    jpeg = (paths["val_images"] / "val_000.jpg").read_bytes()
    (images_dir / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])  # truncated JPEG
    images.append({"id": 900, "file_name": "cut.jpg", "width": 72, "height": 64})
    anns.append({"id": 9000, "image_id": 900, "category_id": 3, "bbox": [1, 1, 10, 10], "iscrowd": 0})
    images[4]["width"] = 80  # size_mismatch
    images.append({"id": images[5]["id"], "file_name": images[5]["file_name"], "width": 72, "height": 64})
    anns_of[images[6]["id"]][0]["category_id"] = 99  # unknown_category
    anns_of[images[8]["id"]][0]["bbox"][2] = -4.0  # bad_box
    anns_of[images[9]["id"]][0]["bbox"][3] = 0  # bad_box
    anns_of[images[10]["id"]][0]["segmentation"] = [[1.0, 1.0, 5.0, 5.0]]  # small_polygon
    anns.append(dict(anns_of[images[10]["id"]][0], bbox=[2, 2, 8, 8]))  # duplicate_annotation_id
    for a in anns_of[images[11]["id"]]:
        a["iscrowd"] = 1  # crowd_only
    anns[:] = [a for a in anns if a["image_id"] != images[7]["id"]]  # no_annotations
    anns.append({"id": 9001, "image_id": images[5]["id"], "category_id": 7, "bbox": [60, 10, 20, 10],
                 "iscrowd": 0})  # box_outside_image (72 px wide)
    anns.append({"id": 9002, "image_id": 424242, "category_id": 7, "bbox": [1, 1, 5, 5], "iscrowd": 0})
    data["categories"][0]["keypoints"] = ["center", "top"]
    anns.append({"id": 9003, "image_id": images[5]["id"], "category_id": 3, "bbox": [1, 1, 9, 9],
                 "keypoints": [4, 4, 2], "iscrowd": 0})  # keypoint_count: 1 of 2
    anns.append({"id": 9004, "image_id": images[5]["id"], "category_id": 7, "bbox": [1, 1, 9, 9],
                 "segmentation": {"size": [10, 10], "counts": "abc"}, "iscrowd": 0})  # bad_segmentation
    anns.append({"id": 9005, "image_id": images[5]["id"], "category_id": 7, "bbox": "oops"})  # malformed
    json_file = root / "faulty.json"
    json_file.write_text(json.dumps(data))
    return json_file, images_dir, images


@pytest.fixture(scope="module")
def faulty(clean, tmp_path_factory):
    return _plant_faults(clean, tmp_path_factory.mktemp("faulty"))


def test_every_planted_fault_is_found_counted_and_located(faulty):
    json_file, images_dir, images = faulty
    report = check_coco_json(json_file, images_dir)
    counts = {kind: fault.count for kind, fault in report.faults.items()}
    assert counts == {
        "malformed": 1, "duplicate_image_id": 1, "duplicate_annotation_id": 1, "missing_image": 1,
        "unreadable_image": 2, "truncated_image": 2, "size_mismatch": 1, "unknown_category": 1,
        "keypoint_count": 1, "bad_segmentation": 1, "unknown_image": 1, "bad_box": 2, "small_polygon": 1,
        "crowd_only": 1, "no_annotations": 1, "box_outside_image": 1,
    }
    assert set(counts) == set(FAULT_KINDS) - {"duplicate_category_id"}
    ex = {kind: fault.examples for kind, fault in report.faults.items()}
    assert ex["missing_image"] == [
        f"image id={images[0]['id']} '{images[0]['file_name']}': {images_dir / images[0]['file_name']} does not exist"]
    assert any("is empty (0 bytes)" in e for e in ex["unreadable_image"])
    assert any("is not an image (PIL knows no such format)" in e for e in ex["unreadable_image"])
    assert {e.split("'")[1] for e in ex["truncated_image"]} == {images[3]["file_name"], "cut.jpg"}
    assert ex["size_mismatch"] == [f"image id={images[4]['id']} '{images[4]['file_name']}': the file is 72x64, "
                                   "the json says 80x64 (width x height)"]
    assert "category_id=99 (categories have ids 3, 7)" in ex["unknown_category"][0]
    assert ex["bad_box"][0].startswith(f"annotation id={anns_id(images[8], faulty)} of image id={images[8]['id']}: "
                                       "bbox [") and ", -4.0, " in ex["bad_box"][0]
    assert ex["unknown_image"][0] == "annotation id=9002 of image id=424242"
    assert "1 keypoints, its category has 2" in ex["keypoint_count"][0]
    assert "RLE size [10, 10] but the image is 64x72" in ex["bad_segmentation"][0]
    assert "'bbox' must be 4 finite numbers" in ex["malformed"][0]
    assert "bbox [60, 10, 20, 10] in a 72x64 image" in ex["box_outside_image"][0]
    assert [f.kind for f in report.refused] == [k for k, v in FAULT_KINDS.items()
                                                if v.action == "refuse" and k in counts]
    assert not report.ok
    assert report.classes == ["disk", "block"] and report.category_ids == [3, 7]
    assert report.keypoint_names == ["center", "top"]


def anns_id(image, faulty):
    data = json.loads(faulty[0].read_text())
    return next(a["id"] for a in data["annotations"] if a["image_id"] == image["id"])


def test_report_text_says_what_training_does(faulty):
    text = check_coco_json(faulty[0], faulty[1], max_examples=1).format()
    lines = text.splitlines()
    assert lines[0].startswith(f"{faulty[0]}: 13 images, ")
    assert "  refuse  1 image: image files not found (training refuses the dataset: check --images and " \
           "file_name)" in lines
    assert "  skip    2 annotations: boxes with zero or negative width or height (training drops these " \
           "annotations)" in lines
    assert "  fix     1 annotation: boxes reaching outside their image (training clips them to the image)" in lines
    assert "            ... and 1 more" in lines  # 2 bad boxes, 1 example shown
    assert lines[-1].startswith("training refuses this dataset: 1 record: records that are not valid COCO; ")


def test_clean_dataset_has_no_faults_and_full_decoding_agrees(clean):
    for full in (False, True):
        report = check_coco_json(clean["train_json"], clean["train_images"], full=full)
        assert report.faults == {} and report.ok
        assert report.verdict() == "no faults found: training accepts this dataset"
        assert report.num_images == 12 and report.num_annotations > 12


def test_inspect_image_reads_exif_orientation(tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif[274] = 6  # rotated 90 degrees: read_image returns a 30x40 image
    Image.new("RGB", (40, 30)).save(tmp_path / "r.jpg", exif=exif)
    assert inspect_image(tmp_path / "r.jpg") == (30, 40)
    assert inspect_image(tmp_path / "r.jpg", full=True) == (30, 40)


def test_files_that_are_not_coco_are_errors(tmp_path):
    (tmp_path / "bad.json").write_text('{"images": [1,')
    with pytest.raises(DataCheckError, match=r"bad.json is not valid JSON \(line 1, column 15"):
        check_coco_json(tmp_path / "bad.json", tmp_path)
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(DataCheckError, match="holds a JSON list; a COCO file is an object"):
        check_coco_json(tmp_path / "list.json", tmp_path)
    (tmp_path / "nocats.json").write_text('{"images": []}')
    with pytest.raises(DataCheckError, match="has no 'categories': not a COCO"):
        check_coco_json(tmp_path / "nocats.json", tmp_path)
    with pytest.raises(DataCheckError, match="does not exist"):
        check_coco_json(tmp_path / "none.json", tmp_path)


def test_det_data_check_command(faulty, clean, tmp_path, capsys):
    assert det_main(["data", "check", str(clean["train_json"]), str(clean["val_json"]),
                     "--images", str(clean["train_images"]), str(clean["val_images"])]) == 0
    out = capsys.readouterr().out
    assert out.count("no faults found: training accepts this dataset") == 2
    assert det_main(["data", "check", str(faulty[0]), "--images", str(faulty[1]), "--examples", "2"]) == 1
    out = capsys.readouterr().out
    assert "refuse  2 images: truncated images" in out and "training refuses this dataset" in out
    assert det_main(["data", "check", str(faulty[0]), "--images", str(faulty[1]), "--json"]) == 1
    as_json = json.loads(capsys.readouterr().out)
    assert as_json[0]["faults"]["bad_box"]["count"] == 2 and as_json[0]["ok"] is False
    (tmp_path / "x.json").write_text("not json")
    assert det_main(["data", "check", str(tmp_path / "x.json"), "--images", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("det data check: error: ") and "x.json is not valid JSON" in err
    assert err.count("\n") == 1


def test_loader_drops_what_the_report_says_it_skips(clean, tmp_path, caplog):
    from det.data.datasets.coco import load_coco_json

    data = json.loads(clean["train_json"].read_text())
    data["annotations"][0]["bbox"][2] = -3.0
    data["annotations"][1]["bbox"][3] = 0
    data["annotations"][2]["segmentation"] = [[1, 1, 4, 4]]
    (tmp_path / "t.json").write_text(json.dumps(data))
    report = check_coco_json(tmp_path / "t.json", clean["train_images"])
    assert report.ok and {k: f.count for k, f in report.faults.items()} == {"bad_box": 2, "small_polygon": 1}
    dicts = load_coco_json(tmp_path / "t.json", clean["train_images"])
    assert sum(len(d["annotations"]) for d in dicts) == len(data["annotations"]) - 3
    assert "Filtered out 2 instances whose box has zero or negative width or height" in caplog.text
