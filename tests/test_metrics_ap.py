"""Lecture-5 metrics: COCO mask AP equals pycocotools' COCOeval; Dice; mask IoU; layer cost."""
import numpy as np
import pytest
import torch.nn as nn
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from medvid_core.metrics import average_precision, dice, layer_cost, mask_iou


def _disc(h, w, cy, cx, r):
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2


def _case(seed=0, n_images=3, size=48):
    """Ground-truth discs; detections: shifted/resized copies (various IoUs), misses and false positives."""
    rng = np.random.default_rng(seed)
    gts, dets, scores = [], [], []
    for _ in range(n_images):
        centres = rng.uniform(8, size - 8, (4, 2))
        g = np.stack([_disc(size, size, cy, cx, rng.uniform(4, 7)) for cy, cx in centres])
        d = []
        for (cy, cx) in centres[:3]:  # the fourth object is missed
            d.append(_disc(size, size, cy + rng.normal(0, 1.5), cx + rng.normal(0, 1.5), rng.uniform(3.5, 7.5)))
        d.append(_disc(size, size, *rng.uniform(5, size - 5, 2), 4))  # a false positive (mostly)
        d.append(d[0] | _disc(size, size, centres[0][0] + 3, centres[0][1], 5))  # a duplicate of object 0
        gts.append(g)
        dets.append(np.stack(d))
        scores.append(rng.permutation(np.linspace(0.1, 0.95, len(d)) + rng.uniform(0, 0.01)))
    return gts, dets, scores


def _cocoeval(gts, dets, scores):
    size = gts[0].shape[1:]
    images, anns, results = [], [], []
    for i, (g, d, s) in enumerate(zip(gts, dets, scores)):
        images.append({"id": i, "height": size[0], "width": size[1]})
        for m in g:
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "segmentation": rle,
                         "area": float(mask_utils.area(rle)), "bbox": list(mask_utils.toBbox(rle)), "iscrowd": 0})
        for m, sc in zip(d, s):
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            results.append({"image_id": i, "category_id": 1, "segmentation": rle, "score": float(sc)})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "nucleus"}]}
    coco.createIndex()
    ev = COCOeval(coco, coco.loadRes(results), iouType="segm")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ap_equals_pycocotools(seed):
    gts, dets, scores = _case(seed)
    ours = average_precision(gts, dets, scores)
    stats = _cocoeval(gts, dets, scores)
    assert 0 < ours["AP"] < 1
    assert ours["AP"] == pytest.approx(stats[0], abs=1e-9)
    assert ours["AP50"] == pytest.approx(stats[1], abs=1e-9)
    assert ours["AP75"] == pytest.approx(stats[2], abs=1e-9)


def test_perfect_detections_score_one_and_bad_input():
    gts, _, _ = _case(0)
    assert average_precision(gts, gts, [np.linspace(1, 0.5, len(g)) for g in gts])["AP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="scores"):
        average_precision(gts[:1], gts[:1], [[0.5]])


def test_mask_iou_and_dice_by_hand():
    a = np.zeros((1, 4, 4), bool)
    a[0, :2] = True  # 8 pixels
    b = np.zeros((1, 4, 4), bool)
    b[0, 1:3] = True  # 8 pixels, 4 shared
    assert mask_iou(a, b)[0, 0] == pytest.approx(4 / 12)
    d = dice(a[0].astype(int), b[0].astype(int), num_classes=2)
    assert d[1] == pytest.approx(2 * 4 / 16) and d[0] == pytest.approx(2 * 4 / 16)
    t = b[0].astype(int)
    t[3] = 255  # ignored row
    assert dice(a[0].astype(int), t, num_classes=2, ignore_index=255)[1] == pytest.approx(2 * 4 / 16)


def test_layer_cost_matches_the_formula():
    c = layer_cost(nn.Conv3d(3, 8, 3, padding=1), (1, 3, 10, 16, 16))
    assert c["output_shape"] == (1, 8, 10, 16, 16)
    assert c["params"] == 8 * 3 * 27 + 8
    assert c["gflops"] * 1e9 == pytest.approx(2 * 8 * 10 * 16 * 16 * 3 * 27)
