"""The layout rule: generic modules never import a study's room, are organised by method (no section
header, no module-level constant named after a study), and every study module is importable."""
from __future__ import annotations

import ast
import importlib
import pkgutil
import re

import pytest

import medvid_core
import medvid_core.studies
from medvid_core.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "medvid_core"

#: Each study room (medvid_core/studies/<room>.py) and the names its paper, lesson or data set goes by.
#: In a generic module these may cite where a method comes from, never head a section or name a constant.
STUDY_NAMES = {
    "ich": ("ICH", "RSNA", "Intracranial Hemorrhage"),
    "lecture5_3d_video": ("Lecture 5", "Lecture5", "lecture5_3d_video"),
    "lecture5_medical_video": ("lecture5_medical_video",),
    "mura_alternatives": ("mura_alternatives",),
    "mura_flags": ("mura_flags",),
    "mura_zoom": ("MURA", "mura_zoom"),
    "video4mri": ("Video4MRI", "PPMI", "ADNI", "OASIS"),
    "viptt_net": ("ViPTT-Net", "ViPTT", "UCF50", "ImageCLEF"),
}
#: Data sets as their readers (io/), generators (synth/) and checker (datacheck.py) name them. A module about
#: data sets may head a section or name a constant after one (a layout, its published counts); never after
#: a study. "RSNA ICH" is the data set, "ICH" alone the study.
DATASETS = ("RSNA ICH", "RSNA Intracranial Hemorrhage", "RSNA", "MURA-v1.1", "MURA", "PPMI", "ADNI", "OASIS",
            "UCF50", "ImageCLEF")
DATASET_MODULES = ("io", "synth", "datacheck.py")  # the first part of a path under medvid_core/
#: A section header: a comment line that opens with a rule of dashes, equals signs or hashes.
HEADER = re.compile(r"^\s*#\s*[-=#*~]{3,}(.*)$")


def _generic_modules() -> list:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if "studies" not in p.relative_to(PACKAGE).parts]


def _names_pattern(names, *, glue: str = "") -> re.Pattern:
    """Any of `names` as a word, case-insensitive, with spaces, hyphens and underscores interchangeable
    inside a name; `glue` characters (besides letters) may not touch it on either side."""
    alts = sorted({"[-_ ]*".join(map(re.escape, re.split(r"[-_ ]+", n))) for n in names}, key=len, reverse=True)
    return re.compile(rf"(?<![A-Za-z0-9{glue}])(?:" + "|".join(alts) + rf")(?![A-Za-z{glue}])", re.IGNORECASE)


STUDY = _names_pattern([n for names in STUDY_NAMES.values() for n in names])
DATASET = _names_pattern(DATASETS, glue="_")  # "MURA" the data set, not the "mura" of the room mura_zoom


def _names_a_study(text: str, *, datasets_allowed: bool) -> bool:
    return bool(STUDY.search(DATASET.sub(" ", text) if datasets_allowed else text))


def _section_titles(text: str) -> list[tuple[int, str]]:
    """(line number, title) of every section header: the text on the rule line, or, for a bare rule,
    the comment line right below it (or right above it, for an underlined title)."""
    lines = text.splitlines()
    titles = []
    for i, line in enumerate(lines):
        m = HEADER.match(line)
        if not m:
            continue
        title = m.group(1).strip(" -=#*~")
        if not title:
            near = [lines[j] for j in (i + 1, i - 1) if 0 <= j < len(lines)]
            title = next((ln.strip().lstrip("#").strip() for ln in near
                          if ln.strip().startswith("#") and not HEADER.match(ln)), "")
        titles.append((i + 1, title))
    return titles


def study_headers(text: str, *, datasets_allowed: bool = False) -> list[str]:
    """Section headers of a module's text that name a study (or a data set, unless `datasets_allowed`)."""
    return [f"line {n}: {t!r}" for n, t in _section_titles(text)
            if _names_a_study(t, datasets_allowed=datasets_allowed)]


