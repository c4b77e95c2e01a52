"""Synthetic head-CT cohort: RSNA layout and tags, labels agree with the masks, bad files present, same bytes twice."""
from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import pydicom
import pytest

from medvid_core.io.dicom import DicomError, read_hu
from medvid_core.io.rsna import SUBTYPES, read_rsna_labels
from medvid_core.synth.head_ct import PRESETS, generate_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return generate_cohort(tmp_path_factory.mktemp("ct") / "tiny", preset="tiny", seed=3)


def digest(root):
    h = hashlib.sha1()
    for f in sorted(root.rglob("*")):
        if f.is_file():
            h.update(f.relative_to(root).as_posix().encode() + f.read_bytes())
    return h.hexdigest()


def test_layout_and_tags(cohort):
    files = sorted((cohort / "stage_2_train").glob("*.dcm"))
    truth = pd.read_csv(cohort / "truth.csv")
    assert len(files) == len(truth) and truth["patient"].nunique() == PRESETS["tiny"].n_subjects
    assert all(re.fullmatch(r"ID_[0-9a-f]{9}\.dcm", f.name) for f in files)
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    for tag in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "ImagePositionPatient",
                "ImageOrientationPatient", "PixelSpacing", "RescaleSlope", "RescaleIntercept",
                "WindowCenter", "WindowWidth", "BitsStored", "PixelRepresentation"):
        assert tag in ds, tag
    assert ds.Modality == "CT"
    # a whole axial stack per subject: z strictly increasing at the slice spacing
    for _, sub in truth.groupby("patient"):
        assert np.allclose(np.diff(sub["z"]), PRESETS["tiny"].slice_mm)


def test_label_csv_matches_truth_and_masks(cohort):
    text = (cohort / "stage_2_train.csv").read_text().splitlines()
    assert text[0] == "ID,Label" and re.fullmatch(r"ID_[0-9a-f]{9}_epidural,[01]", text[1])
    assert len(text) - 1 > len(set(text[1:]))  # some rows are duplicated, as in the real file
    labels = read_rsna_labels(cohort / "stage_2_train.csv")
    truth = pd.read_csv(cohort / "truth.csv").set_index("image")
    annotated = truth[truth["annotated"]]
    assert set(labels.index) == set(annotated.index)
    assert (~truth["annotated"]).sum() > 0  # some files have no labels at all
    assert (labels[list(SUBTYPES)] == annotated.loc[labels.index, list(SUBTYPES)]).all().all()
    assert labels["any"].mean() < 0.5  # negatives outnumber positives
    assert (labels["any"] == labels[list(SUBTYPES[:5])].max(axis=1)).all()
    # every positive slice has that subtype's mask; every mask-free slice is negative
    for patient, sub in truth.groupby("patient"):
        m = np.load(cohort / "masks" / f"{patient}.npz")
        assert list(m["images"]) == list(sub.sort_values("slice").index)
        for k, t in enumerate(SUBTYPES[:5]):
            area = ((m["bits"] >> k) & 1).sum(axis=(1, 2))
            assert (area[sub.sort_values("slice")[t].to_numpy() == 1] > 0).all()
            np.testing.assert_array_equal(area, sub.sort_values("slice")[f"{t}_px"])


def test_hu_plausible_and_bleeds_hyperdense(cohort):
    truth = pd.read_csv(cohort / "truth.csv")
    pos = truth[(truth["any"] == 1) & ~truth["corrupt"]]
    assert len(pos) > 0
    brain_hu, blood_hu = [], []
    for _, r in pos.iterrows():
        hu = read_hu(cohort / "stage_2_train" / f"{r.image}.dcm")
        bits = np.load(cohort / "masks" / f"{r.patient}.npz")["bits"][r.slice]
        assert hu.min() >= -1100 and hu.max() > 1000  # air and bone
        soft = (hu > 15) & (hu < 50) & (bits == 0)
        brain_hu.append(np.median(hu[soft]))
        blood_hu.append(np.median(hu[bits > 0]))
    assert 20 < np.median(brain_hu) < 45
    assert np.median(blood_hu) > np.median(brain_hu) + 10


def test_bad_and_odd_files_present(cohort):
    truth = pd.read_csv(cohort / "truth.csv")
    assert truth["corrupt"].sum() == 1
    bad = truth.loc[truth["corrupt"], "image"].iloc[0]
    with pytest.raises(DicomError, match=bad):
        read_hu(cohort / "stage_2_train" / f"{bad}.dcm")
    assert {"explicit", "rle", "j2k", "jls"} <= set(truth["syntax"]) and truth["rsna_quirk"].any()
    quirky = truth[truth["rsna_quirk"] & ~truth["corrupt"]].iloc[0]
    ds = pydicom.dcmread(cohort / "stage_2_train" / f"{quirky.image}.dcm")
    assert ds.BitsStored == 12 and ds.PixelRepresentation == 0 and float(ds.RescaleIntercept) > -100
    assert read_hu(cohort / "stage_2_train" / f"{quirky.image}.dcm").min() >= -1000


def test_deterministic_and_seed_dependent(cohort, tmp_path):
    again = generate_cohort(tmp_path / "again", preset="tiny", seed=3, n_jobs=1)  # the fixture used 2 processes
    assert digest(again) == digest(cohort)
    other = generate_cohort(tmp_path / "other", preset="tiny", seed=4)
    assert digest(other) != digest(cohort)
