"""Run study notebooks reproducibly: validate parameters, then execute with papermill.

A study is ``notebooks/STUDY.ipynb``. Its cell tagged ``parameters`` is the
single source of truth for what can be configured: plain assignments
``name = literal  # one-line help``. A run writes everything it produces into
``outputs/STUDY/<params-name>/``: the executed notebook, ``params.yaml`` (the
merged parameters actually used) and whatever the notebook itself saves under
its ``output_dir`` parameter (metrics.json, CSVs, PNGs).

Parameters are validated *before* anything executes, because papermill only
warns about unknown names and never checks types -- a typo in a YAML file
would otherwise silently run the defaults for an hour.
"""

from __future__ import annotations

import argparse
import ast
import logging
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import yaml

from .paths import REPO_ROOT

__all__ = [
    "Param",
    "ParamError",
    "StudyFailed",
    "read_parameters",
    "validate",
    "load_params_file",
    "parse_override",
    "study_spec",
    "run",
    "main",
]

# Notebooks execute in REPO_ROOT (papermill ``cwd``), so relative paths such as
# ``data/`` mean the same thing in every study, wherever the CLI was started.
#: The parameter the runner sets itself; every study declares it.
OUTPUT_DIR = "output_dir"

#: Preferred kernel: the project's environment, registered by tools/setup_env.sh.
KERNEL_NAME = "medvid"


class ParamError(ValueError):
    """A parameter problem, carrying a one-line message meant for the user."""


class StudyFailed(RuntimeError):
    """A notebook raised while executing; the message is the one-line summary."""

    def __init__(self, message: str, *, executed: Path):
        super().__init__(message)
        self.executed = executed


@dataclass(frozen=True)
class Param:
    """One entry of a notebook's parameters cell."""

    name: str
    default: Any
    type: type
    help: str = ""

    @property
    def type_name(self) -> str:
        return _type_name(self.default)


# --------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` as a float.

    PyYAML follows YAML 1.1, where a float needs a dot (``1.0e-3``); plain
    ``lr: 1e-3`` would arrive as the *string* '1e-3' and be rejected for a
    float parameter, which nobody expects.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 -- SafeLoader subclass


