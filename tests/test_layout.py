"""The layout rule: generic modules never import a study's room, and every study module is importable."""
from __future__ import annotations

import ast
import importlib
import pkgutil

import medvid_core
import medvid_core.studies
from medvid_core.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "medvid_core"


def _imports(path) -> set[str]:
    """Absolute module names imported by `path` (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text())
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names.add(mod)
            names |= {f"{mod}.{a.name}" for a in node.names}
    return names


def test_generic_modules_never_import_studies():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "studies" in path.relative_to(PACKAGE).parts:
            continue
        if any(n == "medvid_core.studies" or n.startswith("medvid_core.studies.") for n in _imports(path)):
            offenders.append(str(path.relative_to(REPO_ROOT)))
    assert not offenders, f"generic modules importing medvid_core.studies: {offenders}"


def test_the_rule_catches_a_relative_import(tmp_path, monkeypatch):
    """The checker itself can fail: a relative `from ..studies import x` inside medvid_core/io is seen."""
    fake = PACKAGE / "io" / "_layout_probe.py"
    fake.write_text("from ..studies import video4mri\n")
    try:
        assert "medvid_core.studies" in _imports(fake)
    finally:
        fake.unlink()


def test_every_study_module_imports():
    names = [m.name for m in pkgutil.iter_modules(medvid_core.studies.__path__)]
    assert "video4mri" in names
    for name in names:
        importlib.import_module(f"medvid_core.studies.{name}")
