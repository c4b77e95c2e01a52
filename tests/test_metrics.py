"""Bootstrap accuracy (Efron's by default, a subsample bootstrap on request) and the efficiency figures."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from medvid_core.metrics import accuracy, bootstrap_accuracy, efficiency, inference_ms, time_calls


SUBSAMPLE = dict(frac=0.4, n_rounds=100)  # a subsample bootstrap: 40% of the test set, 100 rounds


def seventy_percent():
    y_true = np.arange(100) % 2
    y_pred = y_true.copy()
    y_pred[:30] = 1 - y_pred[:30]  # exactly 70 of 100 correct
    return y_true, y_pred


def test_all_correct():
    y = np.array([0, 1, 1, 0, 1] * 4)
    r = bootstrap_accuracy(y, y, **SUBSAMPLE)
    assert r["mean"] == 1.0 and (r["low"], r["high"]) == (1.0, 1.0) and r["half_width"] == 0.0
    assert r["samples"].shape == (100,) and (r["samples"] == 1.0).all()


def test_all_wrong():
    y = np.array([0, 1] * 10)
    r = bootstrap_accuracy(y, 1 - y)
    assert r["mean"] == 0.0 and (r["low"], r["high"]) == (0.0, 0.0)


def test_seventy_percent():
    y_true, y_pred = seventy_percent()
    r = bootstrap_accuracy(y_true, y_pred, seed=0, **SUBSAMPLE)
    assert abs(r["mean"] - 0.7) < 0.05
    assert r["low"] < 0.7 < r["high"]
    assert r["half_width"] == pytest.approx((r["high"] - r["low"]) / 2)
    low, high = np.percentile(r["samples"], [2.5, 97.5])
    assert (r["low"], r["high"]) == (low, high)
    assert r["mean"] == pytest.approx(r["samples"].mean())
    # 40 draws per round (40% of 100): every round's accuracy is k/40
    k = r["samples"] * 40
    np.testing.assert_allclose(k, np.round(k), atol=1e-9)
    # ... and not a finer grid: some round is an odd multiple of 1/40 (not a multiple of 1/20)
    assert (np.round(k).astype(int) % 2 == 1).any()
    assert all(isinstance(r[key], float) for key in ("mean", "low", "high", "half_width"))


def test_default_is_efrons_bootstrap():
    """Neutral defaults: n draws of n cases, 1000 rounds (a paper's own protocol is passed in)."""
    y_true, y_pred = seventy_percent()
    r = bootstrap_accuracy(y_true, y_pred)
    assert r["samples"].shape == (1000,)
    k = r["samples"] * 100  # 100 draws per round: every round's accuracy is k/100
    np.testing.assert_allclose(k, np.round(k), atol=1e-9)
    assert r["half_width"] < bootstrap_accuracy(y_true, y_pred, **SUBSAMPLE)["half_width"]  # more draws, narrower


def test_round_count_and_fraction():
    y_true, y_pred = seventy_percent()
    r = bootstrap_accuracy(y_true, y_pred, frac=0.1, n_rounds=37)
    assert r["samples"].shape == (37,)
    k = r["samples"] * 10
    np.testing.assert_allclose(k, np.round(k), atol=1e-9)
    # a tiny test set still draws at least one sample
    r = bootstrap_accuracy([1], [1], frac=0.1)
    assert r["mean"] == 1.0


def test_seeded():
    y_true, y_pred = seventy_percent()
    a = bootstrap_accuracy(y_true, y_pred, seed=5)
    b = bootstrap_accuracy(y_true, y_pred, seed=5)
    c = bootstrap_accuracy(y_true, y_pred, seed=6)
    np.testing.assert_array_equal(a["samples"], b["samples"])
    assert a["mean"] == b["mean"]
    assert not np.array_equal(a["samples"], c["samples"])


def test_accepts_lists_and_tensors():
    y_true, y_pred = seventy_percent()
    a = bootstrap_accuracy(list(y_true), list(y_pred))
    b = bootstrap_accuracy(torch.tensor(y_true), torch.tensor(y_pred))
    assert a["mean"] == b["mean"] == bootstrap_accuracy(y_true, y_pred)["mean"]


def test_empty():
    with pytest.raises(ValueError, match="empty"):
        bootstrap_accuracy([], [])


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 2, 3, padding=1)
        self.fc = nn.Linear(2, 2)
        self.frozen = nn.Parameter(torch.zeros(5), requires_grad=False)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3, 4)))


def test_inference_ms_positive_float():
    model = Tiny().train()
    ms = inference_ms(model, (1, 4, 8, 8), repeats=3)
    assert isinstance(ms, float) and ms > 0
    assert not model.training  # measured in eval mode


def test_efficiency():
    model = Tiny()
    seconds = [10.0, 2.0, 4.0]
    eff = efficiency(model, seconds, (1, 4, 8, 8))
    assert eff["params_m"] == pytest.approx((2 * 27 + 2 + 2 * 2 + 2) / 1e6)  # the frozen 5 do not count
    assert eff["train_s_per_epoch"] == 3.0  # the first epoch (file reading) is left out
    assert eff["inference_ms"] > 0
    assert efficiency(model, seconds[:1], (1, 4, 8, 8))["train_s_per_epoch"] == 10.0


def test_inference_ms_leaves_the_global_rng_alone():
    model = Tiny()
    state = torch.get_rng_state()
    inference_ms(model, (1, 4, 8, 8), repeats=1)
    assert torch.equal(torch.get_rng_state(), state)


def test_time_calls_round_robin_median():
    calls = []
    times = time_calls({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4  # one warm-up round, then three timed rounds, each calling a then b
    assert set(times) == {"a", "b"} and all(w >= 0 and c >= 0 for w, c in times.values())


def test_accuracy_hard_and_soft_targets():
    out = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 2.0]])
    assert accuracy(out, torch.tensor([0, 1, 1, 1]))["accuracy"] == 0.75
    soft = torch.tensor([[0.7, 0.3], [0.2, 0.8], [0.4, 0.6], [0.1, 0.9]])  # mixing: the dominant class counts
    assert accuracy(out, soft)["accuracy"] == 0.75
