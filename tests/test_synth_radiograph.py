"""Synthetic MURA-v1.1: the real layout and CSV format, deterministic bytes, ground truth beside, flags on most images."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medvid_core.cache import STAMP
from medvid_core.synth.radiograph import BODY_PARTS, ensure_archive, load_boxes, make_archive


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return ensure_archive(tmp_path_factory.mktemp("mura"), "tiny", seed=3, n_jobs=1)


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != STAMP:
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_layout_and_csvs_are_murav11s(archive):
    assert archive.name == "MURA-v1.1"
    for split in ("train", "valid"):
        paths = (archive / f"{split}_image_paths.csv").read_text().splitlines()
        studies = (archive / f"{split}_labeled_studies.csv").read_text().splitlines()
        assert paths[0].startswith(f"MURA-v1.1/{split}/XR_") and paths[0].endswith(".png")  # no header line
        for line in studies:
            folder, label = line.split(",")
            assert folder.endswith("/") and label in ("0", "1")
            assert folder.rstrip("/").endswith("_positive") == (label == "1")
            assert (archive.parent / folder).is_dir()
        assert all((archive.parent / p).is_file() for p in paths)
        parts = {p.split("/")[2] for p in paths}
        assert parts == {f"XR_{b}" for b in BODY_PARTS}
    train_patients = {p.split("/")[3] for p in (archive / "train_image_paths.csv").read_text().split()}
    valid_patients = {p.split("/")[3] for p in (archive / "valid_image_paths.csv").read_text().split()}
    assert not train_patients & valid_patients  # MURA: no patient in both splits


def test_ground_truth_beside_not_inside(archive):
    assert not any(p.suffix == ".csv" for p in (archive / "train").rglob("*"))
    boxes = load_boxes(archive.parent)
    paths = (archive / "train_image_paths.csv").read_text().split() + \
        (archive / "valid_image_paths.csv").read_text().split()
    positive = [p for p in paths if "_positive/" in p]
    ab = boxes[boxes.kind == "abnormality"]
    assert set(ab.path) == set(positive)  # every abnormal image has its box, no normal image has one
    flagged = set(boxes[boxes.kind == "flag"].path)
    assert 0.6 < len(flagged) / len(paths) < 1.0
    # flags on both classes: the marker does not give the label away
    assert flagged & set(positive) and flagged - set(positive)
    for r in boxes.itertuples():
        w, h = Image.open(archive.parent / r.path).size
        assert 0 <= r.x0 < r.x1 <= w and 0 <= r.y0 < r.y1 <= h, r


def test_images_vary_and_some_are_rgb(archive):
    paths = (archive / "train_image_paths.csv").read_text().split()
    ims = [Image.open(archive.parent / p) for p in paths]
    assert {im.mode for im in ims} == {"L", "RGB"}
    assert len({im.size for im in ims}) > 10
    means = [np.asarray(im.convert("L")).mean() for im in ims]
    assert np.std(means) > 3  # exposure differs between images


def test_same_seed_same_bytes_and_independent_of_jobs(tmp_path, archive):
    make_archive(tmp_path, "tiny", seed=3, n_jobs=2)
    assert _digest(tmp_path) == _digest(archive.parent)


def test_other_seed_differs_and_unknown_preset_is_refused(tmp_path, archive):
    make_archive(tmp_path, "tiny", seed=4, n_jobs=1)
    assert _digest(tmp_path) != _digest(archive.parent)
    with pytest.raises(ValueError, match="preset"):
        make_archive(tmp_path, "huge")


def test_ensure_reuses_an_archive_with_the_same_stamp(archive):
    before = (archive / "train_image_paths.csv").stat().st_mtime_ns
    assert ensure_archive(archive.parent, "tiny", seed=3) == archive
    assert (archive / "train_image_paths.csv").stat().st_mtime_ns == before
    assert isinstance(load_boxes(archive.parent), pd.DataFrame)
