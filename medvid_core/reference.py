"""Trained results against the committed reference, within a tolerance that comes from their uncertainty.

A notebook's results are checked in two ways:

* **exact**: deterministic cells (cohort summaries, parameter counts, shapes, preprocessing checks, the
  papers' numbers) carry ``# NBVAL_CHECK_OUTPUT`` and nbval compares them digit for digit;
* **within tolerance**: a trained result changes with the floating-point kernels underneath (AVX2,
  AVX-512, ARM, a GPU) much as it would with another training seed, so its table displays unchecked and
  a `check` cell compares each metric with the reference that the committed notebook recorded.

Each metric is a `metrics.Measure`: the value and its 95% bootstrap interval over the test cases. The
tolerance is the difference two runs may show when each carries the reference's uncertainty:
``sqrt(2) x`` the reference interval's half-width. It never goes below two test units' worth (``2/n``):
at 100% correct a percentile bootstrap has zero width, though one case changing is no regression. A
reference whose interval includes the metric's chance level (AUC 0.5, kappa 0, the accuracy of always
answering the majority class), or lies below it, is not a result to hold a run to: it is recorded and
printed, marked "not checked" (a model that learnt nothing, or learnt backwards, can land anywhere near
there on other kernels). A
study leaves out of its measures what a bootstrap cannot bound: an AUC whose positives lie in one or two
groups (heads) has an interval far narrower than its real spread.

Where training itself is chaotic (ViPTT-Net: early stopping on 19 validation scans picks another epoch
when the kernels change), the test-set bootstrap underestimates how far a rerun moves. There the
reference also holds a ``seed_range``: the metric's range over the seed grid (``params/findings.yaml``),
measured once, with the command in ``seed_range_from``; the tolerance is the larger of the two.
`record` keeps both when it re-records.

The reference is ``notebooks/references/<study>.json``, written when the committed notebooks are
re-executed with ``MEDVID_RECORD_REFERENCE=1`` (``make notebooks``). It holds the parameters it was
recorded with: a run with other parameters (another cohort, the paper's protocol) is not checked, and
says so.
"""
from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path

from .metrics import Measure
from .paths import REPO_ROOT

REFERENCE_DIR = REPO_ROOT / "notebooks" / "references"
RECORD_ENV = "MEDVID_RECORD_REFERENCE"
#: parameters that do not change a result's expected value: where it runs and where it writes
NOT_COMPARED = {"output_dir", "device", "n_jobs", "num_threads", "num_workers"}  # how, not what, is computed


class ReferenceMismatch(AssertionError):
    """A trained result outside its tolerance: the run is not the reference's within its uncertainty."""


def tolerance(ref: Measure) -> float:
    """sqrt(2) x the reference's 95% half-width, at least 2/n (two of its n test units)."""
    return max(math.sqrt(2) * ref.half_width, 2 / ref.n)


def _jsonable(params: dict) -> dict:
    return json.loads(json.dumps({k: v for k, v in params.items() if k not in NOT_COMPARED}, default=str))


def record(study: str, measures: dict[str, Measure], *, params: dict, reference_dir: str | Path = REFERENCE_DIR) -> Path:
    """Write `study`'s reference: every measure with its interval and tolerance, and the parameters."""
    bad = [k for k, m in measures.items() if not all(map(math.isfinite, (m.value, m.low, m.high)))]
    if bad:
        raise ValueError(f"{study}: cannot record a reference for degenerate result(s) {', '.join(bad)} "
                         "(NaN value or interval): leave them out of the measures")
    path = Path(reference_dir) / f"{study}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = {}  # a seed range measured once survives re-recording (its command says where it came from)
    if path.exists():
        kept = {k: {f: v[f] for f in ("seed_range", "seed_range_from") if f in v}
                for k, v in json.loads(path.read_text())["metrics"].items()}
    doc = {"study": study,
           "recorded_with": f"make notebooks ({RECORD_ENV}=1, MEDVID_REPLAY={os.environ.get('MEDVID_REPLAY', '')})"
                            f" on {platform.machine()}",
           "tolerance": "sqrt(2) x the 95% bootstrap half-width of the reference, at least 2/n",
           "parameters": _jsonable(params),
           "metrics": {k: {"value": round(m.value, 4), "low": round(m.low, 4), "high": round(m.high, 4), "n": m.n,
                           "tolerance": round(tolerance(m), 4), "chance": m.chance, **kept.get(k, {})}
                       for k, m in measures.items()}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)
    return path


