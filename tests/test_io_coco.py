"""COCO box annotations: a written file reads back as it was, and each kind of bad file is one line naming it."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from medvid_core.io.coco import CocoError, read_coco_boxes, write_coco_boxes


def _tables():
    images = pd.DataFrame({"file_name": ["MURA-v1.1/train/a/image1.png", "MURA-v1.1/train/b/image1.png",
                                         "MURA-v1.1/valid/c/image2.png"], "width": [200, 180, 256],
                           "height": [240, 200, 256]})
    boxes = pd.DataFrame({"file_name": ["MURA-v1.1/train/a/image1.png", "MURA-v1.1/train/a/image1.png",
                                        "MURA-v1.1/valid/c/image2.png"], "category": ["flag", "implant", "flag"],
                          "x0": [3, 50.5, 0], "y0": [4, 60, 10], "x1": [30, 120.5, 256], "y1": [20, 200, 40]})
    return images, boxes


def _good(tmp_path) -> tuple:
    images, boxes = _tables()
    path = write_coco_boxes(tmp_path / "ann.json", images, boxes)
    return path, json.loads(path.read_text())


def test_round_trip(tmp_path):
    images, boxes = _tables()
    coco = read_coco_boxes(write_coco_boxes(tmp_path / "ann.json", images, boxes))
    assert coco.categories == {1: "flag", 2: "implant"}
    pd.testing.assert_frame_equal(coco.images[["file_name", "width", "height"]], images)
    pd.testing.assert_frame_equal(coco.boxes.drop(columns="image_id"), boxes[["file_name", "category", "x0", "y0",
                                                                             "x1", "y1"]], check_dtype=False)
    assert list(coco.images.id) == [1, 2, 3] and list(coco.boxes.image_id) == [1, 1, 3]
    doc = json.loads((tmp_path / "ann.json").read_text())
    assert doc["annotations"][1]["bbox"] == [50.5, 60, 70.0, 140]  # COCO's x, y, width, height


def _write(tmp_path, doc) -> str:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return str(path)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("categories"), r"missing top-level key\(s\) 'categories'"),
    (lambda d: d["annotations"][0].pop("bbox"), r"annotations\[0\] \(id 1\) is missing key\(s\) 'bbox'"),
    (lambda d: d["images"][1].pop("width"), r"images\[1\] \(id 2\) is missing key\(s\) 'width'"),
    (lambda d: d["annotations"][2].update(image_id=99), r"annotations\[2\] \(id 3\): image_id 99 is not in 'images'"),
    (lambda d: d["annotations"][0].update(category_id=7), r"category_id 7 is not in 'categories'"),
    (lambda d: d["annotations"][1].update(bbox=[150, 60, 70, 140]),
     r"annotations\[1\] \(id 2\): bbox \[150, 60, 70, 140\] reaches outside its image MURA-v1.1/train/a/image1.png "
     r"\(200 x 240\)"),
    (lambda d: d["annotations"][0].update(bbox=[-1, 4, 5, 5]), r"reaches outside its image"),
    (lambda d: d["annotations"][0].update(bbox=[3, 4, 0, 5]), r"has no area"),
    (lambda d: d["annotations"][0].update(bbox=[3, 4, 5]), r"bbox must be \[x, y, width, height\]"),
    (lambda d: d["images"][2].update(id=1), r"images id 1 is listed more than once"),
])
def test_bad_files_are_one_line_naming_the_file(tmp_path, edit, message):
    _, doc = _good(tmp_path)
    edit(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(CocoError, match=message) as err:
        read_coco_boxes(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(CocoError, match=r"nothere\.json: file not found"):
        read_coco_boxes(tmp_path / "nothere.json")
    with pytest.raises(CocoError, match=r"bad\.json: not valid JSON \(line 1"):
        read_coco_boxes(_write(tmp_path, "{images: ["))
    with pytest.raises(CocoError, match=r"bad\.json: expected a JSON object"):
        read_coco_boxes(_write(tmp_path, "[]"))


def test_writer_refuses_boxes_of_unlisted_images(tmp_path):
    images, boxes = _tables()
    with pytest.raises(CocoError, match="not in the image list, e.g. MURA-v1.1/valid/c/image2.png"):
        write_coco_boxes(tmp_path / "ann.json", images.iloc[:2], boxes)
