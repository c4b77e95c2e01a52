"""read_rsna_labels: the long ID,Label CSV pivoted to one row per image, duplicates tolerated, conflicts named."""
from __future__ import annotations

import pytest

from medvid_core.io.rsna import SUBTYPES, LabelError, read_rsna_labels


def rows(image, labels):
    return [f"{image}_{t},{v}" for t, v in zip(SUBTYPES, labels)]


def write(tmp_path, lines, header="ID,Label"):
    path = tmp_path / "labels.csv"
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def test_pivot_order_and_values(tmp_path):
    lines = rows("ID_12cadc6af", [0, 0, 0, 0, 0, 0]) + rows("ID_38fd7baa0", [0, 1, 0, 0, 1, 1])
    path = write(tmp_path, lines[::-1])  # row order must not matter
    df = read_rsna_labels(path)
    assert list(df.columns) == list(SUBTYPES)
    assert df.loc["ID_38fd7baa0"].tolist() == [0, 1, 0, 0, 1, 1]
    assert df.loc["ID_12cadc6af"].sum() == 0
    assert len(df) == 2


def test_duplicate_rows_tolerated_and_unlabelled_images_absent(tmp_path):
    lines = rows("ID_aaaaaaaaa", [1, 0, 0, 0, 0, 1])
    path = write(tmp_path, lines + lines[:2])
    df = read_rsna_labels(path)
    assert len(df) == 1 and df.loc["ID_aaaaaaaaa", "epidural"] == 1
    assert "ID_bbbbbbbbb" not in df.index  # a DICOM file without rows stays out: the caller counts it


def test_conflicting_rows_are_named(tmp_path):
    lines = rows("ID_aaaaaaaaa", [1, 0, 0, 0, 0, 1]) + ["ID_aaaaaaaaa_epidural,0"]
    path = write(tmp_path, lines)
    with pytest.raises(LabelError) as err:
        read_rsna_labels(path)
    assert "ID_aaaaaaaaa_epidural" in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("lines,header,words", [
    (rows("ID_a", [0] * 6)[:5], "ID,Label", "lack"),
    (["ID_a_fracture,1"], "ID,Label", "unknown subtype"),
    (["ID_a_any,yes"], "ID,Label", "other than 0/1"),
    (rows("ID_a", [0] * 6), "Image,Value", "header"),
])
def test_bad_files(tmp_path, lines, header, words):
    path = write(tmp_path, lines, header)
    with pytest.raises(LabelError) as err:
        read_rsna_labels(path)
    msg = str(err.value)
    assert words in msg and str(path) in msg and "\n" not in msg
