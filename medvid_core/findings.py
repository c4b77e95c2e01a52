"""A study's headline claims, each with the paper's figure, ours, and whether it holds by a stated rule.

Every notebook ends with a findings table built here from its own numbers, and writes it to
``metrics.json`` under ``"findings"``: a list of records ``claim, paper, ours, spread, holds, rule``.
`markdown` turns the table into the sentences the notebook shows, so the words cannot drift from the
numbers. Over several runs (seeds), `summarize` gives one row per claim: the mean, the range, and in how
many runs it held (``python -m medvid_core findings``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

import pandas as pd

from .runner import COMPLETE


def finding(claim: str, *, paper: str, ours: float, holds: bool | None, rule: str, spread: float | None = None,
            unit: str = "") -> dict:
    """One record. `ours` is one number (a difference, a ratio, a score); `holds` is `rule` applied to it
    (None when the number is undefined, e.g. NaN: reported, not judged); `spread` is how much `ours` moves
    between seeds where one run measured that, else None."""
    ours = float(ours)
    if not math.isfinite(ours):
        holds = None
    return {"claim": claim, "paper": paper, "ours": float(f"{ours:.4g}") if math.isfinite(ours) else None,
            "unit": unit, "spread": spread, "holds": None if holds is None else bool(holds), "rule": rule}


def _show(value: float | None, unit: str) -> str:
    """+0.21 AUC, 3.00x, 2.3e-07 logit (a tiny number keeps its size), or undefined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "undefined"
    if unit == "x":
        return f"{value:.2f}x"
    number = f"{value:+.1e}" if 0 < abs(value) < 0.005 else f"{value:+.2f}"
    return f"{number} {unit}" if unit else number


def table(findings: list[dict]) -> pd.DataFrame:
    """The findings as a table for the notebook: claim | paper | ours | holds | rule."""
    df = pd.DataFrame(findings, columns=["claim", "paper", "ours", "unit", "spread", "holds", "rule"])
    df["ours"] = [_show(o, u) for o, u in zip(df.ours, df.unit)]
    df["holds"] = df["holds"].map({True: "yes", False: "no", None: "undefined"})
    return df[["claim", "paper", "ours", "holds", "rule"]]


def markdown(findings: list[dict], *, longer: str = "") -> str:
    """Sentences from the numbers: what holds in this run, what does not, and (`longer`) which
    configuration shows more."""
    rows = table(findings)
    held = rows[rows.holds == "yes"]
    not_held = rows[rows.holds != "yes"]
    parts = []
    if len(held):
        parts.append("**Shown by this run:** " + "; ".join(f"{r.claim} ({r.ours}; paper: {r.paper})"
                                                           for r in held.itertuples()) + ".")
    if len(not_held):
        parts.append("**Not shown by this run:** " + "; ".join(f"{r.claim} ({r.ours}, rule: {r.rule}; paper: {r.paper})"
                                                               for r in not_held.itertuples()) + ".")
        if longer:
            parts.append(longer)
    return "\n\n".join(parts)


def read_runs(paths: Iterable[str | Path]) -> list[dict]:
    """The findings of every complete run under `paths` (run folders, or folders holding them up to two
    levels down, such as ``outputs``): one record per (run, claim), with the study and the run folder."""
    records = []
    for root in map(Path, paths):
        for marker in sorted({*root.glob(COMPLETE), *root.glob(f"*/{COMPLETE}"), *root.glob(f"*/*/{COMPLETE}")}):
            run = marker.parent
            metrics = run / "metrics.json"
            if not metrics.exists():
                continue
            study = json.loads(marker.read_text())["study"]
            for f in json.loads(metrics.read_text()).get("findings", []):
                records.append({"study": study, "run": str(run), **f})
    return records


def summarize(records: list[dict]) -> pd.DataFrame:
    """One row per (study, claim) over runs: paper | mean | min to max | holds in k of n."""
    if not records:
        return pd.DataFrame(columns=["study", "claim", "paper", "mean", "min to max", "holds", "runs"])
    df = pd.DataFrame(records)
    rows = []
    for (study, claim), g in df.groupby(["study", "claim"], sort=False):
        ours = g["ours"].dropna().astype(float)
        held = int((g["holds"] == True).sum())  # noqa: E712  (None counts as not held)
        rows.append({"study": study, "claim": claim, "paper": g["paper"].iloc[0],
                     "mean": f"{ours.mean():+.2f}" if len(ours) else None,
                     "min to max": f"{ours.min():+.2f} to {ours.max():+.2f}" if len(ours) else "undefined",
                     "holds": f"{held} of {len(g)}", "runs": len(g)})
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-style table of `df` (pandas' own needs the tabulate package, which the kit does not carry)."""
    cells = [[str(c) for c in df.columns]] + [["" if v is None else str(v) for v in row] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join([lines[0], "|" + "---|" * len(df.columns), *lines[1:]])
