"""Where things live, as absolute paths (nbval runs notebooks from notebooks/, papermill from the root)."""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"  # generated synthetic cohorts (git-ignored)
OUTPUTS_DIR = REPO_ROOT / "outputs"


def study_output_dir(study: str, output_dir: str = "") -> Path:
    """The runner passes `output_dir`; a notebook opened by hand writes to outputs/<study>/interactive."""
    out = Path(output_dir) if output_dir else OUTPUTS_DIR / study / "interactive"
    out.mkdir(parents=True, exist_ok=True)
    return out
