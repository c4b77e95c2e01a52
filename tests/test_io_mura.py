"""MURA reader: one row per image, tree/CSV disagreements and unreadable PNGs reported by name."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medvid_core.io.mura import MuraError, load_radiograph, read_mura
from medvid_core.synth.radiograph import make_archive


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mura")
    make_archive(root, "tiny", seed=1, n_jobs=1)
    return root


@pytest.fixture
def copy(pristine, tmp_path) -> Path:
    shutil.copytree(pristine / "MURA-v1.1", tmp_path / "MURA-v1.1")
    return tmp_path


def test_one_row_per_image_with_csv_labels(pristine):
    df = read_mura(pristine, "train")
    listed = (pristine / "MURA-v1.1/train_image_paths.csv").read_text().split()
    assert len(df) == len(listed) and df.path.is_unique
    assert set(df.body_part) == {"ELBOW", "FINGER", "FOREARM", "HAND", "HUMERUS", "SHOULDER", "WRIST"}
    assert (df.label == df.study.str.contains("_positive").astype(int)).all()
    assert df.patient.str.match(r"patient\d{5}$").all()
    assert df.groupby("study").patient.nunique().max() == 1
    assert df.attrs["skipped"] == []
    assert len(pd.concat([df, df])) == 2 * len(df)  # attrs survive a concat
    # the archive folder itself is accepted too
    assert read_mura(pristine / "MURA-v1.1", "valid").equals(read_mura(pristine, "valid"))


def test_study_folder_missing_from_csv_is_named(copy):
    csv = copy / "MURA-v1.1/train_labeled_studies.csv"
    lines = csv.read_text().splitlines()
    dropped = lines[2].split(",")[0]
    csv.write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    with pytest.raises(MuraError, match="study folders on disk missing") as err:
        read_mura(copy, "train")
    assert dropped in str(err.value) and "\n" not in str(err.value)
    with pytest.warns(UserWarning) as caught:
        df = read_mura(copy, "train", on_mismatch="skip")
    assert any("skipping 1 study" in str(w.message) for w in caught)
    # its images are skipped too, each with its own skip-log row
    assert any("images whose study is not in" in str(w.message) for w in caught)
    assert dropped in {r["path"] for r in df.attrs["skipped"]}
    assert not df.study.eq(dropped).any()


def test_csv_row_whose_folder_is_missing_is_named(copy):
    folder = (copy / "MURA-v1.1/valid_labeled_studies.csv").read_text().splitlines()[0].split(",")[0]
    shutil.rmtree(copy / folder)
    with pytest.raises(MuraError, match="CSV studies whose folder is missing") as err:
        read_mura(copy, "valid")
    assert folder in str(err.value)


def test_label_disagreeing_with_folder_name_is_named(copy):
    csv = copy / "MURA-v1.1/train_labeled_studies.csv"
    lines = csv.read_text().splitlines()
    folder, label = lines[0].split(",")
    lines[0] = f"{folder},{1 - int(label)}"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(MuraError, match="disagrees with the folder name") as err:
        read_mura(copy, "train")
    assert folder in str(err.value)


def test_unlisted_image_is_named(copy):
    first = (copy / "MURA-v1.1/train_image_paths.csv").read_text().split()[0]
    extra = copy / first.replace("image1.png", "image9.png")
    shutil.copy(copy / first, extra)
    with pytest.raises(MuraError, match="missing from the image-paths CSV") as err:
        read_mura(copy, "train")
    assert "image9.png" in str(err.value)


def test_truncated_png_is_refused_by_name(copy):
    path = Path(read_mura(copy, "train").path[0])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MuraError, match="cannot read PNG") as err:
        load_radiograph(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(MuraError, match="not found"):
        load_radiograph(path.with_name("nope.png"))


def test_radiograph_is_float_gray_in_unit_range(pristine):
    df = read_mura(pristine, "train")
    for p in df.path[:5]:
        img = load_radiograph(p)
        assert img.ndim == 2 and img.dtype == np.float32 and 0 <= img.min() < img.max() <= 1


def test_no_archive_is_a_clear_error(tmp_path):
    with pytest.raises(MuraError, match="no MURA-v1.1"):
        read_mura(tmp_path, "train")
