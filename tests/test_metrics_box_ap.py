"""COCO box AP per class: equal to pycocotools' COCOeval run by hand, 1 for perfect boxes, lower when shifted,
NaN for a class without ground truth; and the border contrast of a box."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from medvid_core.metrics import border_contrast, box_average_precision

CLASSES = {1: "flag", 2: "implant"}


def _case(seed: int = 0, n_images: int = 6):
    rng = np.random.default_rng(seed)
    gt, det = [], []
    for _ in range(n_images):
        k = int(rng.integers(1, 4))
        xy = rng.uniform(0, 150, (k, 2))
        wh = rng.uniform(8, 60, (k, 2))
        boxes = np.hstack([xy, xy + wh])
        labels = rng.integers(1, 3, k)
        noisy = boxes + rng.normal(0, 4, boxes.shape)
        extra = np.hstack([rng.uniform(0, 150, (2, 2)), rng.uniform(0, 150, (2, 2)) + 20])
        gt.append({"boxes": boxes, "labels": labels})
        det.append({"boxes": np.vstack([noisy, extra]), "labels": np.concatenate([labels, rng.integers(1, 3, 2)]),
                    "scores": rng.uniform(0.05, 1, k + 2)})
    return gt, det


def _cocoeval_by_hand(gt, det):
    """The COCO files written out as the pycocotools documentation does, then COCOeval's summary stats."""
    images, anns, results = [], [], []
    for i, (g, d) in enumerate(zip(gt, det)):
        images.append({"id": i, "width": 300, "height": 300})
        for (x0, y0, x1, y1), c in zip(g["boxes"], g["labels"]):
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c), "bbox": [x0, y0, x1 - x0, y1 - y0],
                         "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
        for (x0, y0, x1, y1), c, s in zip(d["boxes"], d["labels"], d["scores"]):
            results.append({"image_id": i, "category_id": int(c), "bbox": [x0, y0, x1 - x0, y1 - y0], "score": s})
    stats = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for c in CLASSES:
            coco = COCO()
            coco.dataset = {"images": images, "annotations": anns,
                            "categories": [{"id": k, "name": n} for k, n in CLASSES.items()]}
            coco.createIndex()
            ev = COCOeval(coco, coco.loadRes(results), iouType="bbox")
            ev.params.catIds = [c]
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            stats[c] = ev.stats[:3]  # AP, AP50, AP75 (area all, 100 detections)
    return stats


@pytest.mark.parametrize("seed", [0, 1])
def test_box_ap_equals_cocoeval_per_class(seed):
    gt, det = _case(seed)
    ours = box_average_precision(gt, det, classes=CLASSES)
    want = _cocoeval_by_hand(gt, det)
    for c, name in CLASSES.items():
        assert (ours[name]["AP"], ours[name]["AP50"], ours[name]["AP75"]) == pytest.approx(tuple(want[c]), abs=1e-9)
        assert ours[name]["objects"] == sum(int((g["labels"] == c).sum()) for g in gt)
    assert 0 < ours["flag"]["AP"] < 1


def test_perfect_boxes_score_one_shifted_boxes_less_missing_class_nan():
    gt, _ = _case(3)
    perfect = [{"boxes": g["boxes"], "labels": g["labels"], "scores": np.ones(len(g["labels"]))} for g in gt]
    assert box_average_precision(gt, perfect, classes=CLASSES)["flag"]["AP"] == pytest.approx(1.0)
    shifted = [dict(p, boxes=p["boxes"] + 6) for p in perfect]
    ap = box_average_precision(gt, shifted, classes=CLASSES)["flag"]
    assert ap["AP"] < 0.9 and ap["AP50"] <= 1.0
    only_flags = [{"boxes": g["boxes"][g["labels"] == 1], "labels": g["labels"][g["labels"] == 1]} for g in gt]
    res = box_average_precision(only_flags, perfect, classes=CLASSES)
    assert np.isnan(res["implant"]["AP"]) and res["implant"]["objects"] == 0
    nothing = [{"boxes": np.zeros((0, 4)), "labels": np.zeros(0), "scores": np.zeros(0)} for _ in gt]
    assert box_average_precision(gt, nothing, classes=CLASSES)["flag"]["AP"] == 0.0  # every object missed


def test_border_contrast_sees_an_edge():
    rng = np.random.default_rng(0)
    img = 0.5 + rng.normal(0, 0.01, (40, 40))
    assert border_contrast(img, (10, 10, 20, 20)) == pytest.approx(1.0, abs=0.4)  # no edge: noise both ways
    img[10:20, 10:20] = 0.0
    assert border_contrast(img, (10, 10, 20, 20)) > 20
    assert np.isnan(border_contrast(img, (0, 0, 40, 40)))  # no ring inside the image
