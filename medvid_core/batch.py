"""Batches of runs on Dask distributed: a grid of runs, validated first, each run its own process.

A grid is a YAML list of runs::

    - study: video4mri                       # required: notebooks/<study>.ipynb
      params: params/video4mri/ablation_k_laptop.yaml   # optional params file (relative to the cwd)
      overrides: {epochs: 3, models: [tsm_r18]}        # optional mapping, as -y
      name: quick                            # optional output folder; default: as single runs

Every run is validated (keys, types, files, duplicate folders) before any starts. Each run is a
``python -m medvid_core run ... --name NAME`` subprocess launched from a Dask task: papermill changes
the process-wide working directory, and Dask's Nanny workers are daemonic (no multiprocessing
children), so a subprocess is the one safe way. Runs go to a ``LocalCluster`` (one thread per worker,
``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` = cores // runs at once) or to an existing scheduler.
A run whose folder is complete (`medvid_core.runner.is_complete`) is skipped; the rest run, and a
failed run does not stop the others.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .params import ParamError, _show, read_yaml_file
from .paths import REPO_ROOT
from .runner import FAILED, RunSpec, is_complete, prepare, read_marker

GRID_KEYS = ("study", "params", "overrides", "name")
#: Threads per run are passed to every run's process (torch reads OMP_NUM_THREADS at import).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cores() -> int:
    """CPU cores this process may use (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# --------------------------------------------------------------------------- grid


def load_grid(path: str | Path, *, notebook_dir: str | Path = "notebooks") -> list[RunSpec]:
    """Read and validate every run of a grid file; the first problem is one ParamError line
    naming the grid file and the run (its 1-based position and study), and nothing runs."""
    path = Path(path)
    shown = _show(path)
    entries = read_yaml_file(path, kind="grid file")
    if not isinstance(entries, list) or not entries:
        raise ParamError(f"grid file {shown} must be a non-empty YAML list of runs (- study: NAME ...)")
    specs = []
    for i, entry in enumerate(entries, 1):
        study = entry.get("study") if isinstance(entry, dict) else None
        where = f"grid {shown} run {i}" + (f" ({study})" if isinstance(study, str) else "")
        try:
            specs.append(_entry_spec(entry, notebook_dir))
        except ParamError as exc:
            raise ParamError(f"{where}: {exc}") from None
    _check_unique(specs, shown)
    return specs


def _entry_spec(entry: Any, notebook_dir: str | Path) -> RunSpec:
    if not isinstance(entry, dict):
        raise ParamError(f"must be a mapping with keys {', '.join(GRID_KEYS)}, got {type(entry).__name__}")
    unknown = [k for k in entry if k not in GRID_KEYS]
    if unknown:
        raise ParamError(f"unknown key '{unknown[0]}' (allowed: {', '.join(GRID_KEYS)})")
    study, params_file = entry.get("study"), entry.get("params")
    overrides, name = entry.get("overrides"), entry.get("name")
    if not isinstance(study, str) or not study:
        raise ParamError("'study' is required and must be a notebook name")
    if params_file is not None and not isinstance(params_file, str):
        raise ParamError(f"'params' must be a file path, got {type(params_file).__name__}")
    if overrides is not None and not isinstance(overrides, dict):
        raise ParamError(f"'overrides' must be a mapping of name: value, got {type(overrides).__name__}")
    if name is not None and not isinstance(name, str):
        raise ParamError(f"'name' must be a string, got {type(name).__name__}")
    return prepare(study, params_file=params_file, overrides=overrides, notebook_dir=notebook_dir, name=name)


def _check_unique(specs: list[RunSpec], shown: str) -> None:
    seen: dict[tuple[str, str], int] = {}
    for i, spec in enumerate(specs, 1):
        key = (spec.study, spec.name)
        if key in seen:
            raise ParamError(f"grid {shown} run {i} ({spec.study}): output folder "
                             f"{spec.study}/{spec.name} is also run {seen[key]}'s; give one a 'name'")
        seen[key] = i


def default_grid(studies: list[str] | None = None, *, notebook_dir: str | Path = "notebooks") -> list[RunSpec]:
    """Every study's default run (all notebooks in `notebook_dir` when `studies` is empty)."""
    if not studies:
        studies = sorted(p.stem for p in Path(notebook_dir).glob("*.ipynb"))
        if not studies:
            raise ParamError(f"no notebooks in {_show(Path(notebook_dir))}/")
    return [prepare(s, notebook_dir=notebook_dir) for s in studies]


# ---------------------------------------------------------------------- one run (task)


def execute_run(args: dict, threads: int | None, log_path: str) -> dict:
    """The Dask task: ``python -m medvid_core run`` in a subprocess, its output to `log_path`.

    Returns ``{"rc", "wall_s", "error"}`` where ``error`` is the run's one-line ``error:`` message
    (for a failed notebook: the failing cell). Runs in the worker: `sys.executable` and the repository
    are the worker's own.
    """
    cmd = [sys.executable, "-m", "medvid_core", "run", args["study"], "--name", args["name"],
           "--output-root", args["output_root"], "--notebook-dir", args["notebook_dir"]]
    if args.get("params_file"):
        cmd += ["--params", args["params_file"]]
    if args.get("overrides"):
        cmd += ["-y", json.dumps(args["overrides"])]  # JSON is YAML
    env = dict(os.environ)
    if threads:
        env.update({var: str(threads) for var in THREAD_VARS})
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT).returncode
    wall = time.monotonic() - t0
    error = ""
    if rc != 0:
        lines = Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines()
        errors = [ln for ln in lines if ln.startswith("error: ")]
        error = errors[-1][len("error: "):] if errors else (lines[-1] if lines else f"exit {rc}")
    return {"rc": rc, "wall_s": wall, "error": error}


