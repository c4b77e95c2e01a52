"""Read and write bounding-box annotations in the COCO format (Lin et al., 2014: cocodataset.org/#format-data).

One JSON file holds three lists (other top-level keys, such as ``info`` or ``licenses``, are ignored)::

    {"images":      [{"id": 1, "file_name": "MURA-v1.1/train/XR_HAND/patient00001/study1_positive/image1.png",
                      "width": 256, "height": 320}, ...],
     "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [x, y, w, h]}, ...],
     "categories":  [{"id": 1, "name": "flag"}, {"id": 2, "name": "implant"}]}

``bbox`` is COCO's [x, y, width, height] in pixels from the image's top-left corner, as annotation tools
(CVAT, Label Studio, labelme's converter) export it; here it becomes the half-open box (x0, y0, x1, y1) =
(x, y, x + width, y + height) that `medvid_core.explain` and the synthetic archives use. ``file_name`` is
the image's path relative to a folder the caller names (for MURA-v1.1: the folder holding
``MURA-v1.1/``, as MURA's own CSVs write paths). An image listed without annotations is an annotated
image with nothing on it (a negative), not a missing one. Annotation keys beyond the four above
(``area``, ``iscrowd``, ``segmentation``) are ignored.

Every problem is one `CocoError` line naming the file and the entry: a missing file, invalid JSON, a
missing key, an annotation whose ``image_id`` or ``category_id`` is not listed, a duplicate id, an empty
or negative box, a box reaching outside its image.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

TOP_KEYS = ("images", "annotations", "categories")
IMAGE_KEYS = ("id", "file_name", "width", "height")
ANNOTATION_KEYS = ("id", "image_id", "category_id", "bbox")
CATEGORY_KEYS = ("id", "name")
BOX_COLUMNS = ["image_id", "file_name", "category", "x0", "y0", "x1", "y1"]


class CocoError(ValueError):
    """An annotation file that cannot be used; the message names the file and the entry."""


@dataclass
class CocoBoxes:
    images: pd.DataFrame  # one row per listed image: id, file_name, width, height
    boxes: pd.DataFrame  # one row per annotation: image_id, file_name, category (its name), x0, y0, x1, y1
    categories: dict[int, str]  # category id -> name


def _entries(doc: dict, key: str, needed: tuple[str, ...], path: Path) -> list[dict]:
    items = doc[key]
    if not isinstance(items, list):
        raise CocoError(f"{path}: '{key}' must be a list, got {type(items).__name__}")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise CocoError(f"{path}: {key}[{i}] must be an object, got {type(item).__name__}")
        missing = [k for k in needed if k not in item]
        if missing:
            which = f" (id {item['id']})" if "id" in item else ""
            raise CocoError(f"{path}: {key}[{i}]{which} is missing key(s) {', '.join(repr(k) for k in missing)}")
    ids = [item["id"] for item in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise CocoError(f"{path}: {key} id {dup} is listed more than once")
    return items


def read_coco_boxes(path: str | Path) -> CocoBoxes:
    """The images, boxes and categories of a COCO annotation file, checked (see the module docstring)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CocoError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise CocoError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(doc, dict):
        raise CocoError(f"{path}: expected a JSON object with {', '.join(TOP_KEYS)}, got {type(doc).__name__}")
    missing = [k for k in TOP_KEYS if k not in doc]
    if missing:
        raise CocoError(f"{path}: missing top-level key(s) {', '.join(repr(k) for k in missing)}")
    images = _entries(doc, "images", IMAGE_KEYS, path)
    annotations = _entries(doc, "annotations", ANNOTATION_KEYS, path)
    categories = {c["id"]: str(c["name"]) for c in _entries(doc, "categories", CATEGORY_KEYS, path)}
    by_id = {im["id"]: im for im in images}
    rows = []
    for i, ann in enumerate(annotations):
        where = f"{path}: annotations[{i}] (id {ann['id']})"
        im = by_id.get(ann["image_id"])
        if im is None:
            raise CocoError(f"{where}: image_id {ann['image_id']} is not in 'images'")
        if ann["category_id"] not in categories:
            raise CocoError(f"{where}: category_id {ann['category_id']} is not in 'categories'")
        box = ann["bbox"]
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
            raise CocoError(f"{where}: bbox must be [x, y, width, height], got {box!r}")
        x, y, w, h = box
        if w <= 0 or h <= 0:
            raise CocoError(f"{where}: bbox {box} has no area (width and height must be > 0)")
        if x < 0 or y < 0 or x + w > im["width"] or y + h > im["height"]:
            raise CocoError(f"{where}: bbox {box} reaches outside its image {im['file_name']} "
                            f"({im['width']} x {im['height']})")
        rows.append((im["id"], im["file_name"], categories[ann["category_id"]], x, y, x + w, y + h))
    return CocoBoxes(images=pd.DataFrame([{k: im[k] for k in IMAGE_KEYS} for im in images], columns=list(IMAGE_KEYS)),
                     boxes=pd.DataFrame(rows, columns=BOX_COLUMNS), categories=categories)


def write_coco_boxes(path: str | Path, images: pd.DataFrame, boxes: pd.DataFrame) -> Path:
    """Write `images` (file_name, width, height) and `boxes` (file_name, category, x0, y0, x1, y1) as a COCO
    file: image ids 1.. in `images`' order, category ids 1.. in order of first appearance in `boxes`.
    Every box's file_name must be one of `images`."""
    path = Path(path)
    ids = {name: i + 1 for i, name in enumerate(images.file_name)}
    unknown = sorted(set(boxes.file_name) - set(ids))
    if unknown:
        raise CocoError(f"{path}: boxes of image(s) not in the image list, e.g. {unknown[0]}")
    cats = {name: i + 1 for i, name in enumerate(dict.fromkeys(boxes.category))}
    doc = {"images": [{"id": ids[r.file_name], "file_name": r.file_name, "width": int(r.width), "height": int(r.height)}
                      for r in images.itertuples()],
           "annotations": [{"id": k + 1, "image_id": ids[r.file_name], "category_id": cats[r.category],
                            "bbox": [r.x0, r.y0, r.x1 - r.x0, r.y1 - r.y0], "area": (r.x1 - r.x0) * (r.y1 - r.y0),
                            "iscrowd": 0} for k, r in enumerate(boxes.itertuples())],
           "categories": [{"id": i, "name": n} for n, i in cats.items()]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, default=_plain))
    tmp.replace(path)
    return path


def _plain(value):
    """NumPy scalars (from DataFrames) as plain JSON numbers."""
    return value.item() if hasattr(value, "item") else str(value)
