"""Tests for medvid_core.batch (grids on Dask), the runner's staging folder + atomic move, and
medvid_core.collect.

The grid, completeness and move tests are pure Python (milliseconds; papermill is replaced where a
kill is simulated). Three tests start real processes: a LocalCluster batch of two tiny runs (one
failing on purpose), a batch killed with SIGKILL and rerun, and a seeded notebook run twice.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from medvid_core import batch as batch_mod
from medvid_core.batch import batch, headline, load_grid
from medvid_core.cli import main
from medvid_core.collect import collect, flatten
from medvid_core.params import ParamError
from medvid_core.paths import REPO_ROOT
from medvid_core.runner import COMPLETE, FAILED, INCOMPLETE_DIR, is_complete, move_into_place, prepare, run

WORK_PARAMS = """\
x = 1  # the number to double
gate = ""  # wait until this file exists ("" = do not wait)
output_dir = ""
"""
WORK_CODE = """\
import json, os, pathlib, time
while gate and not pathlib.Path(gate).exists():
    time.sleep(0.2)
metrics = {"x2": x * 2, "omp_threads": os.environ.get("OMP_NUM_THREADS")}  # what the batch gave this run
pathlib.Path(output_dir, "metrics.json").write_text(json.dumps(metrics))
"""
SEEDED_CODE = """\
import json, pathlib
import numpy as np
rng = np.random.default_rng(seed)
X = rng.normal(size=(64, 5)); y = X @ np.arange(5.0) + 0.1 * rng.normal(size=64)
w = np.zeros(5)
for _ in range(50):  # gradient descent on the squared error
    w -= 0.1 * 2 * X.T @ (X @ w - y) / len(y)
loss = float(((X @ w - y) ** 2).mean())
pathlib.Path(output_dir, "metrics.json").write_text(json.dumps({"loss": loss, "w": w.tolist()}, indent=1))
"""


def write_notebook(path: Path, params: str, *cells: str) -> Path:
    nb = new_notebook(cells=[new_code_cell(params, metadata={"tags": ["parameters"]})]
                      + [new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def nbdir(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    write_notebook(d / "work.ipynb", WORK_PARAMS, WORK_CODE)
    write_notebook(d / "boom.ipynb", 'output_dir = ""', "print('fine so far')", "raise ValueError('kaput')")
    return d


def write_grid(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def fake_finished(spec, root: Path, metrics: dict | None = None) -> Path:
    """A folder as `run` leaves it after success: outputs, then the marker."""
    out = spec.out_dir(root)
    out.mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps(metrics or {"x2": 2 * spec.params["x"]}))
    (out / COMPLETE).write_text(json.dumps({"digest": spec.digest, "wall_s": 1.5}))
    return out


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- grid validation


def test_grid_resolves_names_files_and_overrides(nbdir, tmp_path):
    (tmp_path / "five.yaml").write_text("x: 5\n")
    grid = write_grid(tmp_path / "grid.yaml", f"""\
- study: work
- study: work
  params: {tmp_path / "five.yaml"}
- study: work
  overrides: {{x: 3}}
  name: three
