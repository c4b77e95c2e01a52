"""Run study notebooks reproducibly: validate parameters, then execute with papermill.

A study is ``notebooks/STUDY.ipynb``; its ``parameters`` cell says what can be configured
(`medvid_core.params`). A run writes everything it produces into ``outputs/STUDY/<run-name>/``: the
executed notebook, ``params.yaml`` (the merged parameters actually used, with where they came from) and
whatever the notebook saves under its ``output_dir`` parameter (metrics.json, CSVs, PNGs). The run name
is the params file's stem (or ``default``), plus the overrides when there are any, so a run with
``-p epochs=3`` never overwrites the default results.

A run executes in a staging folder and is renamed into place when it finished, with the marker
:data:`COMPLETE` written last: `medvid_core.batch` skips complete runs and reruns the rest.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
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


# ------------------------------------------------------------------- complete runs

#: Written last into a run's folder, after papermill returned without error: a folder is *complete*
#: when it holds this file and the file's digest equals the run's (same notebook code, same merged
#: parameters). Anything else (no marker, a FAILED.txt, another digest) is rerun by `batch`.
COMPLETE = ".complete.json"
#: A failed run's folder holds this one-line summary (and the executed notebook), never COMPLETE.
FAILED = "FAILED.txt"
#: Runs execute in ``output_root/STUDY/.incomplete/NAME.PID/`` and are renamed into place at the end.
INCOMPLETE_DIR = ".incomplete"


@dataclass(frozen=True)
class RunSpec:
    """One run, resolved and validated: what `run` executes and what `batch` schedules."""

    study: str
    name: str
    params: dict  # merged, validated: defaults < params file < overrides (output_dir excluded)
    params_file: Path | None
    overrides: dict
    digest: str  # of the notebook's code cells and `params`: what "complete" is checked against

    def out_dir(self, output_root: str | Path) -> Path:
        return (Path(output_root) / self.study / self.name).resolve()


def _notebook_code(notebook: Path) -> list[str]:
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]


def prepare(
    study: str,
    *,
    params_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    notebook_dir: str | Path = "notebooks",
    name: str | None = None,
) -> RunSpec:
    """Validate a run without executing anything; raises :class:`ParamError` (one line)."""
    spec = study_spec(study, notebook_dir=notebook_dir)
    notebook = Path(notebook_dir) / f"{study}.ipynb"
    if OUTPUT_DIR not in spec:
        raise ParamError(f"{_show(notebook)} parameters cell must declare {OUTPUT_DIR} = \"\"")
    params = {key: p.default for key, p in spec.items() if key != OUTPUT_DIR}
    params_file = Path(params_file) if params_file is not None else None
    if params_file is not None:
        params.update(validate(load_params_file(params_file), spec, _show(params_file)))
    overrides = dict(overrides or {})
    params.update(validate(overrides, spec, "-p"))
    name = name or run_name(params_file, overrides)
    if name in (".", "..") or "/" in name or name.startswith("."):
        raise ParamError(f"run name {name!r} must be a plain folder name (no '/', not starting with '.')")
    blob = json.dumps({"study": study, "notebook": _notebook_code(notebook), "params": params},
                      sort_keys=True, default=str)
    return RunSpec(study, name, params, params_file, overrides, hashlib.sha256(blob.encode()).hexdigest())


def read_marker(out_dir: str | Path) -> dict | None:
    """The COMPLETE marker's content, or None when absent or unreadable (an unfinished write)."""
    try:
        return json.loads((Path(out_dir) / COMPLETE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_complete(spec: RunSpec, output_root: str | Path) -> bool:
    """Did this exact run (same notebook code, same parameters) finish into its folder?"""
    marker = read_marker(spec.out_dir(output_root))
    return marker is not None and marker.get("digest") == spec.digest


def _clear_stale(staging_root: Path, name: str) -> None:
    """Remove earlier attempts of `name` (a killed run's staging folder, a half-swapped old one)."""
    pattern = re.compile(re.escape(name) + r"\.(old\.)?\d+")
    for stale in staging_root.glob("*"):
        if pattern.fullmatch(stale.name):
            shutil.rmtree(stale, ignore_errors=True)


def move_into_place(staging: Path, final: Path) -> None:
    """Rename the finished `staging` folder to `final` (same file system: an atomic rename).

    An existing `final` is first renamed aside and deleted after, so at no moment does `final`
    hold a mix of two runs; a kill between the two renames leaves no `final` at all (rerun).
    """
    if final.exists():
        aside = staging.parent / f"{final.name}.old.{os.getpid()}"
        os.rename(final, aside)
        os.rename(staging, final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.rename(staging, final)


def _fsync_write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


# ---------------------------------------------------------------------------- run


def collapse_progress(text: str) -> str:
    """What a terminal shows of `text`: each line's part after its last carriage return. tqdm redraws a
    bar with ``\r`` many times a second; a saved notebook keeps one final line per bar, not every redraw."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def tidy_notebook(path: str | Path) -> int:
    """Merge each cell's consecutive stream outputs of one stream (stdout, stderr) and collapse their
    progress-bar redraws (in place); returns how many cells changed. The executed notebook then reads as
    the run's console looked at its end: one final line per bar."""
    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    changed = 0
    for cell in nb.get("cells", []):
        merged = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text = "".join(out["text"]) if isinstance(out["text"], list) else out["text"]
                if merged and merged[-1].get("output_type") == "stream" and merged[-1]["name"] == out["name"]:
                    merged[-1]["text"] += text
                    continue
                out = {**out, "text": text}
            merged.append(out)
        for out in merged:
            if out.get("output_type") == "stream":
                lines = collapse_progress(out["text"]).split("\n")
                out["text"] = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
        if merged != cell.get("outputs", []):
            cell["outputs"] = merged
            changed += 1
    if changed:
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return changed


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
    folder, and its params.yaml says what was overridden. The notebook executes in a fresh staging
    folder ``output_root/STUDY/.incomplete/<name>.<pid>/`` (its ``output_dir``); when it finished,
    the marker :data:`COMPLETE` is written last and the folder is renamed into place, replacing an
    older result as a whole. So a killed run never leaves a folder that looks complete.
    Raises :class:`ParamError` before executing anything if the parameters do not fit the notebook,
    and :class:`StudyFailed` if a cell raises: the failed folder (executed notebook with papermill's
    error cell, ``FAILED.txt``, no marker) is moved into place for inspection.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    spec = prepare(study, params_file=params_file, overrides=overrides, notebook_dir=notebook_dir, name=name)
    notebook = Path(notebook_dir) / f"{study}.ipynb"
    final = spec.out_dir(output_root)
    staging_root = final.parent / INCOMPLETE_DIR
    staging_root.mkdir(parents=True, exist_ok=True)
    _clear_stale(staging_root, spec.name)
    staging = staging_root / f"{spec.name}.{os.getpid()}"
    staging.mkdir()
    (staging / "params.yaml").write_text(
        _params_yaml(study, spec.params, spec.params_file, spec.overrides), encoding="utf-8"
    )

    executed = f"{study}.ipynb"
    t0 = time.monotonic()
    try:
        pm.execute_notebook(
            str(notebook),
            str(staging / executed),
            parameters={**spec.params, OUTPUT_DIR: str(staging)},
            kernel_name=_kernel_name(),
            language="python",  # studies are Python; spares notebooks saved without metadata
            cwd=str(cwd if cwd is not None else REPO_ROOT),
            progress_bar=False,
            log_output=True,
        )
    except PapermillExecutionError as exc:
        tidy_notebook(staging / executed)
        message = (f"{_show(notebook)} failed in cell {exc.cell_index + 1} "
                   f"(exec count {exc.exec_count}): {exc.ename}: {exc.evalue}")
        cause = None
    except Exception as exc:  # dead kernel (OOM), kernel start timeout, ...
        message = f"{_show(notebook)} could not be executed: {type(exc).__name__}: {exc}"
        cause = exc
    else:
        tidy_notebook(staging / executed)
        marker = {"study": study, "name": spec.name, "digest": spec.digest,
                  "wall_s": round(time.monotonic() - t0, 1)}
        _fsync_write(staging / COMPLETE, json.dumps(marker, indent=1) + "\n")
        move_into_place(staging, final)
        return final
    message = " ".join(message.split())  # one line, whatever the exception text holds
    (staging / FAILED).write_text(message + "\n", encoding="utf-8")
    move_into_place(staging, final)
    raise StudyFailed(f"{message}; see {_show(final / executed)}", executed=final / executed) from cause
