"""`python -m medvid_core data check STUDY PATH` on small trees in each real layout, each with a corrupt
file, a file without a label and a label without a file: every one is named, the exit code says whether
the study can run, and nothing is written into PATH."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest

from medvid_core.cli import main
from medvid_core.datacheck import check
from medvid_core.io.rsna import SUBTYPES
from medvid_core.synth.action_video import write_avi
from medvid_core.synth.head_ct import write_ct_slice
from medvid_core.synth.radiograph import make_archive


def listing(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# --------------------------------------------------------------------------- RSNA stage 2


@pytest.fixture
def rsna(tmp_path) -> Path:
    folder = tmp_path / "stage_2_train"
    folder.mkdir()
    hu = np.full((32, 32), 40.0, np.float32)
    for k, image in enumerate(["ID_good", "ID_corrupt", "ID_unlabelled"]):
        write_ct_slice(folder / f"{image}.dcm", hu, patient="ID_p", study_uid="1.2", series_uid="1.2.3",
                       sop_uid=f"1.2.3.{k}", position=(0.0, 0.0, 5.0 * k), spacing=0.5)
    ds = pydicom.dcmread(folder / "ID_corrupt.dcm")
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]  # as RSNA's ID_6431af929
    ds.save_as(folder / "ID_corrupt.dcm", enforce_file_format=True)
    rows = [(f"{image}_{s}", 0) for image in ["ID_good", "ID_corrupt", "ID_nofile"] for s in SUBTYPES]
    pd.DataFrame(rows, columns=["ID", "Label"]).to_csv(tmp_path / "stage_2_train.csv", index=False)
    return tmp_path


def test_rsna_names_the_corrupt_file_and_counts_both_mismatches(rsna, capsys):
    before = listing(rsna)
    assert main(["data", "check", "ich", str(rsna)]) == 0  # the protocol skips corrupt slices: it can run
    out = capsys.readouterr().out
    assert listing(rsna) == before
    corrupt = [ln for ln in out.splitlines() if "ID_corrupt.dcm" in ln]
    assert len(corrupt) == 1 and "truncated" in corrupt[0]
    assert "ID_good.dcm:" not in out
    assert "ID_nofile.dcm: label row without a file" in out
    res = check("ich", rsna)
    counts = {what: found for what, found, _ in res.counts}
    assert counts["DICOM files"] == 3 and counts["files without a label row"] == 1
    assert counts["label rows without a file"] == 1 and counts["unreadable DICOM files"] == 1
    assert "load_size=64" in res.estimate["disk"] and "bounded" in res.estimate["memory"]


def test_rsna_without_the_layout_cannot_run(tmp_path, capsys):
    assert main(["data", "check", "ich", str(tmp_path)]) == 1
    assert "stage_2_train.csv" in capsys.readouterr().out


def test_rsna_estimate_follows_the_parameters(rsna):
    small = check("ich", rsna, load_size=64).estimate["disk"]
    large = check("ich", rsna, load_size=256).estimate["disk"]
    assert small != large and "load_size=256" in large


# --------------------------------------------------------------------------- MURA-v1.1


@pytest.fixture(scope="module")
def mura_pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mura")
    make_archive(root, "tiny", seed=1, n_jobs=1)
    return root


def test_mura_clean_archive_can_run(mura_pristine):
    res = check("mura_zoom", mura_pristine)
    assert res.ok, res.report()
    counts = {what: found for what, found, _ in res.counts}
    assert counts["train images"] > 0 and counts["unreadable images"] == 0


def test_mura_truncated_png_and_missing_study_are_named(mura_pristine, tmp_path, capsys):
    shutil.copytree(mura_pristine / "MURA-v1.1", tmp_path / "MURA-v1.1")
    pngs = sorted((tmp_path / "MURA-v1.1" / "train").rglob("*.png"))
    truncate(pngs[0])
    gone = sorted((tmp_path / "MURA-v1.1" / "valid").glob("*/*/*"))[0]  # a labelled study without its folder
    shutil.rmtree(gone)
    before = listing(tmp_path)
    assert main(["data", "check", "mura_zoom", str(tmp_path / "MURA-v1.1")]) == 1
    out = capsys.readouterr().out
    assert listing(tmp_path) == before
    assert any(str(pngs[0]) in ln for ln in out.splitlines()), out
    assert gone.name in out and "can run: no" in out


# --------------------------------------------------------------------------- ImageCLEF TB and UCF50 (ViPTT-Net)


def write_volume(path: Path, size: int = 8) -> None:
    vol = np.arange(size ** 3, dtype=np.int16).reshape(size, size, size)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), path)


@pytest.fixture
def tbt(tmp_path) -> Path:
    for split, names in {"train": ["TRN_00", "TRN_01"], "test": ["TST_00"]}.items():
        (tmp_path / split).mkdir()
        for n in names:
            write_volume(tmp_path / split / f"{n}.nii.gz")
        pd.DataFrame({"FileName": [f"{n}.nii.gz" for n in names], "TypeOfTB": [1] * len(names)}).to_csv(
            tmp_path / f"{split}_labels.csv", index=False)
    write_volume(tmp_path / "train" / "TRN_99.nii.gz")  # no label row
    return tmp_path


def test_tbt_corrupt_volume_and_unlabelled_volume_are_named(tbt, capsys):
    truncate(tbt / "train" / "TRN_01.nii.gz")
    before = listing(tbt)
    assert main(["data", "check", "viptt_net", str(tbt)]) == 1
    out = capsys.readouterr().out
    assert listing(tbt) == before
    assert "TRN_01.nii.gz" in out and "TRN_00.nii.gz:" not in out
    assert "TRN_99.nii.gz: volume without a label row" in out


def test_tbt_label_row_without_a_file_cannot_run(tbt):
    (tbt / "test" / "TST_00.nii.gz").unlink()
    res = check("viptt_net", tbt)
    assert not res.ok and any("TST_00" in r for r in res.fatal)


def test_ucf50_truncated_clip_is_named(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (12, 32, 32, 3), dtype=np.uint8)
    for c in ("Biking", "Diving"):
        (tmp_path / "UCF50" / c).mkdir(parents=True)
        for k in range(2):
            write_avi(tmp_path / "UCF50" / c / f"v_{c}_g01_c0{k}.avi", frames)
    bad = tmp_path / "UCF50" / "Diving" / "v_Diving_g01_c01.avi"
    truncate(bad, 0.4)
    res = check("viptt_net", tmp_path, video_classes=["Biking", "Diving"], depth=8, height=16, width=16)
    assert not res.ok
    assert [p for p in res.problems if str(bad) in p] and len(res.problems) == 1
    res = check("viptt_net", tmp_path, video_classes=["Biking", "Rowing"])
    assert any("Rowing" in r for r in res.fatal)


# --------------------------------------------------------------------------- manifest cohort (Video4MRI)


def test_manifest_missing_and_corrupt_files_are_named(tmp_path, capsys):
    for k in range(3):
        write_volume(tmp_path / f"s{k}.nii.gz")
    truncate(tmp_path / "s1.nii.gz")
    pd.DataFrame({"subject": ["a", "b", "c", "d"], "session": [1, 1, 1, 1],
                  "path": ["s0.nii.gz", "s1.nii.gz", "s2.nii.gz", "s3.nii.gz"],
                  "label": ["NC", "AD", "NC", "AD"], "view": ["axial"] * 4}).to_csv(tmp_path / "manifest.csv",
                                                                                  index=False)
    before = listing(tmp_path)
    assert main(["data", "check", "video4mri", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert listing(tmp_path) == before
    assert f"{tmp_path / 's3.nii.gz'}: listed in the manifest, file missing" in out
    assert "s1.nii.gz" in out and "s0.nii.gz:" not in out and "s2.nii.gz:" not in out


def test_unknown_study_is_a_usage_error(tmp_path, capsys):
    assert main(["data", "check", "lecture5_3d_video", str(tmp_path)]) == 2
    assert "study must be one of" in capsys.readouterr().err
    assert not os.listdir(tmp_path)
