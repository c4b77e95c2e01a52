"""Run study notebooks reproducibly: validate parameters, then execute with papermill.

A study is ``notebooks/STUDY.ipynb``; its ``parameters`` cell says what can be configured
(`medvid_core.params`). A run writes everything it produces into ``outputs/STUDY/<run-name>/``: the
executed notebook, ``params.yaml`` (the merged parameters actually used, with where they came from) and
whatever the notebook saves under its ``output_dir`` parameter (metrics.json, CSVs, PNGs). The run name
is the params file's stem (or ``default``), plus the overrides when there are any, so a run with
``-p epochs=3`` never overwrites the default results.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from .params import OUTPUT_DIR, ParamError, _show, load_params_file, study_spec, validate
from .paths import REPO_ROOT

#: Preferred kernel: the project's environment, registered by tools/setup_env.sh.
KERNEL_NAME = "medvid"


class StudyFailed(RuntimeError):
    """A notebook raised while executing; the message is the one-line summary."""

    def __init__(self, message: str, *, executed: Path):
        super().__init__(message)
        self.executed = executed


# ---------------------------------------------------------------------------- run


def _kernel_name() -> str | None:
    """``medvid`` when registered, else None (papermill reads the notebook's own)."""
    from jupyter_client.kernelspec import KernelSpecManager

    return KERNEL_NAME if KERNEL_NAME in KernelSpecManager().find_kernel_specs() else None


def _params_yaml(study: str, params: dict, params_file: Path | None, overrides: dict) -> str:
    """params.yaml text; provenance goes in comments so the file is itself a valid params file."""
    header = [f"# study: {study}", f"# params file: {_show(params_file) if params_file else 'none (defaults)'}"]
    if overrides:
        flow = yaml.safe_dump(overrides, sort_keys=False, default_flow_style=True, width=10**6)
        header.append(f"# overrides (-p/-y): {flow.strip()}")
    body = yaml.safe_dump(params, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return "\n".join(header) + "\n" + body


def _slug(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), default=str) if not isinstance(value, str) else value
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-") or "none"


def run_name(params_file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> str:
    """The output folder's name: the params file's stem (or ``default``), then ``+key=value,...`` for
    the overrides, e.g. ``default+epochs=3,models=tsm_r18``. Longer than 80 characters, it is cut
    and ends in a hash of the overrides, so two different runs never share a folder."""
    base = Path(params_file).stem if params_file else "default"
    if not overrides:
        return base
    name = base + "+" + ",".join(f"{k}={_slug(v)}" for k, v in overrides.items())
    if len(name) > 80:
        digest = hashlib.sha1(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:8]
        name = name[:71] + "-" + digest
    return name


def run(
    study: str,
    *,
    params_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    output_root: str | Path = "outputs",
    notebook_dir: str | Path = "notebooks",
    cwd: str | Path | None = None,
    name: str | None = None,
) -> Path:
    """Execute one study and return its output folder ``output_root/STUDY/<name>``.

    ``<name>`` is `run_name(params_file, overrides)` unless given: a run with overrides gets its own
    folder, and its params.yaml says what was overridden. The
    folder is emptied first so it never mixes results of two runs. Raises
    :class:`ParamError` before executing anything if the parameters do not
    fit the notebook, and :class:`StudyFailed` if a cell raises (the executed
    notebook with papermill's error cell is kept for inspection).
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    spec = study_spec(study, notebook_dir=notebook_dir)
    notebook = Path(notebook_dir) / f"{study}.ipynb"
    if OUTPUT_DIR not in spec:
        raise ParamError(f"{_show(notebook)} parameters cell must declare {OUTPUT_DIR} = \"\"")

    params = {name: p.default for name, p in spec.items() if name != OUTPUT_DIR}
    params_file = Path(params_file) if params_file is not None else None
    if params_file is not None:
        params.update(validate(load_params_file(params_file), spec, _show(params_file)))
    overrides = dict(overrides or {})
    params.update(validate(overrides, spec, "-p"))

    out_dir = (Path(output_root) / study / (name or run_name(params_file, overrides))).resolve()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    (out_dir / "params.yaml").write_text(
        _params_yaml(study, params, params_file, overrides), encoding="utf-8"
    )

    executed = out_dir / f"{study}.ipynb"
    try:
        pm.execute_notebook(
            str(notebook),
            str(executed),
            parameters={**params, OUTPUT_DIR: str(out_dir)},
            kernel_name=_kernel_name(),
            language="python",  # studies are Python; spares notebooks saved without metadata
            cwd=str(cwd if cwd is not None else REPO_ROOT),
            progress_bar=False,
            log_output=True,
        )
    except PapermillExecutionError as exc:
        raise StudyFailed(
            f"{_show(notebook)} failed in cell {exc.cell_index + 1} "
            f"(exec count {exc.exec_count}): {exc.ename}: {exc.evalue}; see {_show(executed)}",
            executed=executed,
        ) from None
    except Exception as exc:  # dead kernel (OOM), kernel start timeout, ...
        raise StudyFailed(
            f"{_show(notebook)} could not be executed: {type(exc).__name__}: {exc}; "
            f"see {_show(executed)} if it exists",
            executed=executed,
        ) from exc
    return out_dir


def batch(studies: list[str], *, params_dir: str | None, output_root: str, notebook_dir: str) -> int:
    """Run each study's default (plus every ``params_dir/STUDY/*.yaml`` if asked).

    Each run is its own ``python -m medvid_core run`` process: papermill's
    ``cwd`` is process-wide, and a crashed kernel must not take the batch's
    bookkeeping with it. Stops at the first failure.
    """
    if not studies:
        studies = sorted(p.stem for p in Path(notebook_dir).glob("*.ipynb"))
        if not studies:
            raise ParamError(f"no notebooks in {notebook_dir}/")
    for study in studies:  # fail fast on typos, before hours of compute
        study_spec(study, notebook_dir=notebook_dir)
    jobs = []
    for study in studies:
        jobs.append((study, None))
        if params_dir is not None:
            jobs += [(study, f) for f in sorted((Path(params_dir) / study).glob("*.y*ml"))]
    start = time.monotonic()
    for study, params_file in jobs:
        cmd = [sys.executable, "-m", "medvid_core", "run", study,
               "--output-root", output_root, "--notebook-dir", notebook_dir]
        if params_file is not None:
            cmd += ["--params", str(params_file)]
        label = f"{study}/{params_file.stem if params_file else 'default'}"
        t0 = time.monotonic()
        rc = subprocess.call(cmd)
        took = time.monotonic() - t0
        if rc != 0:
            print(f"batch: {label} FAILED (exit {rc}) after {took:.1f}s", file=sys.stderr)
            return rc
        print(f"batch: {label} ok in {took:.1f}s", flush=True)
    print(f"batch: {len(jobs)} run(s) ok in {time.monotonic() - start:.1f}s", flush=True)
    return 0