- study: boom
""")
    specs = load_grid(grid, notebook_dir=nbdir)
    assert [(s.study, s.name) for s in specs] == [("work", "default"), ("work", "five"), ("work", "three"),
                                                  ("boom", "default")]
    assert [s.params.get("x") for s in specs] == [1, 5, 3, None]
    assert len({s.digest for s in specs}) == 4
    assert prepare("work", overrides={"x": 3}, notebook_dir=nbdir, name="three").digest == specs[2].digest


@pytest.mark.parametrize("text, expected", [
    ("{study: work}", "must be a non-empty YAML list of runs"),
    ("- [work]", "run 1: must be a mapping with keys study, params, overrides, name, got list"),
    ("- study: work\n- {study: work, epochs: 3}", "run 2 (work): unknown key 'epochs' (allowed: study, params,"),
    ("- {params: a.yaml}", "run 1: 'study' is required"),
    ("- study: work\n- study: nope", "run 2 (nope): no notebook"),
    ("- {study: work, overrides: {y: 1}}", "run 1 (work): unknown parameter 'y' for work (known: x, gate)"),
    ("- {study: work, overrides: {x: two}}", "run 1 (work): parameter 'x' must be int, got str ('two') from -p"),
    ("- {study: work, overrides: [x, 1]}", "run 1 (work): 'overrides' must be a mapping"),
    ("- {study: work, params: missing.yaml}", "run 1 (work): params file missing.yaml not found"),
    ("- {study: work, name: a/b}", "run 1 (work): run name 'a/b' must be a plain folder name"),
    ("- {study: work, name: x}\n- {study: work, overrides: {x: 2}, name: x}",
     "run 2 (work): output folder work/x is also run 1's; give one a 'name'"),
    ("- {study: work\n", "is not valid YAML (line 2)"),
])
def test_a_bad_grid_entry_is_one_line_naming_the_run(nbdir, tmp_path, monkeypatch, text, expected):
    monkeypatch.chdir(tmp_path)
    grid = write_grid(tmp_path / "grid.yaml", text)
    with pytest.raises(ParamError) as err:
        load_grid(grid, notebook_dir=nbdir)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("grid ")


def test_cli_bad_grid_exits_2_and_starts_nothing(nbdir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(batch_mod, "_client", lambda *a: pytest.fail("a cluster was started"))
    grid = write_grid(tmp_path / "grid.yaml", "- study: work\n- {study: work, overrides: {x: 2.5}}\n")
    rc = main(["batch", str(grid), "--notebook-dir", str(nbdir), "--output-root", str(tmp_path / "out")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run 2 (work): parameter 'x' must be int, got float (2.5)" in err
    assert not (tmp_path / "out").exists()
    assert main(["batch", str(tmp_path / "nope.yaml"), "--notebook-dir", str(nbdir)]) == 2
    assert "grid file" in capsys.readouterr().err


# ------------------------------------------------------------------------ complete / incomplete


def test_complete_means_the_marker_with_this_runs_digest(nbdir, tmp_path):
    spec = prepare("work", overrides={"x": 3}, notebook_dir=nbdir)
    out = spec.out_dir(tmp_path)
    assert not is_complete(spec, tmp_path)  # nothing there
    out.mkdir(parents=True)
    (out / "metrics.json").write_text("{}")
    assert not is_complete(spec, tmp_path)  # outputs but no marker: a killed or failed run
    (out / COMPLETE).write_text('{"digest": ')
    assert not is_complete(spec, tmp_path)  # half-written marker
    (out / COMPLETE).write_text(json.dumps({"digest": spec.digest}))
    assert is_complete(spec, tmp_path)
    # same folder name, other parameters: stale, rerun
    assert not is_complete(prepare("work", overrides={"x": 4}, notebook_dir=nbdir, name=spec.name), tmp_path)
    # the notebook's code changed: rerun
    write_notebook(nbdir / "work.ipynb", WORK_PARAMS, WORK_CODE + "\nprint('edited')")
    assert not is_complete(prepare("work", overrides={"x": 3}, notebook_dir=nbdir), tmp_path)


def test_batch_skips_complete_runs_without_a_cluster(nbdir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(batch_mod, "_client", lambda *a: pytest.fail("a cluster was started"))
    specs = [prepare("work", notebook_dir=nbdir), prepare("work", overrides={"x": 4}, notebook_dir=nbdir)]
    for spec in specs:
        fake_finished(spec, tmp_path)
    assert batch(specs, output_root=tmp_path, notebook_dir=nbdir) == 0
    out = capsys.readouterr().out
    assert ["work/default+x=4", "skipped", "1.5s", "x2=8", "complete", "already"] in [ln.split() for ln in out.splitlines()]
    rows = list(csv.DictReader(open(tmp_path / "batch-summary.csv")))
    assert [(r["run"], r["status"], r["headline"]) for r in rows] == [
        ("work/default", "skipped", "x2=2"), ("work/default+x=4", "skipped", "x2=8")]


def test_headline_metric():
    assert headline(Path("/nonexistent")) == ""


def test_headline_metric_from_metrics_json(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"table": [{"acc": 0.5}], "n": 3, "auc": 0.9}))
    assert headline(tmp_path) == "n=3"  # the first top-level number
    (tmp_path / "metrics.json").write_text(json.dumps({"n": 3, "headline": {"tsm_r18 accuracy": 0.8512}}))
    assert headline(tmp_path) == "tsm_r18 accuracy=0.8512"  # the study's own choice wins


# ------------------------------------------------------------------------------ atomic move


def test_move_into_place_replaces_the_folder_as_a_whole(tmp_path):
    final, staging = tmp_path / "s" / "run", tmp_path / "s" / INCOMPLETE_DIR / "run.1"
    staging.mkdir(parents=True)
    (staging / "new.txt").write_text("new")
    move_into_place(staging, final)
    assert sorted(os.listdir(final)) == ["new.txt"] and not staging.exists()
    staging.mkdir()
    (staging / "newer.txt").write_text("newer")
    move_into_place(staging, final)
    assert sorted(os.listdir(final)) == ["newer.txt"]  # nothing of the old run left
    assert os.listdir(staging.parent) == []


def test_a_run_killed_mid_way_never_touches_the_finished_folder(nbdir, tmp_path, monkeypatch):
    import papermill

    spec = prepare("work", notebook_dir=nbdir)
    final = fake_finished(spec, tmp_path, {"x2": "old"})
    before = snapshot(final)

    def killed(notebook, output, *, parameters, **kw):  # writes half its outputs, then dies
        Path(parameters["output_dir"], "metrics.json").write_text('{"x2": ')
        raise KeyboardInterrupt  # a BaseException, as a kill would be: nothing catches it

    monkeypatch.setattr(papermill, "execute_notebook", killed)
    with pytest.raises(KeyboardInterrupt):
        run("work", output_root=tmp_path, notebook_dir=nbdir)
    assert snapshot(final) == before and is_complete(spec, tmp_path)
    leftovers = list((final.parent / INCOMPLETE_DIR).iterdir())
    assert [p.name for p in leftovers] == [f"default.{os.getpid()}"]  # the partial run stays aside

    def finishes(notebook, output, *, parameters, **kw):
        Path(parameters["output_dir"], "metrics.json").write_text('{"x2": 2}')
        Path(output).write_text("{}")

    monkeypatch.setattr(papermill, "execute_notebook", finishes)
    assert run("work", output_root=tmp_path, notebook_dir=nbdir) == final
    assert (final / "metrics.json").read_text() == '{"x2": 2}' and is_complete(spec, tmp_path)
    assert sorted(os.listdir(final)) == [COMPLETE, "metrics.json", "params.yaml", "work.ipynb"]
    assert list((final.parent / INCOMPLETE_DIR).iterdir()) == []  # the stale attempt was cleared


# ------------------------------------------------------------------------------- collect


def test_collect_makes_a_tidy_table_and_a_plot(tmp_path):
    for name, acc, epochs in [("default", 0.8, 12), ("default+epochs=3", 0.6, 3)]:
        out = tmp_path / "study" / name
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps({
            "n_test": 36, "table2": [{"model": "tsn_r18", "accuracy": acc, "ci": 0.1},
                                     {"model": "tsm_r18", "accuracy": acc + 0.1, "ci": 0.1}],
            "parameters": {"epochs": epochs}}))
        (out / "params.yaml").write_text(f"# study: study\nepochs: {epochs}\nlr: 0.001\n")
    (tmp_path / "study" / ".incomplete" / "x.1").mkdir(parents=True)  # never collected
    table_path, png = collect("study", output_root=tmp_path)
    table = pd.read_csv(table_path, keep_default_na=False)
    assert list(table.columns) == ["run", "complete", "table", "row", "metric", "value", "param.epochs"]
    assert len(table) == 2 * 5
    acc = table[(table.table == "table2") & (table.row == "model=tsm_r18") & (table.metric == "accuracy")]
    assert acc.set_index("run")["value"].round(3).to_dict() == {"default": 0.9, "default+epochs=3": 0.7}
    assert set(table["param.epochs"]) == {12, 3}
    assert png.stat().st_size > 5000
    assert list(flatten({"a": {"b": 1, "c": [1, 2]}})) == [("a", "", "b", 1.0), ("a", "[0]", "c", 1.0),
                                                         ("a", "[1]", "c", 2.0)]
    with pytest.raises(ParamError, match="no .*metrics.json to collect"):
        collect("other", output_root=tmp_path)


# ------------------------------------------------------------------------- real processes


def test_local_cluster_batch_two_runs_one_failing(nbdir, tmp_path, capsys):
    grid = write_grid(tmp_path / "grid.yaml", "- {study: work, overrides: {x: 21}}\n- study: boom\n")
    out_root = tmp_path / "out"
    environ_before = dict(os.environ)
    rc = main(["batch", str(grid), "--workers", "2", "--notebook-dir", str(nbdir), "--output-root", str(out_root)])
    assert rc == 1
    captured = capsys.readouterr()
    threads = max(1, batch_mod.cores() // 2)  # 2 runs at once share the cores
    assert "LocalCluster(2 workers x 1 thread)" in captured.err
    assert f"torch threads per run: {{'*': {threads}}}" in captured.err
    rows = {r["run"]: r for r in csv.DictReader(open(out_root / "batch-summary.csv"))}
    assert rows["work/default+x=21"]["status"] == "ok" and rows["work/default+x=21"]["headline"] == "x2=42"
    assert rows["boom/default"]["status"] == "failed"
    assert "boom.ipynb failed in cell 4 (exec count 4): ValueError: kaput" in rows["boom/default"]["error"]
    assert ["boom/default", "failed"] in [ln.split()[:2] for ln in captured.out.splitlines()]
    ok, failed = out_root / "work" / "default+x=21", out_root / "boom" / "default"
    assert (ok / COMPLETE).is_file() and json.loads((ok / "metrics.json").read_text()) == {
        "x2": 42, "omp_threads": str(threads)}  # the kernel saw the batch's thread count
    assert not (failed / COMPLETE).exists() and "ValueError: kaput" in (failed / FAILED).read_text()
    assert "fine so far" in (out_root / "boom" / ".logs" / "default.log").read_text()  # the run's own log
    # distributed's Nanny writes OMP_NUM_THREADS=1 (and more) into this process; the batch puts them back,
    # or every kernel started later here (nbval's, in CI) would train on one thread with other numbers
    assert dict(os.environ) == environ_before


def test_a_study_run_twice_gives_byte_identical_metrics(tmp_path):
    write_notebook(tmp_path / "seeded.ipynb", 'seed = 0  # random seed\noutput_dir = ""', SEEDED_CODE)
    first = run("seeded", output_root=tmp_path / "a", notebook_dir=tmp_path)
    second = run("seeded", output_root=tmp_path / "b", notebook_dir=tmp_path)
    assert (first / "metrics.json").read_bytes() == (second / "metrics.json").read_bytes()
    assert json.loads((first / "metrics.json").read_text())["loss"] < 0.1  # it did learn (starts at ~30)


def _wait_for(condition, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_killed_batch_rerun_keeps_finished_runs_and_completes_the_rest(nbdir, tmp_path, capsys):
    gate = tmp_path / "gate"
    grid = write_grid(tmp_path / "grid.yaml", f"""\
