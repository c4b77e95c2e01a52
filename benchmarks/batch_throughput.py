"""Batch throughput: N smoke-sized runs one after another vs on a Dask LocalCluster.

Each run is a small notebook (written to a temporary folder) that trains a tiny MLP on random data
with torch for a fixed number of steps, so a run is what a smoke-sized study run costs: a kernel
start, ``import torch``, a little compute, metrics.json. Both modes launch the very same
``python -m medvid_core run`` subprocess (`medvid_core.batch.execute_run`):

- serial: one run after another, each with all the cores for torch (OMP/MKL threads = cores);
- LocalCluster: `medvid_core.batch.batch` with ``--workers`` one-thread workers (default: the
  cores) and threads per run = cores // workers; its time includes starting and closing the cluster.

    .venv/bin/python benchmarks/batch_throughput.py [--runs 8] [--workers N] [--steps 300]

Prints the core count, the load average before and after (other processes on a shared machine
distort both figures), the two wall times and their ratio.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medvid_core.batch import batch, cores, execute_run  # noqa: E402
from medvid_core.runner import is_complete, prepare  # noqa: E402
from medvid_core.timing import timed  # noqa: E402

PARAMS = """\
seed = 0  # torch seed
steps = 300  # optimizer steps
output_dir = ""
"""
WORK = """\
import json, pathlib, torch
torch.manual_seed(seed)
x, y = torch.randn(512, 64), torch.randint(0, 4, (512,))
net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 4))
opt = torch.optim.SGD(net.parameters(), lr=0.1)
for _ in range(steps):
    opt.zero_grad(); loss = torch.nn.functional.cross_entropy(net(x), y); loss.backward(); opt.step()
pathlib.Path(output_dir, "metrics.json").write_text(json.dumps({"loss": loss.item(), "threads": torch.get_num_threads()}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--workers", type=int, default=None, help="LocalCluster workers (default: the cores)")
    ap.add_argument("--steps", type=int, default=300, help="optimizer steps per run")
    args = ap.parse_args()
    n_cores = cores()
    workers = args.workers or n_cores
    with tempfile.TemporaryDirectory(prefix="medvid-bench-") as tmp:
        tmp = Path(tmp)
        nb = new_notebook(cells=[new_code_cell(PARAMS, metadata={"tags": ["parameters"]}), new_code_cell(WORK)])
        nbformat.write(nb, tmp / "smoke.ipynb")
        specs = [prepare("smoke", overrides={"seed": i, "steps": args.steps}, notebook_dir=tmp)
                 for i in range(args.runs)]
        load0 = os.getloadavg()
        print(f"{args.runs} runs of {args.steps} steps; {n_cores} cores (os.sched_getaffinity); "
              f"load average before: {load0[0]:.1f} {load0[1]:.1f} {load0[2]:.1f}", flush=True)

        with timed() as serial_time:
            for spec in specs:
                res = execute_run({"study": spec.study, "name": spec.name, "output_root": str(tmp / "serial"),
                                   "notebook_dir": str(tmp), "overrides": spec.overrides},
                                  n_cores, str(tmp / "logs" / f"{spec.name}.log"))
                assert res["rc"] == 0, res["error"]
        serial = serial_time.wall
        print(f"serial: {serial:.1f}s ({serial / args.runs:.1f}s per run, {n_cores} torch threads each)", flush=True)

        with timed() as cluster_time, contextlib.redirect_stdout(io.StringIO()):  # the summary table; bar: stderr
            rc = batch(specs, output_root=tmp / "cluster", notebook_dir=tmp, workers=workers)
        cluster = cluster_time.wall
        assert rc == 0 and all(is_complete(s, tmp / "cluster") for s in specs)
        load1 = os.getloadavg()
        print(f"LocalCluster ({workers} workers x 1 thread, {max(1, n_cores // workers)} torch thread(s) per run): "
              f"{cluster:.1f}s, cluster start and close included", flush=True)
        print(f"serial / LocalCluster = {serial / cluster:.2f}x; load average after: "
              f"{load1[0]:.1f} {load1[1]:.1f} {load1[2]:.1f}")


if __name__ == "__main__":
    main()
