"""Study parameters: the notebook's `parameters` cell is the one place each parameter is written.

The runner reads that cell (with `ast`, without executing it) to know every parameter's name, default,
type and help; params files and command-line overrides are checked against it before anything runs,
because papermill only warns about unknown names and never checks types. Inside the notebook,
`notebook_parameters` gathers the cell's values and `pick` hands each function the ones named like its
keywords, so a parameter is written once (in the cell) and never retyped in kwargs dicts.
"""
from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import nbformat
import yaml

from .paths import REPO_ROOT

#: The parameter the runner sets itself; every study declares it.
OUTPUT_DIR = "output_dir"


class ParamError(ValueError):
    """A parameter problem, carrying a one-line message meant for the user."""


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


def read_yaml_file(path: str | Path, *, kind: str = "params file") -> Any:
    """Read a YAML file with the safe loader; every failure is one `ParamError` line naming the `kind`
    and the file (not found, unreadable, invalid YAML with its line)."""
    path = Path(path)
    shown = _show(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamError(f"{kind} {shown} not found") from None
    except OSError as exc:
        raise ParamError(f"cannot read {kind} {shown}: {exc.strerror}") from None
    try:
        return _yaml_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ParamError(f"{kind} {shown} is not valid YAML{at}: {problem}") from None


def load_params_file(path: str | Path) -> dict[str, Any]:
    """Read a params YAML file into a dict; every failure names the file.

    An empty file means "no changes" and gives ``{}``.
    """
    data = read_yaml_file(path, kind="params file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamError(
            f"params file {_show(Path(path))} must be a mapping of name: value, got {type(data).__name__}"
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


def _show(path: Path) -> str:
    """Path relative to the current directory when possible: what users typed."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def study_spec(study: str, *, notebook_dir: str | Path = "notebooks") -> dict[str, Param]:
    """Read ``notebook_dir/STUDY.ipynb``'s parameters; errors mention the study."""
    notebook = Path(notebook_dir) / f"{study}.ipynb"
    if not notebook.is_file():
        available = ", ".join(sorted(p.stem for p in Path(notebook_dir).glob("*.ipynb"))) or "none"
        raise ParamError(f"no notebook {_show(notebook)} (available: {available})")
    return read_parameters(notebook)


def parse_inline_yaml(text: str) -> dict[str, Any]:
    """``-y 'data_roots: {ppmi: /data/PPMI}'``: a YAML mapping given on the command line (as papermill's -y)."""
    try:
        data = _yaml_load(text)
    except yaml.YAMLError:
        raise ParamError(f"-y: {text!r} is not valid YAML") from None
    if not isinstance(data, dict):
        raise ParamError(f"-y expects a YAML mapping such as 'epochs: 3', got {text!r}")
    return data


# ------------------------------------------------------------------ inside the notebook


def notebook_parameters(study: str, namespace: dict[str, Any], *,
                        notebook_dir: str | Path = REPO_ROOT / "notebooks") -> dict[str, Any]:
    """The current values of `study`'s parameters (every name of its `parameters` cell but output_dir).

    Call it in the notebook with ``globals()`` after the parameters cell: papermill's injected values
    are what you get, in the cell's order. This dict is what metrics.json records.
    """
    spec = study_spec(study, notebook_dir=notebook_dir)
    missing = [name for name in spec if name not in namespace]
    if missing:
        raise ParamError(f"{study}: parameter(s) {', '.join(missing)} not defined yet; run the parameters cell first")
    return {name: namespace[name] for name in spec if name != OUTPUT_DIR}


def keyword_names(fn: Callable) -> list[str]:
    """The names `fn` takes by keyword (positional-or-keyword and keyword-only), in signature order."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [n for n, p in inspect.signature(fn).parameters.items() if p.kind in kinds]


def pick(fns: Callable | Iterable[Callable], params: dict[str, Any], *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The entries of `params` that `fns` take as keywords (parameter names equal keyword names).

    ``pick(get_cohort, params)`` gives ``get_cohort`` its parameters without retyping them.
    """
    fns = [fns] if callable(fns) else list(fns)
    names = {n for fn in fns for n in keyword_names(fn)} - set(exclude)
    return {k: v for k, v in params.items() if k in names}