- {{study: work, name: fast}}
- {{study: work, name: slow1, overrides: {{gate: "{gate}"}}}}
- {{study: work, name: slow2, overrides: {{gate: "{gate}"}}}}
""")
    out_root = tmp_path / "out"
    argv = ["batch", str(grid), "--workers", "2", "--notebook-dir", str(nbdir), "--output-root", str(out_root)]
    proc = subprocess.Popen([sys.executable, "-m", "medvid_core", *argv], cwd=REPO_ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fast, slow1 = out_root / "work" / "fast", out_root / "work" / "slow1"
    try:
        _wait_for(lambda: (fast / COMPLETE).exists(), 240, "the fast run to finish")
        _wait_for(lambda: any((out_root / "work" / INCOMPLETE_DIR).glob("slow*.*/params.yaml")), 240,
                  "a slow run to start")
        tree = psutil.Process(proc.pid).children(recursive=True)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the batch process, its Dask workers and their runs
        proc.wait()
    # kernels run in sessions of their own; ipykernel's parent poller ends them once their parent is gone
    gone, alive = psutil.wait_procs(tree, timeout=20)
    for p in alive:  # do not leave them behind even if the assertion below fails
        p.kill()
    assert not alive, f"processes left after kill -9: {[p.pid for p in alive]}"
    assert not slow1.exists() or not (slow1 / COMPLETE).exists()
    before = snapshot(fast)

    gate.write_text("open")
    assert main(argv) == 0
    assert ["work/fast", "skipped"] in [ln.split()[:2] for ln in capsys.readouterr().out.splitlines()]
    assert snapshot(fast) == before  # untouched, byte for byte (and not even rewritten)
    for name in ("slow1", "slow2"):
        assert json.loads((out_root / "work" / name / "metrics.json").read_text())["x2"] == 2
        assert (out_root / "work" / name / COMPLETE).is_file()
    assert list((out_root / "work" / INCOMPLETE_DIR).iterdir()) == []


# ------------------------------------------------------------------------- shipped grids, threads


def test_shipped_grids_validate():
    grids = sorted((REPO_ROOT / "params").glob("grid*.yaml")) + [REPO_ROOT / "params" / "findings.yaml"]
    assert grids
    for grid in grids:
        assert load_grid(grid, notebook_dir=REPO_ROOT / "notebooks")


class _FakeClient:
    """scheduler_info/run as a two-host cluster answers them."""

    def scheduler_info(self):
        return {"workers": {"tcp://10.0.0.1:1": {"host": "10.0.0.1", "nthreads": 1},
                            "tcp://10.0.0.1:2": {"host": "10.0.0.1", "nthreads": 1},
                            "tcp://10.0.0.2:1": {"host": "10.0.0.2", "nthreads": 4}}}

    def run(self, fn):
        return {"tcp://10.0.0.1:1": 8, "tcp://10.0.0.1:2": 8, "tcp://10.0.0.2:1": 16}


def test_torch_threads_per_run_never_oversubscribe_a_host():
    assert batch_mod._threads_per_run(_FakeClient(), None) == {"10.0.0.1": 4, "10.0.0.2": 4}
    assert batch_mod._threads_per_run(_FakeClient(), 2) == {"*": 1}  # LocalCluster: 2 cores, 6 slots