def load_params_file(path: str | Path) -> dict[str, Any]:
    """Read a params YAML file into a dict; every failure names the file.

    An empty file means "no changes" and gives ``{}``.
    """
    path = Path(path)
    shown = _show(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamError(f"params file {shown} not found") from None
    except OSError as exc:
        raise ParamError(f"cannot read params file {shown}: {exc.strerror}") from None
    try:
        data = _yaml_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ParamError(f"params file {shown} is not valid YAML{at}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamError(
            f"params file {shown} must be a mapping of name: value, got {type(data).__name__}"
        )
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key=value`` and read the value as YAML (``3`` is int, ``[a,b]`` a list)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise ParamError(f"-p expects key=value, got {text!r}")
    try:
        return key, _yaml_load(value)
    except yaml.YAMLError:
        raise ParamError(f"-p {key}: value {value!r} is not valid YAML") from None


# ------------------------------------------------------------------ parameters cell


class _Spec(dict):
    """``{name: Param}`` that also knows its study, so errors can name it."""

    def __init__(self, *, study: str):
        super().__init__()
        self.study = study



def _parameters_source(notebook_path: Path) -> str:
    nb = nbformat.read(notebook_path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell.source
    raise ParamError(f"{_show(notebook_path)} has no cell tagged 'parameters'")


def read_parameters(notebook_path: str | Path) -> dict[str, Param]:
    """Parse the notebook's ``parameters`` cell into ``{name: Param}``.

    Uses ``ast`` rather than executing the cell, so reading a study's
    interface never imports torch or touches data. Only ``name = literal``
    (optionally annotated) is allowed: anything computed could not be
    type-checked or overridden from YAML. The help text is the comment on
    the same line as the assignment.
    """
    notebook_path = Path(notebook_path)
    if not notebook_path.is_file():
        raise ParamError(f"notebook {_show(notebook_path)} not found")
    source = _parameters_source(notebook_path)
    where = f"{_show(notebook_path)} parameters cell"
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ParamError(f"{where} line {exc.lineno}: {exc.msg}") from None
    lines = source.splitlines()
    spec = _Spec(study=notebook_path.stem)
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            raise ParamError(f"{where} line {node.lineno}: only 'name = literal' assignments allowed")
        if not isinstance(target, ast.Name):
            raise ParamError(f"{where} line {node.lineno}: only 'name = literal' assignments allowed")
        try:
            default = ast.literal_eval(value)
        except ValueError:
            raise ParamError(
                f"{where} line {node.lineno}: {target.id} must be a literal, "
                f"got {ast.get_source_segment(source, value)!r}"
            ) from None
        rest = lines[node.end_lineno - 1][node.end_col_offset:].strip()
        help_text = rest[1:].strip() if rest.startswith("#") else ""
        spec[target.id] = Param(target.id, default, type(default), help_text)
    return spec


# ----------------------------------------------------------------------- validation


def _type_name(value: Any) -> str:
    """``int``, ``list[str]`` (homogeneous non-empty list) or plain ``list``."""
    kind = type(value).__name__
    if isinstance(value, (list, tuple)) and value:
        inner = {type(v) for v in value}
        if len(inner) == 1:
            return f"{kind}[{inner.pop().__name__}]"
    return kind


def _scalar_ok(value: Any, default: Any) -> bool:
    """Does ``value`` have the default's type? (containers: only the container)."""
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        # bool is an int subclass in Python; True for `epochs` is always a mistake.
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def _coerce(value: Any, default: Any) -> Any:
    """Return ``value`` checked against ``default``'s type, or raise TypeError.

    Ints become floats where a float is expected, so the notebook sees
    ``1.0`` exactly as if the default had been edited.
    """
    if not _scalar_ok(value, default):
        raise TypeError
    if isinstance(default, float) and not isinstance(value, float):
        return float(value)
    if isinstance(default, (list, tuple)):
        items = list(value)
        kinds = {type(v) for v in default}
        if default and len(kinds) == 1:
            items = [_coerce(v, default[0]) for v in items]
        return items  # tuples too: YAML and params.yaml only know lists
    return value


def validate(params: dict[str, Any], spec: dict[str, Param], source: str) -> dict[str, Any]:
    """Check ``params`` against the notebook's ``spec``; return the checked values.

    ``source`` names where the values came from (a file, ``-p``) so the
    one-line :class:`ParamError` points at the thing to fix.
    """
    unknown = [k for k in params if k not in spec or k == OUTPUT_DIR]
    if unknown:
        key = unknown[0]
        if key == OUTPUT_DIR:
            raise ParamError(f"parameter '{OUTPUT_DIR}' is set by the runner; remove it from {source}")
        study = getattr(spec, "study", None)
        known = ", ".join(k for k in spec if k != OUTPUT_DIR)
        for_study = f" for {study}" if study else ""
        raise ParamError(f"unknown parameter '{key}'{for_study} (known: {known})")
    checked = {}
    for key, value in params.items():
        default = spec[key].default
        try:
            checked[key] = _coerce(value, default)
        except TypeError:
            raise ParamError(
                f"parameter '{key}' must be {_type_name(default)}, "
                f"got {_type_name(value)} ({value!r}) from {source}"
            ) from None
    return checked


# ---------------------------------------------------------------------------- run


def _show(path: Path) -> str:
    """Path relative to the current directory when possible: what users typed."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _kernel_name() -> str | None:
    """``medvid`` when registered, else None (papermill reads the notebook's own)."""
    from jupyter_client.kernelspec import KernelSpecManager

    return KERNEL_NAME if KERNEL_NAME in KernelSpecManager().find_kernel_specs() else None


def study_spec(study: str, *, notebook_dir: str | Path = "notebooks") -> dict[str, Param]:
    """Read ``notebook_dir/STUDY.ipynb``'s parameters; errors mention the study."""
    notebook = Path(notebook_dir) / f"{study}.ipynb"
    if not notebook.is_file():
        available = ", ".join(sorted(p.stem for p in Path(notebook_dir).glob("*.ipynb"))) or "none"
        raise ParamError(f"no notebook {_show(notebook)} (available: {available})")
    return read_parameters(notebook)


def _params_yaml(study: str, params: dict, params_file: Path | None, overrides: dict) -> str:
    """params.yaml text; provenance goes in comments so the file is itself a valid params file."""
    header = [f"# study: {study}", f"# params file: {_show(params_file) if params_file else 'none (defaults)'}"]
    if overrides:
        flow = yaml.safe_dump(overrides, sort_keys=False, default_flow_style=True, width=10**6)
        header.append(f"# overrides (-p): {flow.strip()}")
    body = yaml.safe_dump(params, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return "\n".join(header) + "\n" + body


def run(
    study: str,
    *,
    params_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    output_root: str | Path = "outputs",
    notebook_dir: str | Path = "notebooks",
    cwd: str | Path | None = None,
) -> Path:
    """Execute one study and return its output folder ``output_root/STUDY/<name>``.

    ``<name>`` is the params file's stem, or ``default`` without one (even
    when ``overrides`` are given -- they are recorded in params.yaml). The
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

    out_dir = (Path(output_root) / study / (params_file.stem if params_file else "default")).resolve()
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


# ---------------------------------------------------------------------------- CLI


class _CellOutput(logging.StreamHandler):
    """Print papermill's log (streamed cell output) as-is, without doubled newlines."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage().rstrip("\n")


def _stream_cell_output() -> None:
    """papermill's ``log_output`` goes to the 'papermill' logger; show it on stderr."""
    pm_log = logging.getLogger("papermill")
    if not any(isinstance(h, _CellOutput) for h in pm_log.handlers):
        pm_log.addHandler(_CellOutput(sys.stderr))
        pm_log.setLevel(logging.INFO)
        pm_log.propagate = False


def _print_params(study: str, notebook_dir: str) -> None:
    rows = [("name", "default", "type", "help")]
    for p in study_spec(study, notebook_dir=notebook_dir).values():
        help_text = "(set by the runner)" if p.name == OUTPUT_DIR else p.help
        rows.append((p.name, repr(p.default), p.type_name, help_text))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])


def _batch(studies: list[str], *, params_dir: str | None, output_root: str, notebook_dir: str) -> int:
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m medvid_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def dirs(p: argparse.ArgumentParser, *, output: bool = True) -> None:
        if output:
            p.add_argument("--output-root", default="outputs", help="default: %(default)s")
        p.add_argument("--notebook-dir", default="notebooks", help="default: %(default)s")

    p = sub.add_parser("run", help="execute one study notebook")
    p.add_argument("study", help="notebook name without .ipynb")
    p.add_argument("--params", metavar="PATH.yaml", help="params file; its stem names the output folder")
    p.add_argument("-p", dest="overrides", metavar="key=value", action="append", default=[],
                   help="override one parameter (value read as YAML); repeatable")
    dirs(p)

    p = sub.add_parser("batch", help="run studies one after another (default: all)")
    p.add_argument("studies", nargs="*", metavar="STUDY")
    p.add_argument("--params-dir", metavar="DIR",
                   help="also run every DIR/STUDY/*.yaml after each study's default")
    dirs(p)

    p = sub.add_parser("params", help="show a study's parameters")
    p.add_argument("study")
    dirs(p, output=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns 0 ok, 1 notebook failed, 2 bad parameters or usage."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "params":
            _print_params(args.study, args.notebook_dir)
            return 0
        if args.command == "batch":
            return _batch(args.studies, params_dir=args.params_dir,
                          output_root=args.output_root, notebook_dir=args.notebook_dir)
        overrides = dict(parse_override(o) for o in args.overrides)
        _stream_cell_output()
        out_dir = run(args.study, params_file=args.params, overrides=overrides,
                      output_root=args.output_root, notebook_dir=args.notebook_dir)
        print(f"{args.study}: results in {_show(out_dir)}", flush=True)
        return 0
    except ParamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StudyFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