# ---------------------------------------------------------------------------- summary


def headline(out_dir: Path) -> str:
    """The study's headline metric from ``metrics.json``: its ``"headline"`` entry (a number or a
    ``{label: number}`` mapping) when the notebook writes one, else its first top-level number;
    empty when there is no metrics.json or no number."""
    try:
        metrics = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    if not isinstance(metrics, dict):
        return ""
    head = metrics.get("headline")
    if isinstance(head, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in head.items())
    if _is_number(head):
        return f"headline={_fmt(head)}"
    for key, value in metrics.items():
        if _is_number(value):
            return f"{key}={_fmt(value)}"
    return ""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass
class Row:
    run: str
    status: str  # ok | failed | skipped (complete)
    wall_s: float | None = None
    metric: str = ""
    error: str = ""


def print_table(rows: list[Row], *, file=None) -> None:
    file = file or sys.stdout
    table = [("run", "status", "wall time", "headline metric", "error")]
    for r in rows:
        wall = "" if r.wall_s is None else f"{r.wall_s:.1f}s"
        table.append((r.run, r.status, wall, r.metric, r.error))
    widths = [max(len(t[i]) for t in table) for i in range(4)]
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t[:4], widths)) + "  " + t[4], file=file)


def write_csv(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["run", "status", "wall_s", "headline", "error"])
        for r in rows:
            writer.writerow([r.run, r.status, "" if r.wall_s is None else round(r.wall_s, 1), r.metric, r.error])


# ------------------------------------------------------------------------------ batch


def _restore_environ(saved: dict[str, str]) -> None:
    """Put back the environment variables distributed's Nanny changes in *this* process.

    Before spawning a worker the Nanny writes its `pre-spawn-environ` (OMP_NUM_THREADS=1,
    MKL_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1, MALLOC_TRIM_THRESHOLD_) into the parent's os.environ,
    and leaves it there: every process started afterwards from here (a Jupyter kernel, a papermill
    run, nbval's kernels in the same pytest session) would then train on one thread, slower and
    with other floating-point sums than the same notebook elsewhere.
    """
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    os.environ.update(saved)


