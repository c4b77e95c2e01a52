"""Evaluation metrics, by method: classification scores, multi-label log loss, segmentation and detection
(Dice, mask IoU, COCO average precision), bootstrap intervals, model cost with the one timer for all
efficiency figures, and action segmentation (frame labels to segments, segmental F1 at an IoU threshold).

Metric functions take `(outputs, targets)` as the trainer's `metric_fn` does and return a dict of floats.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .models import count_parameters
from .timing import timed


def accuracy(outputs, targets) -> dict:
    """Argmax accuracy of class scores (N, C) against class indices (N,) or soft/one-hot targets (N, C)."""
    outputs, targets = torch.as_tensor(outputs), torch.as_tensor(targets)
    hard = targets.argmax(1) if targets.ndim == 2 else targets
    return {"accuracy": float((outputs.argmax(1) == hard).float().mean())}


# --------------------------------------------------------------------------- binary classification
# thresholded scores, rank AUC (pooled and within groups), Cohen's kappa.

def binary_scores(targets, probs, *, threshold: float = 0.5) -> dict:
    """Accuracy, recall, precision, F1 (at `threshold`) and ROC AUC of one binary task (scikit-learn).
    AUC is NaN when the targets hold a single class."""
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    y = np.asarray(targets).astype(int).ravel()
    p = np.asarray(probs, dtype=float).ravel()
    pred = (p >= threshold).astype(int)
    return {"accuracy": float((pred == y).mean()), "recall": float(recall_score(y, pred, zero_division=0)),
            "precision": float(precision_score(y, pred, zero_division=0)),
            "f1": float(f1_score(y, pred, zero_division=0)),
            "auc": float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")}


def auc_score(targets, scores) -> float:
    """ROC AUC by ranks (Mann-Whitney U, ties averaged): NaN when the targets hold one class. The same
    number as scikit-learn's roc_auc_score, fast enough for a thousand bootstrap rounds."""
    from scipy.stats import rankdata

    y = np.asarray(targets).astype(bool).ravel()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(scores, dtype=float).ravel())
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def within_group_auc(targets, probs, groups) -> dict:
    """ROC AUC inside each group (e.g. the slices of one head) that holds both classes, and their mean.

    A pooled AUC over a handful of groups mixes each group's overall offset into the ranking: a model
    that ranks the bleeding slices of every head above that head's clean slices still scores below 0.5
    when its clean heads sit a little higher overall. Returns {"per_group": {group: auc}, "mean": float,
    "groups": n}; the mean is NaN when no group holds both classes.
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(targets).astype(int).ravel()
    p = np.asarray(probs, dtype=float).ravel()
    g = np.asarray(groups).ravel()
    per = {}
    for k in np.unique(g):
        inside = g == k
        if len(np.unique(y[inside])) == 2:
            per[str(k)] = float(roc_auc_score(y[inside], p[inside]))
    return {"per_group": per, "mean": float(np.mean(list(per.values()))) if per else float("nan"), "groups": len(per)}


def kappa_score(targets, predictions) -> float:
    """Cohen's kappa of two label vectors (scikit-learn's formula); NaN when it is undefined (expected
    agreement 1, e.g. one class in both)."""
    t, p = np.asarray(targets).astype(int).ravel(), np.asarray(predictions).astype(int).ravel()
    k = int(max(t.max(initial=0), p.max(initial=0))) + 1
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(float)
    n = cm.sum()
    observed = np.trace(cm) / n
    expected = (cm.sum(0) @ cm.sum(1)) / n**2
    return float((observed - expected) / (1 - expected)) if expected < 1 else float("nan")


# --------------------------------------------------------------------------- multi-label classification
# a weighted mean of per-label binary log losses.

def weighted_log_loss(targets, probs, *, weights=(1.0, 1.0, 1.0, 1.0, 1.0, 2.0), eps: float = 1e-7) -> float:
    """Weighted multi-label log loss: per image, the `weights`-weighted mean of the binary log losses of
    its labels, averaged over images. `targets` and `probs` are (n, len(weights)) arrays; probabilities are
    clipped to [eps, 1 - eps]. The default weights are the RSNA Intracranial Hemorrhage challenge's metric
    (Flanders et al. 2020): five subtypes weighted 1, the sixth label, `any`, weighted 2."""
    y = np.asarray(targets, dtype=float)
    p = np.clip(np.asarray(probs, dtype=float), eps, 1 - eps)
    w = np.asarray(weights, dtype=float)
    if y.shape != p.shape or y.ndim != 2 or y.shape[1] != len(w):
        raise ValueError(f"weighted_log_loss: targets {y.shape} and probs {p.shape} must both be (n, {len(w)})")
    losses = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return float(np.mean(losses @ w / w.sum()))


# --------------------------------------------------------------------------- segmentation and detection
# Dice, mask IoU and COCO-style average precision for (instance) segmentation.

def dice(pred, target, *, num_classes: int, ignore_index: int | None = None) -> dict[int, float]:
    """Dice 2|P∩T| / (|P|+|T|) per class of integer label maps (any shape); voxels whose target equals
    `ignore_index` are left out. A class absent from both gets NaN (nothing to score)."""
    p, t = np.asarray(pred).ravel(), np.asarray(target).ravel()
    if p.shape != t.shape:
        raise ValueError(f"dice: prediction has {p.size} voxels, target {t.size}")
    if ignore_index is not None:
        keep = t != ignore_index
        p, t = p[keep], t[keep]
    out = {}
    for c in range(num_classes):
        pc, tc = p == c, t == c
        denom = pc.sum() + tc.sum()
        out[c] = float(2 * (pc & tc).sum() / denom) if denom else float("nan")
    return out


def mask_iou(masks_a, masks_b) -> np.ndarray:
    """IoU of every pair of binary masks: (Na, H, W) x (Nb, H, W) -> (Na, Nb)."""
    a = np.asarray(masks_a, dtype=bool).reshape(len(masks_a), -1).astype(np.float64)
    b = np.asarray(masks_b, dtype=bool).reshape(len(masks_b), -1).astype(np.float64)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # AP[.5:.95] averages these ten
COCO_RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # COCO interpolates precision at 101 recalls


def _coco_ap_one_threshold(images: list[dict], threshold: float, max_dets: int) -> float:
    scores, matched, n_gt = [], [], 0
    for im in images:
        n_gt += len(im["gt"])
        order = np.argsort(-np.asarray(im["scores"], dtype=float), kind="mergesort")[:max_dets]
        ious = im["ious"][order] if len(order) else np.zeros((0, len(im["gt"])))
        taken = np.zeros(len(im["gt"]), bool)
        for d, det in enumerate(order):
            best, m = min(threshold, 1 - 1e-10), -1
            for g in range(len(im["gt"])):  # COCOeval's greedy match: the best free ground truth above t
                if taken[g] or ious[d, g] < best:
                    continue
                best, m = ious[d, g], g
            if m >= 0:
                taken[m] = True
            scores.append(im["scores"][det])
            matched.append(m >= 0)
    if n_gt == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=float), kind="mergesort")
    tp = np.cumsum(np.asarray(matched, dtype=float)[order])
    fp = np.cumsum(1 - np.asarray(matched, dtype=float)[order])
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision  # envelope
    idx = np.searchsorted(recall, COCO_RECALL_POINTS, side="left")
    q = np.zeros(len(COCO_RECALL_POINTS))  # recalls never reached count as precision 0
    valid = idx < len(precision)
    q[valid] = precision[idx[valid]]
    return float(np.mean(q))


def average_precision(gt_masks: list, det_masks: list, det_scores: list, *,
                      iou_thresholds=COCO_IOU_THRESHOLDS, max_dets: int = 100) -> dict:
    """COCO mask AP of one class over several images (as pycocotools' COCOeval, area range "all").

    Per image: ground-truth masks (G, H, W), detected masks (D, H, W) and their scores (D,). Detections are
    matched greedily by descending score to the unmatched ground truth of highest mask IoU >= t; precision
    is made monotone and read at 101 recall points. Returns AP per threshold, "AP50", "AP75" (when those
    thresholds are asked for) and "AP" (the mean over `iou_thresholds`, COCO's AP[.5:.95]).
    """
    if not (len(gt_masks) == len(det_masks) == len(det_scores)):
        raise ValueError("average_precision: need one list entry per image for gt_masks, det_masks, det_scores")
    images = []
    for g, d, s in zip(gt_masks, det_masks, det_scores):
        if len(d) != len(s):
            raise ValueError(f"average_precision: {len(d)} detected masks but {len(s)} scores")
        ious = mask_iou(d, g) if len(d) and len(g) else np.zeros((len(d), len(g)))
        images.append({"gt": g, "scores": np.asarray(s, dtype=float), "ious": ious})
    per_t = {round(float(t), 2): _coco_ap_one_threshold(images, float(t), max_dets) for t in iou_thresholds}
    out = {"per_threshold": per_t, "AP": float(np.mean(list(per_t.values())))}
    for name, t in (("AP50", 0.5), ("AP75", 0.75)):
        if t in per_t:
            out[name] = per_t[t]
    return out


# --------------------------------------------------------------------------- bootstrap intervals
# percentile-bootstrap confidence intervals of accuracy or of any metric, by case or by group.

@dataclass(frozen=True)
class Measure:
    """A result with its uncertainty: `value` on the test cases, the 95% percentile-bootstrap interval
    [`low`, `high`] over them, `n`, the number of units resampled (cases, or groups such as heads), and the
    metric's `chance` level where it has one (AUC 0.5, kappa 0)."""

    value: float
    low: float
    high: float
    n: int
    chance: float | None = None

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def bootstrap_accuracy(y_true, y_pred, *, frac: float = 1.0, n_rounds: int = 1000, seed: int = 0) -> dict:
    """Bootstrap of accuracy: draw `frac` of the test set with replacement `n_rounds` times.

    `frac=1` is Efron's bootstrap (n draws of n); a smaller `frac` is a subsample bootstrap, whose wider
    interval is what a paper drawing that fraction reports (Video4MRI: 40% x 100 rounds). Returns the mean
    accuracy, the 2.5/97.5 percentile interval, its half-width and the `samples` (one accuracy a round).
    """
    correct = (np.asarray(y_true) == np.asarray(y_pred)).astype(float)
    if correct.size == 0:
        raise ValueError("bootstrap_accuracy: empty test set")
    rng = np.random.default_rng(seed)
    size = max(1, int(round(frac * correct.size)))
    accs = correct[rng.integers(0, correct.size, (n_rounds, size))].mean(axis=1)
    low, high = np.percentile(accs, [2.5, 97.5])
    return {"mean": float(accs.mean()), "low": float(low), "high": float(high),
            "half_width": float((high - low) / 2), "samples": accs}


def bootstrap_measure(metric: Callable[..., float], *arrays, groups=None, n_rounds: int = 1000,
                      seed: int = 0, chance: float | None = None) -> Measure:
    """`metric(*arrays)` with its 95% percentile-bootstrap interval: `n_rounds` resamples of the cases
    with replacement, or of whole `groups` (e.g. subjects, whose slices are not independent).

    Rounds where the metric is undefined (NaN: an AUC drawn without a positive) are left out; when more
    than half are, the interval is NaN and says so, rather than a number from the few rounds left."""
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    if n == 0 or any(len(a) != n for a in arrays):
        raise ValueError(f"bootstrap_measure: arrays of lengths {[len(a) for a in arrays]}: need equal, non-zero")
    value = float(metric(*arrays))
    if groups is None:
        members = [np.array([i]) for i in range(n)]
    else:
        g = np.asarray(groups)
        members = [np.flatnonzero(g == k) for k in dict.fromkeys(g.tolist())]
    rng = np.random.default_rng(seed)
    draws = []
    for picks in rng.integers(0, len(members), (n_rounds, len(members))):
        idx = np.concatenate([members[k] for k in picks])
        draws.append(metric(*(a[idx] for a in arrays)))
    draws = np.asarray(draws, dtype=float)
    draws = draws[np.isfinite(draws)]
    if len(draws) < n_rounds / 2:
        return Measure(value, float("nan"), float("nan"), len(members), chance)
    low, high = np.percentile(draws, [2.5, 97.5])
    return Measure(value, float(low), float(high), len(members), chance)


# --------------------------------------------------------------------------- model cost and timing
# parameters, FLOPs of a layer, and one timer for all efficiency figures.

WARMUP = 3  # untimed calls first: oneDNN picks its kernels and glibc raises its mmap threshold over a few calls


def _sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_calls(fns: dict[str, Callable[[], None]], *, repeats: int = 5, warmup: int = WARMUP,
               device="cpu") -> dict[str, tuple[float, float]]:
    """Median wall-clock and process-CPU seconds of each callable, timed round-robin.

    Each runs `warmup` times untimed; then every round calls each one once in turn, so a slow stretch
    of the machine hits all of them alike and their ratios stay fair. Wall clock is the figure to
    report; CPU time (all threads of this process) is immune to other jobs on the cores and equals
    wall clock for an undisturbed one-thread CPU run.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync(device)
    walls, cpus = {k: [] for k in fns}, {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            with timed(device=device) as t:
                fn()
            walls[k].append(t.wall)
            cpus[k].append(t.cpu)
    return {k: (statistics.median(walls[k]), statistics.median(cpus[k])) for k in fns}


def inference_step(model: torch.nn.Module, input_shape: tuple[int, ...], *, device="cpu",
                   wrap: Callable = lambda x: x) -> Callable[[], None]:
    """One no-grad, eval-mode forward pass of one sample of `input_shape` (without the batch axis).

    `wrap` adapts the input to the model (applied on every call: some models overwrite their input).
    """
    model.eval().to(device)
    x = torch.randn(1, *input_shape, generator=torch.Generator().manual_seed(0)).to(device)  # global RNG untouched

    @torch.no_grad()
    def step() -> None:
        model(wrap(x))

    return step


def inference_ms(model: torch.nn.Module, input_shape: tuple[int, ...], *, repeats: int = 5, device="cpu") -> float:
    """Milliseconds per sample at batch 1: the median of `repeats` timed calls after the warm-up."""
    return 1000 * time_calls({"m": inference_step(model, input_shape, device=device)}, repeats=repeats,
                             device=device)["m"][0]


def efficiency(model: torch.nn.Module, epoch_seconds: list[float], input_shape: tuple[int, ...]) -> dict:
    """Trainable params (M), training s/epoch (mean of the epochs after the first, which also reads the
    files) and inference ms/sample at batch 1 for one input of `input_shape` (C, T, H, W), with the
    number of torch threads it was timed with."""
    secs = list(epoch_seconds[1:]) or list(epoch_seconds)
    return {"params_m": count_parameters(model) / 1e6, "train_s_per_epoch": float(np.mean(secs)),
            "inference_ms": inference_ms(model, input_shape), "threads": torch.get_num_threads()}


def layer_cost(layer: torch.nn.Module, input_shape: tuple[int, ...]) -> dict:
    """Shape, parameters and FLOPs of one layer on an input of `input_shape` (batch included), without
    computing anything: the layer runs on PyTorch's "meta" device, which only tracks shapes, and
    torch's FlopCounterMode counts its FLOPs (2 per multiply-add, bias
    additions not counted). `output_mb` is the float32 output size."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    meta = copy.deepcopy(layer).to("meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        y = meta(torch.empty(input_shape, device="meta"))
    return {"input_shape": tuple(input_shape), "output_shape": tuple(y.shape),
            "params": sum(p.numel() for p in layer.parameters()), "gflops": counter.get_total_flops() / 1e9,
            "output_mb": y.numel() * 4 / 2 ** 20}


# --------------------------------------------------------------------------- action segmentation
# frame labels -> segments, and the segmental F1 at an IoU threshold (Lea et al., CVPR 2017; MS-TCN's F1@k).

def label_segments(labels) -> list[tuple[int, int, int]]:
    """Runs of equal frame labels as (start, end, label), `end` exclusive: [0, 0, 2, 2, 2] ->
    [(0, 2, 0), (2, 5, 2)]. The segments tile the sequence, in order."""
    y = np.asarray(labels).ravel()
    if y.size == 0:
        return []
    cuts = np.flatnonzero(y[1:] != y[:-1]) + 1
    starts, ends = np.r_[0, cuts], np.r_[cuts, y.size]
    return [(int(s), int(e), y[s].item()) for s, e in zip(starts, ends)]


def segment_counts(pred, target, *, iou: float = 0.5, ignore=()) -> dict[str, int]:
    """True positive, false positive and false negative segments of one sequence's frame labels.

    Each predicted segment (labels in `ignore`, e.g. the background, left out on both sides) is matched
    to the ground-truth segment of its label it overlaps most (intersection over union of their frames);
    it is a true positive when that IoU reaches `iou` and the ground-truth segment was not matched before,
    else a false positive. Unmatched ground-truth segments are false negatives. A prediction that flickers
    inside one true segment thus scores one hit and several false positives, however many frames are right.
    """
    p, t = np.asarray(pred).ravel(), np.asarray(target).ravel()
    if p.shape != t.shape:
        raise ValueError(f"segment_counts: {p.size} predicted frames against {t.size} true frames")
    skip = set(ignore)
    truth = [s for s in label_segments(t) if s[2] not in skip]
    hit = np.zeros(len(truth), bool)
    tp = fp = 0
    for start, end, label in (s for s in label_segments(p) if s[2] not in skip):
        overlaps = [(min(end, e) - max(start, s)) / (max(end, e) - min(start, s)) if l == label else 0.0
                    for s, e, l in truth]
        best = int(np.argmax(overlaps)) if overlaps else -1
        if best >= 0 and overlaps[best] >= iou and not hit[best]:
            tp, hit[best] = tp + 1, True
        else:
            fp += 1
    return {"tp": tp, "fp": fp, "fn": int(len(truth) - hit.sum())}


def f1_from_counts(tp, fp, fn) -> float:
    """2 TP / (2 TP + FP + FN), summed over sequences first; NaN when there is no segment at all."""
    tp, fp, fn = (int(np.sum(v)) for v in (tp, fp, fn))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")


def segmental_f1(pred, target, *, iou: float = 0.5, ignore=()) -> float:
    """F1 of the segments (`segment_counts`) of one sequence: 1 when every true segment is found once
    with enough overlap and nothing else is predicted."""
    c = segment_counts(pred, target, iou=iou, ignore=ignore)
    return f1_from_counts(c["tp"], c["fp"], c["fn"])


# --------------------------------------------------------------------------- box detection
# COCO box AP per class (pycocotools' COCOeval), and how visible a box's border is in an image.

def box_average_precision(gt: list[dict], det: list[dict], *, classes: dict[int, str]) -> dict[str, dict]:
    """COCO box AP of a detector per class, computed by pycocotools' COCOeval (iouType "bbox", area range
    "all", 100 detections per image). `gt` and `det` hold one dict per image, in the same order:
    ``boxes`` (N, 4) as x0, y0, x1, y1 in pixels and ``labels`` (N,) (class ids, the keys of `classes`),
    plus ``scores`` (N,) for `det`. Returns {class name: {"AP": AP[.5:.95], "AP50": AP at IoU 0.5, "AP75",
    "objects": ground-truth count}}; a class without ground truth gets NaN APs (nothing to find)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(gt) != len(det):
        raise ValueError(f"box_average_precision: {len(gt)} ground-truth images but {len(det)} detection images")
    images, anns, results = [], [], []
    for i, (g, d) in enumerate(zip(gt, det)):
        images.append({"id": i})
        for box, label in zip(np.asarray(g["boxes"], float).reshape(-1, 4), np.asarray(g["labels"]).ravel()):
            w, h = box[2] - box[0], box[3] - box[1]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(label), "iscrowd": 0,
                         "bbox": [float(box[0]), float(box[1]), float(w), float(h)], "area": float(w * h)})
        for box, label, score in zip(np.asarray(d["boxes"], float).reshape(-1, 4), np.asarray(d["labels"]).ravel(),
                                     np.asarray(d["scores"], float).ravel()):
            results.append({"image_id": i, "category_id": int(label), "score": float(score),
                            "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]})
    out = {}
    counts = {c: sum(a["category_id"] == c for a in anns) for c in classes}
    quiet = contextlib.redirect_stdout(io.StringIO())  # COCOeval prints its progress
    with quiet:
        coco = COCO()
        coco.dataset = {"images": images, "annotations": anns,
                        "categories": [{"id": int(c), "name": n} for c, n in classes.items()]}
        coco.createIndex()
        ev = None
        if results and anns:
            ev = COCOeval(coco, coco.loadRes(results), iouType="bbox")
            ev.params.catIds = sorted(int(c) for c in classes)
            ev.evaluate()
            ev.accumulate()
    for c, name in classes.items():
        row = {"AP": float("nan"), "AP50": float("nan"), "AP75": float("nan"), "objects": counts[c]}
        if counts[c]:
            if ev is None:  # nothing detected at all: every object missed
                row.update(AP=0.0, AP50=0.0, AP75=0.0)
            else:
                k = ev.params.catIds.index(int(c))
                prec = ev.eval["precision"][:, :, k, 0, -1]  # (IoU thresholds, recall points); -1: undefined
                per_t = [float(p[p > -1].mean()) if (p > -1).any() else 0.0 for p in prec]
                thresholds = list(np.round(ev.params.iouThrs, 2))
                row.update(AP=float(np.mean(per_t)), AP50=per_t[thresholds.index(0.5)],
                           AP75=per_t[thresholds.index(0.75)])
        out[name] = row
    return out


def border_contrast(image, box, *, ring: int = 3, floor: float = 1 / 255) -> float:
    """How visible a box's border is: the mean absolute step between neighbouring pixels across the border
    over the same step between neighbours inside the `ring` of pixels around the box, the latter at least
    `floor` (one 8-bit grey level: a flat, quantised background would otherwise divide by zero). About 1
    where the box's content continues its surroundings; well above 1 at an edge (a blanked box on a bright
    background). NaN when the box has no ring inside the image. `box` is (x0, y0, x1, y1), whole pixels."""
    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape
    x0, y0, x1, y1 = (int(v) for v in box)
    across = []
    if y0 > 0:
        across.append(img[y0, x0:x1] - img[y0 - 1, x0:x1])
    if y1 < h:
        across.append(img[y1 - 1, x0:x1] - img[y1, x0:x1])
    if x0 > 0:
        across.append(img[y0:y1, x0] - img[y0:y1, x0 - 1])
    if x1 < w:
        across.append(img[y0:y1, x1 - 1] - img[y0:y1, x1])
    band = np.zeros((h, w), bool)
    band[max(0, y0 - ring):min(h, y1 + ring), max(0, x0 - ring):min(w, x1 + ring)] = True
    band[y0:y1, x0:x1] = False
    inside = [np.abs(np.diff(img, axis=1))[band[:, 1:] & band[:, :-1]],
              np.abs(np.diff(img, axis=0))[band[1:] & band[:-1]]]
    steps = np.abs(np.concatenate(across)) if across else np.zeros(0)
    around = np.concatenate(inside)
    if not steps.size or not around.size:
        return float("nan")
    return float(steps.mean() / max(around.mean(), floor))