def compare(measures: dict[str, Measure], reference: dict) -> list[dict]:
    """One row per reference metric: ours, the reference, the tolerance and whether it holds."""
    rows = []
    for name, ref in reference["metrics"].items():
        m = measures.get(name)
        row = {"metric": name, "ours": None if m is None else m.value, "reference": ref["value"],
               "tolerance": max(ref["tolerance"], ref.get("seed_range") or 0.0)}
        chance = ref.get("chance")
        if chance is not None and ref["low"] <= chance:
            where = "includes" if chance <= ref["high"] else "lies below"
            row.update(ok=True, checked=False, why=f"reference {ref['low']:.2f}-{ref['high']:.2f} {where} chance "
                                                   f"{chance:g}: not checked")
        elif m is None:
            row.update(ok=False, why="missing from this run")
        elif not math.isfinite(m.value):
            row.update(ok=False, why="degenerate (no value: NaN)")
        else:
            row.update(ok=abs(m.value - ref["value"]) <= row["tolerance"] + 1e-9, why="")
        row.setdefault("checked", True)
        rows.append(row)
    return rows


def check(study: str, measures: dict[str, Measure], *, params: dict, reference_dir: str | Path = REFERENCE_DIR,
          record_reference: bool | None = None) -> list[dict]:
    """Print one line per metric, ``name 0.79 vs reference 0.77 (tolerance 0.21): ok``, and raise
    `ReferenceMismatch` when any is outside (after printing all of them).

    With ``MEDVID_RECORD_REFERENCE=1`` (or `record_reference`) it writes the reference instead. A run
    whose parameters differ from the reference's is not checked: it prints which differ and returns []."""
    if record_reference if record_reference is not None else os.environ.get(RECORD_ENV) == "1":
        path = record(study, measures, params=params, reference_dir=reference_dir)
        print(f"reference recorded: {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
        return []
    path = Path(reference_dir) / f"{study}.json"
    if not path.exists():  # tests/test_reference.py makes sure every committed notebook has one
        print(f"not checked: no reference recorded for {study} ({path}); `make notebooks` records one")
        return []
    reference = json.loads(path.read_text())
    ours = _jsonable(params)
    differ = sorted(k for k in set(ours) | set(reference["parameters"]) if ours.get(k) != reference["parameters"].get(k))
    if differ:
        print(f"not checked: the reference ({path.name}) was recorded with other parameters ({', '.join(differ)})")
        return []
    rows = compare(measures, reference)
    for r in rows:
        ours_s = "-" if r["ours"] is None else f"{r['ours']:.2f}"
        verdict = r["why"] if not r["checked"] else "ok" if r["ok"] else f"OUTSIDE{': ' + r['why'] if r['why'] else ''}"
        print(f"{r['metric']} {ours_s} vs reference {r['reference']:.2f} (tolerance {r['tolerance']:.2f}): {verdict}")
    failed = [r["metric"] for r in rows if not r["ok"]]
    if failed:
        raise ReferenceMismatch(f"{study}: {len(failed)} of {len(rows)} trained results outside their tolerance: "
                                f"{', '.join(failed)}")
    checked = sum(r["checked"] for r in rows)
    print(f"{checked} of {checked} checked trained results within tolerance of the reference"
          + (f" ({len(rows) - checked} at chance, not checked)" if checked < len(rows) else ""))
    return rows
