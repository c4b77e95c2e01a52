"""medvid_core.reference: trained results within a tolerance from their own uncertainty; a check that can fail.

Run as a script (``python tests/test_reference.py``) it prints one tiny trial's accuracy measure as JSON: the
CPU-kind test runs it in fresh processes with and without the pinned kernels.
"""
import json
import math
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from medvid_core import CPU_KERNEL_ENV, REPLAY_ENV
from medvid_core.metrics import Measure, bootstrap_measure
from medvid_core.reference import ReferenceMismatch, check, record, tolerance
from medvid_core.train import evaluate, fit, seed_everything

PARAMS = {"seed": 0, "epochs": 4, "output_dir": "/somewhere", "device": "auto"}


# ----------------------------------------------------------------------------- a tiny trial that learns


def _bars(n: int, rng: np.random.Generator):
    """16x16 images: a horizontal bar (class 1) or a vertical one (class 0) at a random place, in noise."""
    x = rng.normal(0, 0.6, (n, 1, 16, 16)).astype(np.float32)
    y = rng.integers(0, 2, n)
    for i in range(n):
        k, lo = rng.integers(2, 14), rng.integers(0, 8)
        if y[i]:
            x[i, 0, k, lo:lo + 8] += 2.0
        else:
            x[i, 0, lo:lo + 8, k] += 2.0
    return torch.from_numpy(x), torch.from_numpy(y)


def tiny_trial(*, shuffle_labels: bool = False, majority: bool = False, seed: int = 0) -> Measure:
    """A small CNN trained with the kit's `fit` for a few epochs; its test accuracy with a bootstrap interval."""
    rng = np.random.default_rng(0)
    x_tr, y_tr = _bars(240, rng)
    x_te, y_te = _bars(100, rng)
    if shuffle_labels:
        y_tr = y_tr[torch.from_numpy(np.random.default_rng(1).permutation(len(y_tr)))]
    seed_everything(seed)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                        nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(16, 2))
    gen = torch.Generator().manual_seed(seed)
    fit(net, DataLoader(TensorDataset(x_tr, y_tr), batch_size=16, shuffle=True, generator=gen), epochs=15, lr=1e-2,
        head=None, desc="")
    pred = evaluate(net, DataLoader(TensorDataset(x_te, y_te), batch_size=64))["outputs"].argmax(1).numpy()
    if majority:  # a broken model: the training set's majority class, whatever the input
        pred = np.full_like(pred, int(torch.mode(y_tr).values))
    return bootstrap_measure(lambda t, p: float((t == p).mean()), y_te.numpy(), pred)


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("references")
    record("tiny", {"bars accuracy": tiny_trial()}, params=PARAMS, reference_dir=d)
    return d


def _check(measure: Measure, reference_dir) -> list:
    return check("tiny", {"bars accuracy": measure}, params=PARAMS, reference_dir=reference_dir)


def test_the_tiny_trial_learns_and_repeats_exactly():
    first, second = tiny_trial(), tiny_trial()
    assert first == second  # same machine, same seed: identical numbers, interval included
    assert first.value > 0.85 and first.high - first.low < 0.2


def test_a_label_shuffle_fails_the_check(reference_dir, capsys):
    with pytest.raises(ReferenceMismatch, match="bars accuracy"):
        _check(tiny_trial(shuffle_labels=True), reference_dir)
    assert "OUTSIDE" in capsys.readouterr().out


def test_a_majority_class_model_fails_the_check(reference_dir):
    with pytest.raises(ReferenceMismatch):
        _check(tiny_trial(majority=True), reference_dir)


