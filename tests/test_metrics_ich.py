"""The RSNA weighted log loss on a hand-computed case, and the binary scores the ICH lesson reports."""
from __future__ import annotations

import math

import numpy as np
import pytest

from medvid_core.metrics import binary_scores, weighted_log_loss, within_group_auc


def test_weighted_log_loss_hand_computed():
    y = [[1, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0]]
    p = [[0.9, 0.2, 0.5, 0.5, 0.5, 0.8], [0.5] * 6]
    # row 1: -ln .9 - ln .8 + 3 ln 2 + 2 * (-ln .8) over weights 1+1+1+1+1+2 = 7 -> 0.407747
    # row 2: ln 2 whatever the weights -> 0.693147; mean 0.550447
    assert weighted_log_loss(y, p) == pytest.approx(0.550447, abs=1e-6)
    # `any` counts twice: an error there costs more than the same error on a subtype
    worse_any = [[0.5] * 5 + [0.1]]
    worse_sub = [[0.1] + [0.5] * 5]
    assert weighted_log_loss([[1] * 6], worse_any) > weighted_log_loss([[1] * 6], worse_sub)
    assert weighted_log_loss([[1] * 6], [[1.0] * 6]) == pytest.approx(0, abs=1e-6)  # clipped, finite
    assert math.isfinite(weighted_log_loss([[0] * 6], [[1.0] * 6]))


def test_weighted_log_loss_shape_error():
    with pytest.raises(ValueError, match="6"):
        weighted_log_loss(np.zeros((3, 5)), np.zeros((3, 5)))


def test_binary_scores():
    s = binary_scores([1, 1, 0, 0], [0.9, 0.4, 0.3, 0.6])
    assert s["accuracy"] == 0.5 and s["recall"] == 0.5 and s["precision"] == 0.5 and s["f1"] == 0.5
    assert s["auc"] == 0.75
    assert math.isnan(binary_scores([1, 1], [0.2, 0.9])["auc"])


def test_within_group_auc_sees_the_ranking_a_pooled_auc_hides():
    # two heads: inside each, bleeding slices score higher; the clean head sits higher overall
    y = np.array([0, 0, 1, 1, 0, 0, 0, 0, 0, 1])
    p = np.array([.10, .11, .12, .13, .30, .31, .32, .33, .20, .21])
    g = np.array(["a", "a", "a", "a", "b", "b", "b", "b", "c", "c"])
    assert binary_scores(y, p)["auc"] < 0.5  # pooled: below chance
    out = within_group_auc(y, p, g)
    assert out["per_group"] == {"a": 1.0, "c": 1.0} and out["mean"] == 1.0 and out["groups"] == 2  # b: one class
    assert math.isnan(within_group_auc(y[4:8], p[4:8], g[4:8])["mean"])

