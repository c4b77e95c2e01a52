"""OASIS importers on small trees in the official layouts (Analyze pairs written with nibabel)."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from medvid_core.cli import main
from medvid_core.data import read_manifest
from medvid_core.io.nifti import load_volume
from medvid_core.io.oasis import OasisError, import_oasis1, import_oasis2


def _analyze(path: Path, shape=(12, 14, 10, 1)) -> Path:
    """An Analyze 7.5 pair (.hdr + .img), as OASIS ships them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(0).integers(0, 400, shape).astype(np.int16)
    nib.save(nib.AnalyzeImage(data, np.diag([1.0, 1.0, 1.0, 1.0])), path)
    return path


def _oasis1(root: Path) -> Path:
    ids = ["OAS1_0001_MR1", "OAS1_0002_MR1", "OAS1_0003_MR1", "OAS1_0003_MR2", "OAS1_0004_MR1", "OAS1_0005_MR1"]
    for disc, sid in zip(["disc1", "disc1", "disc2", "disc2", "disc2", "disc2"], ids):
        if sid == "OAS1_0005_MR1":  # listed in the CSV, image never downloaded
            continue
        _analyze(root / disc / sid / "PROCESSED" / "MPRAGE" / "T88_111" / f"{sid}_mpr_n4_anon_111_t88_gfc.hdr")
    _analyze(root / "disc2" / "OAS1_0099_MR1" / "PROCESSED" / "MPRAGE" / "T88_111" / "OAS1_0099_MR1_t88_gfc.hdr")
    pd.DataFrame({"ID": ids, "M/F": ["F"] * 6, "Age": [74, 55, 73, 73, 21, 80],
                  "CDR": [0.0, 0.5, 1.0, 1.0, np.nan, 0.0]}).to_csv(root / "oasis_cross-sectional.csv", index=False)
    return root


def test_oasis1_labels_by_cdr_and_names_every_row_left_out(tmp_path):
    res = import_oasis1(_oasis1(tmp_path / "OASIS1"))
    m = res.manifest.set_index(res.manifest.subject + "_" + res.manifest.session)
    assert m.label.to_dict() == {"OAS1_0001_MR1": "NC", "OAS1_0002_MR1": "AD", "OAS1_0003_MR1": "AD",
                                 "OAS1_0003_MR2": "AD"}
    assert set(m.view) == {"axial"} and m.loc["OAS1_0003_MR2", "subject"] == "OAS1_0003"  # reliability rescan
    reasons = res.skipped.set_index("id").reason
    assert "no CDR" in reasons["OAS1_0004_MR1"]
    assert "T88_111/*_t88_gfc.hdr" in reasons["OAS1_0005_MR1"]
    assert "not in oasis_cross-sectional.csv" in reasons["OAS1_0099_MR1"]
    assert len(res.manifest) + len(res.skipped) == 6 + 1  # every CSV row and every image accounted for
    df = read_manifest(res.manifest_path, classes=["NC", "AD"])  # the study's reader takes it as it is
    assert df.target.tolist() == [0, 1, 1, 1] and all(Path(f).exists() for f in df.file)
    assert load_volume(df.file[0])[0].shape == (12, 14, 10)  # Analyze pair, its singleton 4th axis squeezed


def _oasis2(root: Path) -> Path:
    rows = [("OAS2_0001", "OAS2_0001_MR1", "Nondemented"), ("OAS2_0001", "OAS2_0001_MR2", "Nondemented"),
            ("OAS2_0002", "OAS2_0002_MR1", "Demented"), ("OAS2_0003", "OAS2_0003_MR1", "Converted"),
            ("OAS2_0003", "OAS2_0003_MR2", "Converted"), ("OAS2_0004", "OAS2_0004_MR1", "Demented")]
    for part, (_, mri, _) in zip(["OAS2_RAW_PART1"] * 3 + ["OAS2_RAW_PART2"] * 3, rows):
        if mri != "OAS2_0004_MR1":
            _analyze(root / part / mri / "RAW" / "mpr-1.nifti.hdr", shape=(10, 12, 8))
    (root / "OAS2_RAW_PART2" / "OAS2_0004_MR1" / "RAW").mkdir(parents=True)
    (root / "OAS2_RAW_PART2" / "OAS2_0004_MR1" / "RAW" / "mpr-1.nifti.hdr").write_bytes(b"not a header")
    pd.DataFrame(rows, columns=["Subject ID", "MRI ID", "Group"]).assign(Visit=[1, 2, 1, 1, 2, 1]).to_csv(
        root / "oasis_longitudinal.csv", index=False)
    return root


@pytest.mark.parametrize("converted, expected", [("AD", "AD"), ("NC", "NC"), ("exclude", None)])
def test_oasis2_sessions_groups_and_the_converted_choice(tmp_path, converted, expected):
    res = import_oasis2(_oasis2(tmp_path / "OASIS2"), converted=converted, out=tmp_path / "manifest")
    m = res.manifest
    assert m.groupby("subject").session.apply(list)["OAS2_0001"] == ["MR1", "MR2"]
    assert set(m.view) == {"sagittal"} and m.set_index("subject").label.get("OAS2_0002") == "AD"
    got = m[m.subject == "OAS2_0003"].label.unique().tolist()
    assert got == ([] if expected is None else [expected])
    reasons = res.skipped.set_index("id").reason
    assert "OAS2_0004_MR1" in reasons and "mpr-1.nifti.hdr" in reasons["OAS2_0004_MR1"]  # unreadable, by name
    assert (tmp_path / "manifest" / "manifest.csv").exists()
    read_manifest(res.manifest_path, classes=["NC", "AD"])  # relative paths resolve from --out


def test_cli_data_import_and_a_folder_without_the_csv(tmp_path, capsys):
    root = _oasis1(tmp_path / "OASIS1")
    assert main(["data", "import", "oasis1", str(root)]) == 0
    out = capsys.readouterr().out
    assert "4 scans of 3 subjects (3 AD, 1 NC)" in out and "3 row(s) left out" in out
    assert (root / "import_skipped.csv").exists()
    (tmp_path / "empty").mkdir()
    assert main(["data", "import", "oasis2", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "oasis_longitudinal.csv" in err and len(err.splitlines()) == 1
    with pytest.raises(OasisError):
        import_oasis1(tmp_path / "empty")
