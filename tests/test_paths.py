"""medvid_core.paths: MEDVID_DATA moves the generated cohorts and caches, read at each call."""
from pathlib import Path

from medvid_core import paths
from medvid_core.studies import ich, video4mri


def test_data_dir_defaults_to_the_repository(monkeypatch):
    monkeypatch.delenv("MEDVID_DATA", raising=False)
    assert paths.data_dir() == paths.REPO_ROOT / "data"


def test_medvid_data_moves_every_study_root(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDVID_DATA", str(tmp_path / "elsewhere"))
    assert paths.data_dir() == (tmp_path / "elsewhere").resolve()
    monkeypatch.setattr(ich, "generate_cohort", lambda root, **kw: Path(root))  # where it would generate
    assert ich.cohort_root(cohort_preset="tiny", seed=3) == (tmp_path / "elsewhere" / "ich" / "tiny-seed3").resolve()
    seen = {}
    monkeypatch.setattr(video4mri, "ensure_cohort", lambda root, *a, **kw: seen.setdefault("root", Path(root)) / "x")
    try:
        video4mri.load_cohort(cohort="small", seed=1)
    except Exception:  # the fake manifest is not readable: only the folder is under test
        pass
    assert seen["root"] == (tmp_path / "elsewhere" / "video4mri" / "small-seed1").resolve()