def test_another_cpu_kind_passes_the_check(reference_dir, capsys):
    """The same trial in fresh processes, with the kernels pinned to AVX2 and with each library's own pick
    (AVX-512 here): whatever each gets, it is within the reference's tolerance."""
    clean = {k: v for k, v in os.environ.items() if k not in CPU_KERNEL_ENV and k != REPLAY_ENV}
    pin = "import medvid_core; medvid_core.pin_cpu_kernels()\n"
    script = f"import runpy, sys; sys.argv = ['x']; runpy.run_path({str(Path(__file__))!r}, run_name='__main__')"
    for prefix in (pin, ""):
        out = subprocess.run([sys.executable, "-c", prefix + script], env=clean, capture_output=True, text=True,
                             check=True).stdout
        _check(Measure(**json.loads(out.strip().splitlines()[-1])), reference_dir)
        assert "ok" in capsys.readouterr().out


# ----------------------------------------------------------------------------- the rule itself


def test_tolerance_is_root_two_half_widths_with_a_floor():
    assert math.isclose(tolerance(Measure(0.8, 0.7, 0.9, 50)), math.sqrt(2) * 0.1)
    assert tolerance(Measure(1.0, 1.0, 1.0, 48)) == 2 / 48  # a zero-width interval at 100% correct


def test_lines_say_what_was_compared(tmp_path, capsys):
    record("s", {"a auc": Measure(0.77, 0.6, 0.9, 40)}, params=PARAMS, reference_dir=tmp_path)
    check("s", {"a auc": Measure(0.79, 0.6, 0.95, 40)}, params=PARAMS, reference_dir=tmp_path)
    out = capsys.readouterr().out
    assert "a auc 0.79 vs reference 0.77 (tolerance 0.21): ok" in out
    with pytest.raises(ReferenceMismatch):
        check("s", {"a auc": Measure(0.50, 0.3, 0.7, 40)}, params=PARAMS, reference_dir=tmp_path)
    assert "a auc 0.50 vs reference 0.77 (tolerance 0.21): OUTSIDE" in capsys.readouterr().out


def test_missing_and_degenerate_results_fail(tmp_path, capsys):
    record("s", {"a": Measure(0.5, 0.4, 0.6, 30), "b": Measure(0.5, 0.4, 0.6, 30)}, params=PARAMS, reference_dir=tmp_path)
    with pytest.raises(ReferenceMismatch, match="2 of 2"):
        check("s", {"a": Measure(float("nan"), 0, 1, 30)}, params=PARAMS, reference_dir=tmp_path)
    out = capsys.readouterr().out
    assert "degenerate" in out and "missing from this run" in out
    with pytest.raises(ValueError, match="degenerate"):
        record("s", {"a": Measure(float("nan"), 0, 1, 30)}, params=PARAMS, reference_dir=tmp_path)


def test_other_parameters_are_not_checked(tmp_path, capsys):
    record("s", {"a": Measure(0.9, 0.85, 0.95, 30)}, params=PARAMS, reference_dir=tmp_path)
    assert check("s", {"a": Measure(0.1, 0, 0.2, 30)}, params={**PARAMS, "epochs": 100}, reference_dir=tmp_path) == []
    out = capsys.readouterr().out
    assert "not checked" in out and "(epochs)" in out
    # where it runs and where it writes do not change the expected value: still checked
    assert check("s", {"a": Measure(0.9, 0.85, 0.95, 30)}, params={**PARAMS, "device": "cuda", "output_dir": ""},
                 reference_dir=tmp_path)