def study_constants(text: str, *, datasets_allowed: bool = False) -> list[str]:
    """Module-level constants (UPPER_CASE names) named after a study (or a data set, unless `datasets_allowed`)."""
    found = []
    for node in ast.parse(text).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for name in [e.id for t in targets for e in ast.walk(t) if isinstance(e, ast.Name)]:
            if name.isupper() and _names_a_study(name.replace("_", " "), datasets_allowed=datasets_allowed):
                found.append(f"line {node.lineno}: {name}")
    return found


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
    for path in _generic_modules():
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


def test_every_study_room_has_its_names():
    """STUDY_NAMES lists every room: a new study cannot slip past the text rule unnamed."""
    rooms = {m.name for m in pkgutil.iter_modules(medvid_core.studies.__path__)}
    assert rooms == set(STUDY_NAMES), f"rooms without names in STUDY_NAMES: {rooms - set(STUDY_NAMES)}"


def test_generic_modules_are_organised_by_method():
    """No section header of a generic module names a study; no module-level constant is named after one."""
    offenders = []
    for path in _generic_modules():
        text = path.read_text()
        rel = path.relative_to(REPO_ROOT)
        datasets_allowed = rel.parts[1] in DATASET_MODULES
        offenders += [f"{rel} {h}" for h in study_headers(text, datasets_allowed=datasets_allowed)]
        offenders += [f"{rel} {c}" for c in study_constants(text, datasets_allowed=datasets_allowed)]
    assert not offenders, "study names organising generic modules (sections go by method; a study's " \
                          f"protocol lives in its room):\n" + "\n".join(offenders)


@pytest.mark.parametrize("probe", [
    "# --------------------------------------------------------------------------- Lecture 5 (3D and video):\n",
    "# ------------------------------------------------ CNN+RNN on CT (ViPTT-Net):\n",
    "# =========== multi-label CT (rsna ich)\n",
    "# ---------------------------------------------------------------------------\n# Video4MRI recipe\nx = 1\n",
    "# MURA helpers\n# -----------------\n",
    "# --------------------------------------------------------------------------- ich\n",
])
def test_the_rule_catches_a_study_header(probe):
    """The checker itself can fail: a study's name heading a section is seen, however the rule is drawn."""
    assert study_headers(probe)


def test_a_data_set_module_may_name_data_sets_not_studies():
    assert study_headers("# ------------------------- RSNA ICH stage 2 (DICOM slices)\n", datasets_allowed=True) == []
    assert study_headers("# ------------------------- RSNA ICH stage 2 (DICOM slices)\n")  # not in metrics.py
    assert study_headers("# ------------------------- UCF50, as ViPTT-Net reads it\n", datasets_allowed=True)
    assert study_headers("# ------------------------- OASIS for the ICH lesson\n", datasets_allowed=True)
    assert study_headers("# ------------------------- mura_zoom's archive\n", datasets_allowed=True)
    assert study_constants("MURA_PUBLISHED = {}\n") and not study_constants("MURA_PUBLISHED = {}\n", datasets_allowed=True)


def test_the_rule_catches_a_study_constant():
    assert study_constants("VIPTT_ROTATION_ANGLES = (0, 5)\n")
    assert study_constants("ICH_WINDOWS: dict = {}\n")
    assert study_constants("RSNA_WEIGHTS = (1, 2)\n")  # a data set's name outside its reader
    assert not study_constants("RSNA_WEIGHTS = (1, 2)\n", datasets_allowed=True)
    assert study_constants("VIDEO4MRI_RECIPE = {}\n", datasets_allowed=True)  # a study is never allowed


def test_the_rule_lets_methods_and_citations_through():
    text = ("# --------------------------------------------------------------------------- CT intensity windowing\n"
            "# the usual head-CT windows, as the RSNA ICH challenge's solutions stack them\n"
            "# --------------------------------------------------------------------------- bootstrap intervals\n"
            "WHICH_AXIS = 0  # ViPTT-Net's draw\nCOCO_IOU_THRESHOLDS = 0.5\n")
    assert study_headers(text) == [] and study_constants(text) == []