def _client(scheduler: str | None, workers: int):
    """A Dask client: to `scheduler`, or to a fresh LocalCluster of `workers` one-thread workers."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler, timeout="30s"), None
    saved = dict(os.environ)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=":0", memory_limit=0)  # any free port
    _restore_environ(saved)
    return Client(cluster), cluster


def _threads_per_run(client, local_cores: int | None) -> dict[str, int]:
    """torch threads per run on each host: the host's cores // the runs it takes at once."""
    info = client.scheduler_info()["workers"]
    if local_cores is not None:
        slots = sum(w["nthreads"] for w in info.values())
        return {"*": max(1, local_cores // max(1, slots))}
    host_cores = client.run(cores)  # {worker address: its cores}
    per_host: dict[str, list] = {}
    for addr, w in info.items():
        per_host.setdefault(w["host"], []).append(addr)
    threads = {}
    for host, addrs in per_host.items():
        slots = sum(info[a]["nthreads"] for a in addrs)
        threads[host] = max(1, min(host_cores.get(a, 1) for a in addrs) // max(1, slots))
    return threads


def _task(args: dict, threads: dict[str, int], log_path: str) -> dict:
    """Worker side: pick this host's threads-per-run, then run."""
    from dask.distributed import get_worker

    n = threads.get("*")
    if n is None:
        host = get_worker().address.split("://")[-1].rsplit(":", 1)[0]
        n = threads.get(host)
    return execute_run(args, n, log_path)


def batch(
    specs: list[RunSpec],
    *,
    output_root: str | Path = "outputs",
    notebook_dir: str | Path = "notebooks",
    scheduler: str | None = None,
    workers: int | None = None,
    force: bool = False,
    summary: str | Path | None = None,
) -> int:
    """Run `specs` on Dask; return 0 when every run is ok or already complete, 1 when one failed.

    Complete runs are skipped (``force`` reruns them). Prints a progress bar and the summary table,
    and writes the table as CSV to `summary` (default ``output_root/batch-summary.csv``).
    """
    from tqdm import tqdm  # plain tqdm: tqdm.auto does not advance under papermill/terminals alike

    output_root = Path(output_root).resolve()
    notebook_dir = Path(notebook_dir).resolve()
    rows = {f"{s.study}/{s.name}": Row(f"{s.study}/{s.name}", "pending") for s in specs}
    todo = []
    for spec in specs:
        label = f"{spec.study}/{spec.name}"
        if not force and is_complete(spec, output_root):
            out = spec.out_dir(output_root)
            rows[label] = Row(label, "skipped", (read_marker(out) or {}).get("wall_s"), headline(out),
                              "complete already")
        else:
            todo.append(spec)
    start = time.monotonic()
    bar = tqdm(total=len(specs), desc="runs", unit="run", file=sys.stderr, dynamic_ncols=True)
    bar.update(len(specs) - len(todo))
    if todo:
        n_workers = workers or min(len(todo), cores())
        saved_environ = dict(os.environ)
        client, cluster = _client(scheduler, n_workers)
        try:
            threads = _threads_per_run(client, None if scheduler else cores())
            where = scheduler or f"LocalCluster({n_workers} workers x 1 thread)"
            where += f", dashboard {client.dashboard_link}" if client.dashboard_link else ""
            tqdm.write(f"batch: {len(todo)} run(s) to do, {len(specs) - len(todo)} complete; "
                       f"on {where}, torch threads per run: {threads}", file=sys.stderr)
            futures = {}
            for spec in todo:
                args = {"study": spec.study, "name": spec.name, "output_root": str(output_root),
                        "notebook_dir": str(notebook_dir),
                        "params_file": str(spec.params_file.resolve()) if spec.params_file else None,
                        "overrides": spec.overrides}
                log = output_root / spec.study / ".logs" / f"{spec.name}.log"
                fut = client.submit(_task, args, threads, str(log), pure=False,
                                    key=f"run-{spec.study}/{spec.name}-{uuid.uuid4().hex[:8]}")
                futures[fut] = spec
            from dask.distributed import as_completed

            for fut in as_completed(futures):
                spec = futures[fut]
                label, out = f"{spec.study}/{spec.name}", spec.out_dir(output_root)
                try:
                    res = fut.result()
                except Exception as exc:  # the task itself died (worker lost too often, ...)
                    res = {"rc": -1, "wall_s": None, "error": f"task failed: {type(exc).__name__}: {exc}"}
                ok = res["rc"] == 0 and is_complete(spec, output_root)
                error = res["error"] if res["rc"] != 0 else ("" if ok else "finished without the marker")
                if not ok and not error and (out / FAILED).exists():
                    error = (out / FAILED).read_text(encoding="utf-8").strip()
                rows[label] = Row(label, "ok" if ok else "failed", res["wall_s"], headline(out) if ok else "", error)
                bar.update(1)
                tqdm.write(f"batch: {label} {rows[label].status} in {res['wall_s'] or 0:.1f}s"
                           + (f": {error}" if error else ""), file=sys.stderr)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
            _restore_environ(saved_environ)  # a worker restarted mid-batch writes them again
    bar.close()
    table = list(rows.values())
    print_table(table)
    summary = Path(summary) if summary else output_root / "batch-summary.csv"
    write_csv(table, summary)
    n_failed = sum(r.status == "failed" for r in table)
    print(f"batch: {len(table)} run(s): {sum(r.status == 'ok' for r in table)} ok, "
          f"{sum(r.status == 'skipped' for r in table)} skipped (complete), {n_failed} failed "
          f"in {time.monotonic() - start:.1f}s; summary {_show(summary)}", flush=True)
    return 1 if n_failed else 0
