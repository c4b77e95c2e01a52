"""The ImageCLEF-TBT-shaped chest-CT cohort: layout, deterministic bytes, HU anatomy, rough lung masks,
lesions by type, the challenge's imbalance; the label reader refuses bad rows by name."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medvid_core.io.imageclef_tbt import TB_TYPES, LabelError, read_tbt_labels
from medvid_core.io.nifti import load_volume
from medvid_core.synth.chest_ct import PRESETS, Preset, make_cohort

TINY = Preset(train=(2, 1, 1, 1, 1), test=(1, 0, 0, 1, 0), size=48, thickness=(7.5, 10.0))


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    base = tmp_path_factory.mktemp("ct")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(PRESETS, "tiny", TINY)
        yield {name: make_cohort(base / name, "tiny", seed=seed, n_jobs=jobs)
               for name, seed, jobs in (("a", 0, 1), ("b", 0, 2), ("c", 1, 1))}


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_labels(cohorts):
    root = cohorts["a"]
    train = read_tbt_labels(root / "train_labels.csv", images_dir=root / "train")
    test = read_tbt_labels(root / "test_labels.csv", images_dir=root / "test")
    assert list(pd.read_csv(root / "train_labels.csv").columns) == ["FileName", "TypeOfTB"]
    assert sorted(train.TypeOfTB) == [1, 1, 2, 3, 4, 5] and sorted(test.TypeOfTB) == [1, 4]
    assert all(n.startswith("TRN_") for n in train.FileName) and all(n.startswith("TST_") for n in test.FileName)
    for name in train.FileName:
        stem = name.removesuffix(".nii.gz")
        assert (root / "train" / f"{stem}_lungmask.nii.gz").exists() and (root / "train" / f"{stem}_lesions.nii.gz").exists()


def test_same_seed_same_bytes_whatever_the_process_count(cohorts):
    a, b, c = (files(cohorts[k]) for k in "abc")
    assert a == b
    assert a.keys() == c.keys() and a["train/TRN_0001.nii.gz"] != c["train/TRN_0001.nii.gz"]


def test_hounsfield_anatomy_and_varying_depth(cohorts):
    root = cohorts["a"]
    truth = pd.read_csv(root / "train_truth.csv")
    depths = []
    for row in truth.itertuples():
        vol, spacing = load_volume(root / "train" / row.FileName)
        assert vol.shape[:2] == (48, 48) and spacing[2] == row.thickness_mm and vol.shape[2] == row.depth
        assert np.percentile(vol, 5) < -950  # air around the body
        lesions = load_volume(root / "train" / row.FileName.replace(".nii", "_lesions.nii"))[0] > 0
        auto = load_volume(root / "train" / row.FileName.replace(".nii", "_lungmask.nii"))[0] > 0
        miliary = row.TypeOfTB == 4  # its micronodules' partial volume hazes the whole lung
        assert -920 < np.median(vol[auto]) < (-560 if miliary else -700)  # lung parenchyma, ground glass raises it
        assert vol.max() > 400  # bone
        assert lesions.sum() > 0 and lesions.sum() == row.lesion_voxels
        dense = lesions & (vol > -300)
        assert (auto & dense).sum() <= 0.5 * dense.sum()  # the automatic mask misses most dense lesion voxels
        depths.append(vol.shape[2])
    assert len(set(depths)) > 1


def test_miliary_spreads_through_both_lungs_focal_stays_in_one_region(tmp_path, monkeypatch):
    monkeypatch.setitem(PRESETS, "pair", Preset(train=(0, 3, 0, 3, 0), test=(0, 0, 0, 0, 0), size=64, thickness=(5.0,)))
    root = make_cohort(tmp_path, "pair", seed=0, n_jobs=1)
    spread = {2: [], 4: []}
    for row in pd.read_csv(root / "train_labels.csv").itertuples():
        lesions = load_volume(root / "train" / row.FileName.replace(".nii", "_lesions.nii"))[0]
        xyz = np.argwhere(lesions > 0)
        spread[row.TypeOfTB].append(xyz.std(0).mean())
    assert min(spread[4]) > max(spread[2])


def test_presets_follow_the_challenge_imbalance():
    challenge = PRESETS["challenge"]
    assert sum(challenge.train) == 917 and sum(challenge.test) == 421 and challenge.size == 512
    assert challenge.train == (420, 226, 101, 100, 70)
    small = np.array(PRESETS["small"].train) / sum(PRESETS["small"].train)
    assert np.allclose(small, np.array(challenge.train) / 917, atol=0.02)


def test_label_outside_the_five_types_is_refused_by_name(tmp_path):
    bad = tmp_path / "labels.csv"
    bad.write_text("FileName,TypeOfTB\nTRN_0001.nii.gz,1\nTRN_0002.nii.gz,6\n")
    with pytest.raises(LabelError, match=r"labels\.csv: row 3 \(TRN_0002\.nii\.gz\): TypeOfTB .6. is not one of"):
        read_tbt_labels(bad)
    bad.write_text("FileName,Type\nTRN_0001.nii.gz,1\n")
    with pytest.raises(LabelError, match=r"labels\.csv: missing column\(s\) TypeOfTB"):
        read_tbt_labels(bad)
    bad.write_text("FileName,TypeOfTB\nTRN_0001.nii.gz,1\n")
    with pytest.raises(LabelError, match=r"labels\.csv: 1 listed volume\(s\) not found"):
        read_tbt_labels(bad, images_dir=tmp_path)
    assert len(TB_TYPES) == 5
