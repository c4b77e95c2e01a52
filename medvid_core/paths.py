"""Where things live, as absolute paths (nbval runs notebooks from notebooks/, papermill from the root)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUTS_DIR = REPO_ROOT / "outputs"
DATA_ENV = "MEDVID_DATA"  # moves the generated cohorts and their caches away from the repository's data/


def data_dir() -> Path:
    """The folder of generated synthetic cohorts and decode caches: ``$MEDVID_DATA`` when set (a disk with
    room, or a fresh folder for a test), else ``data/`` in the repository (git-ignored). Read at each call,
    so setting the variable after import works too."""
    return Path(os.environ[DATA_ENV]).expanduser().resolve() if os.environ.get(DATA_ENV) else REPO_ROOT / "data"


def study_output_dir(study: str, output_dir: str = "") -> Path:
    """The runner passes `output_dir`; a notebook opened by hand writes to outputs/<study>/interactive."""
    out = Path(output_dir) if output_dir else OUTPUTS_DIR / study / "interactive"
    out.mkdir(parents=True, exist_ok=True)
    return out
