"""Gather the ``metrics.json`` of a study's runs into one tidy table and one comparison plot.

``python -m medvid_core collect STUDY`` reads every ``outputs/STUDY/<run>/metrics.json`` and writes
``outputs/STUDY/collected_metrics.csv``: one row per number, with columns ``run, complete, table, row,
metric, value`` plus one ``param.<name>`` column for each parameter that differs between the runs
(from each run's params.yaml). A list of records such as ``"table2": [{"model": "tsn_r18",
"accuracy": 0.85}, ...]`` becomes rows with ``table=table2, row=model=tsn_r18, metric=accuracy``.
``collected_metrics.png`` has one panel per metric (e.g. ``table2 accuracy``; the ones that differ
first), a bar per run and row.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import yaml

from .params import ParamError, _show
from .runner import COMPLETE

#: metrics.json keys that are not results (the parameters are read from params.yaml instead).
SKIP_KEYS = ("parameters", "headline")
MAX_PANELS = 12


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def flatten(metrics: Any) -> Iterator[tuple[str, str, str, float]]:
    """``(table, row, metric, value)`` for every number in a metrics.json document."""

    def walk(obj: Any, path: list[str], row: str) -> Iterator[tuple[str, str, str, float]]:
        if isinstance(obj, dict):
            for key, value in obj.items():
                if _number(value):
                    yield "/".join(path), row, str(key), float(value)
                else:
                    yield from walk(value, path + [str(key)], row)
        elif isinstance(obj, list):
            for i, item in enumerate(obj):
                if _number(item):
                    yield "/".join(path[:-1]), row or f"[{i}]", path[-1] if path else "", float(item)
                elif isinstance(item, dict):
                    keys = [f"{k}={v}" for k, v in item.items() if isinstance(v, (str, bool)) or v is None]
                    label = ", ".join(keys) if keys else f"[{i}]"
                    yield from walk(item, path, ", ".join(filter(None, [row, label])))

    if isinstance(metrics, dict):
        metrics = {k: v for k, v in metrics.items() if k not in SKIP_KEYS}
    yield from walk(metrics, [], "")


def _run_params(run_dir: Path) -> dict:
    try:
        data = yaml.safe_load((run_dir / "params.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def collect_table(study: str, *, output_root: str | Path = "outputs") -> pd.DataFrame:
    """The tidy table of every run of `study` that wrote a metrics.json."""
    root = Path(output_root) / study
    runs = sorted(p for p in root.glob("*/metrics.json") if not p.parent.name.startswith("."))
    if not runs:
        raise ParamError(f"no {_show(root)}/<run>/metrics.json to collect")
    rows, params = [], {}
    for path in runs:
        run_dir = path.parent
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ParamError(f"{_show(path)} is not valid JSON: {exc}") from None
        params[run_dir.name] = _run_params(run_dir)
        complete = (run_dir / COMPLETE).is_file()
        rows += [{"run": run_dir.name, "complete": complete, "table": t, "row": r, "metric": m, "value": v}
                 for t, r, m, v in flatten(metrics)]
    table = pd.DataFrame(rows, columns=["run", "complete", "table", "row", "metric", "value"])
    names = sorted({k for p in params.values() for k in p})
    for name in names:
        shown = {run: json.dumps(p.get(name), sort_keys=True, default=str) for run, p in params.items()}
        if len(set(shown.values())) > 1:  # only what tells the runs apart
            table[f"param.{name}"] = table["run"].map(
                lambda run, name=name: json.dumps(params[run].get(name), default=str)
                if not isinstance(params[run].get(name), (int, float, str)) else params[run].get(name))
    return table


def plot_table(table: pd.DataFrame, path: Path, *, title: str = "") -> Path:
    """One panel per metric (``table/metric``, e.g. ``table2 accuracy``), a bar per run and row, so
    the same number is compared across runs (and models); metrics that differ come first, at most
    MAX_PANELS panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import finish  # after choosing the backend: plots imports pyplot

    frame = table.assign(panel=(table["table"] + " " + table["metric"]).str.strip(),
                         bar=table["run"] + (" | " + table["row"]).where(table["row"] != "", ""))
    groups = {k: g for k, g in frame.groupby("panel", sort=False)}
    order = sorted(groups, key=lambda k: (-(groups[k]["value"].nunique() > 1), -len(groups[k]), k))
    order = order[:MAX_PANELS]
    cols = min(3, len(order))
    rows = -(-len(order) // cols)
    most = max(len(groups[k]) for k in order)
    fig, axes = plt.subplots(rows, cols, figsize=(5.0 * cols, 0.5 + (0.3 * most + 0.9) * rows), squeeze=False)
    for ax, key in zip(axes.flat, order):
        g = groups[key]
        ax.barh(range(len(g)), g["value"].to_numpy(), color="tab:blue")
        ax.set_yticks(range(len(g)), [b if len(b) < 50 else b[:47] + "..." for b in g["bar"]], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(key, fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    for ax in list(axes.flat)[len(order):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    finish(fig, path, tight_bbox=False)
    plt.close(fig)
    return path


def collect(study: str, *, output_root: str | Path = "outputs", out_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``collected_metrics.csv`` and ``collected_metrics.png`` (default: into output_root/STUDY)."""
    table = collect_table(study, output_root=output_root)
    out = Path(out_dir) if out_dir else Path(output_root) / study
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "collected_metrics.csv"
    table.to_csv(csv_path, index=False)
    png = plot_table(table, out / "collected_metrics.png", title=f"{study}: {table['run'].nunique()} run(s)")
    return csv_path, png
