"""Action segmentation metrics: labels -> segments, and the segmental F1 at an IoU threshold, on hand-made
sequences whose counts are worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from medvid_core.metrics import f1_from_counts, label_segments, segment_counts, segmental_f1


def test_label_segments_tile_the_sequence():
    assert label_segments([0, 0, 2, 2, 2, 1]) == [(0, 2, 0), (2, 5, 2), (5, 6, 1)]
    assert label_segments([]) == []
    y = np.random.default_rng(0).integers(0, 3, 50)
    segs = label_segments(y)
    assert segs[0][0] == 0 and segs[-1][1] == 50
    assert all(a[1] == b[0] and a[2] != b[2] for a, b in zip(segs, segs[1:]))  # no gap, no overlap, maximal
    assert np.array_equal(np.concatenate([[lab] * (e - s) for s, e, lab in segs]), y)


def test_perfect_prediction_scores_one():
    y = [0] * 5 + [1] * 10 + [0] * 5 + [2] * 8
    assert segmental_f1(y, y, iou=0.5) == 1.0
    assert segment_counts(y, y, ignore=(0,)) == {"tp": 2, "fp": 0, "fn": 0}


def test_counts_by_hand():
    truth = [1] * 10 + [0] * 10 + [2] * 10
    shifted = [0] * 4 + [1] * 10 + [0] * 6 + [2] * 10  # class 1 overlaps 6 of 14 frames: IoU 0.43
    assert segment_counts(shifted, truth, iou=0.5, ignore=(0,)) == {"tp": 1, "fp": 1, "fn": 1}
    assert segment_counts(shifted, truth, iou=0.25, ignore=(0,)) == {"tp": 2, "fp": 0, "fn": 0}
    assert segmental_f1(shifted, truth, iou=0.5, ignore=(0,)) == pytest.approx(2 / 4)
    wrong_class = [2] * 10 + [0] * 10 + [1] * 10  # right places, swapped labels: nothing matches
    assert segment_counts(wrong_class, truth, ignore=(0,)) == {"tp": 0, "fp": 2, "fn": 2}


def test_a_true_segment_is_matched_once():
    truth = [1] * 20
    split = [1] * 12 + [0] + [1] * 7  # two predicted pieces of one true segment
    assert segment_counts(split, truth, iou=0.5) == {"tp": 1, "fp": 2, "fn": 0}  # the 0 piece counts too
    assert segment_counts(split, truth, iou=0.5, ignore=(0,)) == {"tp": 1, "fp": 1, "fn": 0}


def test_over_segmentation_costs_more_per_segment_than_per_frame():
    truth = np.repeat([0, 1, 0, 2, 0], 20)
    flicker = truth.copy()
    flicker[[5, 12, 38, 45, 52, 61, 85]] = [1, 2, 0, 1, 2, 0, 1]  # 7 wrong frames of 100
    frame_acc = float((flicker == truth).mean())
    assert frame_acc == pytest.approx(0.93)
    # both true activities are found (pieces of 18 frames, IoU 0.9), besides 7 spurious one-frame segments
    assert segment_counts(flicker, truth, iou=0.5, ignore=(0,)) == {"tp": 2, "fp": 7, "fn": 0}
    f1 = segmental_f1(flicker, truth, iou=0.5, ignore=(0,))
    assert f1 == pytest.approx(4 / 11) and f1 < 0.5 < frame_acc


def test_f1_sums_counts_over_sequences_and_is_nan_without_segments():
    assert f1_from_counts([1, 1], [0, 2], [1, 0]) == pytest.approx(4 / 7)
    assert math.isnan(f1_from_counts([0], [0], [0]))
    assert math.isnan(segmental_f1([0, 0], [0, 0], ignore=(0,)))
    with pytest.raises(ValueError, match="3 predicted frames against 2"):
        segment_counts([0, 0, 0], [0, 0])