def test_record_mode_writes_instead_of_checking(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVID_RECORD_REFERENCE", "1")
    assert check("s", {"a": Measure(0.9, 0.85, 0.95, 30)}, params=PARAMS, reference_dir=tmp_path) == []
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["metrics"]["a"]["tolerance"] == round(max(math.sqrt(2) * 0.05, 2 / 30), 4)
    assert "output_dir" not in doc["parameters"] and doc["parameters"]["epochs"] == 4


def test_committed_references_match_their_notebooks():
    """Each study notebook has a reference, recorded with the parameters its `parameters` cell holds now."""
    from medvid_core.params import study_spec
    from medvid_core.reference import REFERENCE_DIR, _jsonable

    notebooks = sorted(REFERENCE_DIR.parent.glob("*.ipynb"))
    assert len(notebooks) >= 5  # every study notebook, the new ones included
    for nb in notebooks:
        doc = json.loads((REFERENCE_DIR / f"{nb.stem}.json").read_text())
        defaults = _jsonable({k: p.default for k, p in study_spec(nb.stem, notebook_dir=nb.parent).items()})
        assert doc["parameters"] == defaults, f"{nb.stem}: re-record with `make notebooks`"
        assert doc["metrics"] and all(m["tolerance"] > 0 for m in doc["metrics"].values()), nb.stem


if __name__ == "__main__":
    print(json.dumps(asdict(tiny_trial())))


def test_a_reference_at_chance_is_printed_not_checked(tmp_path, capsys):
    """An AUC whose reference interval includes 0.5 measured nothing to hold a run to."""
    record("s", {"auc": Measure(0.56, 0.45, 0.67, 17, chance=0.5), "acc": Measure(0.8, 0.7, 0.9, 40)},
           params=PARAMS, reference_dir=tmp_path)
    rows = check("s", {"auc": Measure(0.30, 0.2, 0.4, 17, chance=0.5), "acc": Measure(0.8, 0.7, 0.9, 40)},
                 params=PARAMS, reference_dir=tmp_path)
    assert [r["checked"] for r in rows] == [False, True]
    out = capsys.readouterr().out
    assert "auc 0.30 vs reference 0.56 (tolerance 0.16): reference 0.45-0.67 includes chance 0.5: not checked" in out
    assert "1 of 1 checked trained results within tolerance of the reference (1 at chance, not checked)" in out


def test_a_reference_below_chance_is_not_checked_either(tmp_path, capsys):
    """An accuracy below the majority answer's (a model that learnt backwards) holds no run to it; one above is
    checked, and fails when a run leaves its tolerance."""
    record("s", {"low": Measure(0.48, 0.35, 0.60, 17, chance=0.74), "high": Measure(0.90, 0.85, 0.95, 40, chance=0.74)},
           params=PARAMS, reference_dir=tmp_path)
    rows = check("s", {"low": Measure(0.74, 0.6, 0.8, 17, chance=0.74), "high": Measure(0.90, 0.85, 0.95, 40, chance=0.74)},
                 params=PARAMS, reference_dir=tmp_path)
    assert [r["checked"] for r in rows] == [False, True]
    assert "reference 0.35-0.60 lies below chance 0.74: not checked" in capsys.readouterr().out
    with pytest.raises(ReferenceMismatch):
        check("s", {"low": Measure(0.74, 0.6, 0.8, 17, chance=0.74), "high": Measure(0.74, 0.7, 0.8, 40, chance=0.74)},
              params=PARAMS, reference_dir=tmp_path)


def test_a_measured_seed_range_widens_the_tolerance_and_survives_re_recording(tmp_path):
    record("s", {"kappa": Measure(0.37, 0.17, 0.56, 40)}, params=PARAMS, reference_dir=tmp_path)
    path = tmp_path / "s.json"
    doc = json.loads(path.read_text())
    doc["metrics"]["kappa"].update(seed_range=0.42, seed_range_from="the seed grid")
    path.write_text(json.dumps(doc))
    rows = check("s", {"kappa": Measure(0.0, -0.1, 0.1, 40)}, params=PARAMS, reference_dir=tmp_path)
    assert rows[0]["ok"] and rows[0]["tolerance"] == 0.42  # 0.37 away, inside the seed range, outside sqrt(2) x 0.195
    record("s", {"kappa": Measure(0.35, 0.15, 0.55, 40)}, params=PARAMS, reference_dir=tmp_path)
    assert json.loads(path.read_text())["metrics"]["kappa"]["seed_range_from"] == "the seed grid"
