"""Manifests, subject-level splits, the leakage guard, frame preparation and the clip dataset."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from medvid_core.data import (
    MANIFEST_COLUMNS,
    FrameStore,
    LeakageError,
    ManifestError,
    VolumeDataset,
    check_no_leakage,
    leakage_report,
    read_manifest,
    subject_split,
    subsample_subjects,
)
from medvid_core.io.nifti import load_volume
from medvid_core.sampling import volume_to_frames

CLASSES = ["NC", "PD"]
SHAPE = (12, 10, 8)  # RAS; sagittal frames = 12 slices of 8 x 10 (rows x cols)
N_SUBJECTS = 12
SESSIONS = {1: 3, 4: 3, 7: 3, 8: 2}  # subject number -> sessions; the rest have one


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """12 subjects (6 NC, 6 PD), four of them with several sessions, tiny random volumes."""
    root = tmp_path_factory.mktemp("cohort")
    rng = np.random.default_rng(0)
    rows = []
    for s in range(1, N_SUBJECTS + 1):
        label = CLASSES[s % 2]
        for ses in range(1, SESSIONS.get(s, 1) + 1):
            rel = f"sub-{s:02d}/ses-{ses}/sub-{s:02d}_ses-{ses}_T1w.nii.gz"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            data = (0.3 + 0.7 * rng.random(SHAPE)).astype(np.float32)  # every slice has content
            nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])), root / rel)
            rows.append(dict(subject=f"sub-{s:02d}", session=ses, path=rel, label=label, view="sagittal"))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


@pytest.fixture(scope="module")
def df(cohort) -> pd.DataFrame:
    return read_manifest(cohort / "manifest.csv", classes=CLASSES)


def write_variant(cohort: Path, name: str, edit) -> Path:
    raw = pd.read_csv(cohort / "manifest.csv")
    path = cohort / name
    edit(raw).to_csv(path, index=False)
    return path


# ------------------------------------------------------------------- read_manifest


def test_read_manifest_adds_target_and_file(cohort, df):
    n_rows = N_SUBJECTS + sum(v - 1 for v in SESSIONS.values())
    assert len(df) == n_rows == 19
    assert list(df.columns[: len(MANIFEST_COLUMNS)]) == list(MANIFEST_COLUMNS)
    assert (df["target"] == df["label"].map({"NC": 0, "PD": 1})).all()
    assert df["file"].tolist() == [str(cohort / p) for p in df["path"]]
    assert all(Path(f).exists() for f in df["file"])


def test_missing_manifest(tmp_path):
    path = tmp_path / "manifest.csv"
    with pytest.raises(ManifestError, match="manifest not found") as err:
        read_manifest(path, classes=CLASSES)
    assert str(path) in str(err.value)


def test_missing_column(cohort):
    path = write_variant(cohort, "no_view.csv", lambda d: d.drop(columns=["view", "label"]))
    with pytest.raises(ManifestError) as err:
        read_manifest(path, classes=CLASSES)
    msg = str(err.value)
    assert str(path) in msg and "label" in msg and "view" in msg and "subject" not in msg.split(":", 1)[1]


def test_label_outside_classes_names_row_and_label(cohort):
    def edit(d):
        d.loc[3, "label"] = "AD"
        return d

    path = write_variant(cohort, "bad_label.csv", edit)
    with pytest.raises(ManifestError) as err:
        read_manifest(path, classes=CLASSES)
    msg = str(err.value)
    bad_path = pd.read_csv(path).loc[3, "path"]
    assert "row 5" in msg  # 1-based file line: header is line 1, data index 3 is line 5
    assert "'AD'" in msg and bad_path in msg and str(path) in msg


def test_listed_file_missing_names_it(cohort):
    def edit(d):
        d.loc[2, "path"] = "sub-99/ses-1/ghost_T1w.nii.gz"
        return d

    path = write_variant(cohort, "ghost.csv", edit)
    with pytest.raises(ManifestError) as err:
        read_manifest(path, classes=CLASSES)
    msg = str(err.value)
    assert "1 listed file(s) missing" in msg
    assert str(cohort / "sub-99/ses-1/ghost_T1w.nii.gz") in msg


def test_manifest_error_is_value_error():
    assert issubclass(ManifestError, ValueError) and issubclass(LeakageError, ValueError)


# ------------------------------------------------------------------- splits


def test_subject_split_is_stratified_by_subject(df):
    train, test = subject_split(df, test_size=0.3, seed=0)
    tr_subj, te_subj = set(train["subject"]), set(test["subject"])
    assert not tr_subj & te_subj
    assert tr_subj | te_subj == set(df["subject"])
    assert (len(tr_subj), len(te_subj)) == (8, 4)  # 7:3 of 12 subjects, test rounded up
    # stratified: half of each side's subjects are patients
    for part in (train, test):
        per_subject = part.groupby("subject")["target"].first()
        assert per_subject.sum() * 2 == len(per_subject)
    # every session of a subject stays with it
    counts = df.groupby("subject").size()
    for part in (train, test):
        assert (part.groupby("subject").size() == counts[part["subject"].unique()]).all()
    assert len(train) + len(test) == len(df)
    assert list(train.index) == list(range(len(train))) and list(test.index) == list(range(len(test)))


def test_subject_split_is_deterministic_per_seed(df):
    a = subject_split(df, seed=3)[1]
    b = subject_split(df, seed=3)[1]
    pd.testing.assert_frame_equal(a, b)
    test_sets = {frozenset(subject_split(df, seed=s)[1]["subject"]) for s in range(6)}
    assert len(test_sets) > 1


def test_subject_split_takes_pyarrow_backed_subject_ids(df):
    # pandas 3 stores strings in pyarrow when it is installed; sklearn cannot index that Index (seen on
    # the GPU image: "only integer scalar arrays can be converted to a scalar index")
    pytest.importorskip("pyarrow")
    arrow = df.astype({"subject": "string[pyarrow]"})
    assert set(subject_split(arrow, seed=0)[1]["subject"]) == set(subject_split(df, seed=0)[1]["subject"])


def test_subsample_subjects_keeps_ratio_and_sessions(df):
    assert subsample_subjects(df, frac=1.0) is df
    half = subsample_subjects(df, frac=0.5, seed=0)
    per_subject = half.groupby("subject")["target"].first()
    assert len(per_subject) == 6 and per_subject.sum() == 3  # 6 of 12 subjects, still half patients
    counts = df.groupby("subject").size()
    assert (half.groupby("subject").size() == counts[per_subject.index]).all()  # all sessions kept
    pd.testing.assert_frame_equal(half, subsample_subjects(df, frac=0.5, seed=0))
    for bad in (0, -0.5, 1.5):
        with pytest.raises(ValueError, match="cohort_scale must be in"):
            subsample_subjects(df, frac=bad)


def test_leakage_report_shows_the_overlap(df):
    a, b = df[df["subject"] <= "sub-06"], df[df["subject"] >= "sub-05"]
    report = leakage_report(a, b)
    assert report["shared"] == ["sub-05", "sub-06"] and report["n_shared"] == 2
    assert report["train_rows_shared"] == a["subject"].isin(["sub-05", "sub-06"]).sum()
    assert report["test_rows_shared"] == b["subject"].isin(["sub-05", "sub-06"]).sum()
    assert report["test_fraction_shared"] == pytest.approx(report["test_rows_shared"] / len(b))
    clean = leakage_report(df[df["subject"] <= "sub-04"], df[df["subject"] > "sub-04"])
    assert clean["n_shared"] == 0 and clean["test_fraction_shared"] == 0.0


def test_check_no_leakage(df):
    a, b = df[df["subject"] <= "sub-06"], df[df["subject"] > "sub-06"]
    check_no_leakage(a, b)  # disjoint: no error
    with pytest.raises(LeakageError) as err:
        check_no_leakage(a, df[df["subject"] >= "sub-06"])
    assert "1 subject(s)" in str(err.value) and "'sub-06'" in str(err.value)
    with pytest.raises(LeakageError, match="4 subject"):
        check_no_leakage(a, df[df["subject"].isin(["sub-01", "sub-02", "sub-04", "sub-05", "sub-09"])])
    with pytest.raises(LeakageError):
        check_no_leakage(a, b, key="session")  # sessions 1..3 are on both sides


# ------------------------------------------------------------------- frames and dataset


def _prepare(size):
    """A minimal preprocessing for FrameStore: the view's slices, resized to size x size."""

    def prepare(file, view):
        frames = torch.from_numpy(volume_to_frames(load_volume(file)[0], view).copy()).float().unsqueeze(1)
        return F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)[:, 0]

    return prepare


def test_frame_store_caches(df):
    store = FrameStore(_prepare(12))
    a = store(df.loc[0, "file"], "sagittal")
    assert store(df.loc[0, "file"], "sagittal") is a
    assert store(df.loc[0, "file"], "axial").shape == (SHAPE[2], 12, 12)
    nocache = FrameStore(_prepare(12), cache=False)
    b = nocache(df.loc[0, "file"], "sagittal")
    assert nocache(df.loc[0, "file"], "sagittal") is not b
    assert torch.equal(a, b)


@pytest.mark.parametrize("k,size", [(4, 16), (3, 8)])
def test_item_shape_and_type(df, k, size):
    ds = VolumeDataset(df, store=FrameStore(_prepare(size)), num_segments=k, train=False)
    assert len(ds) == len(df)
    x, y = ds[5]
    assert x.shape == (1, k, size, size) and x.dtype == torch.float32
    assert isinstance(y, int) and y == int(df.loc[5, "target"])
    np.testing.assert_array_equal(ds.targets, df["target"].to_numpy())


def test_test_mode_takes_the_middle_frames_every_time(df):
    store = FrameStore(_prepare(16))
    ds = VolumeDataset(df, store=store, num_segments=4, train=False)
    x1, _ = ds[2]
    x2, _ = ds[2]
    assert torch.equal(x1, x2)
    frames = store(df.loc[2, "file"], "sagittal")
    assert torch.equal(x1[0], frames[[1, 4, 7, 10]].float())  # middles of 4 segments of 3 slices


def test_train_mode_varies_and_is_seeded(df):
    store = FrameStore(_prepare(16))
    ds = VolumeDataset(df, store=store, num_segments=4, train=True, seed=0)
    draws = [ds[2][0] for _ in range(10)]
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
    again = VolumeDataset(df, store=store, num_segments=4, train=True, seed=0)
    assert all(torch.equal(a, again[2][0]) for a in draws)
    frames = store(df.loc[2, "file"], "sagittal").float()
    for d in draws:  # each frame of the clip is one slice from its own segment
        for j in range(4):
            assert any(torch.equal(d[0, j], frames[i]) for i in range(3 * j, 3 * j + 3))


def test_transform_sees_k_frames(df):
    seen = []

    def transform(clip):
        seen.append(clip.shape)
        return clip * 0 + 7

    ds = VolumeDataset(df, store=FrameStore(_prepare(8)), num_segments=5, train=True, transform=transform)
    x, _ = ds[0]
    assert seen == [(5, 8, 8)]
    assert x.shape == (1, 5, 8, 8) and (x == 7).all()


class _Noisy(torch.utils.data.Dataset):
    """Items that draw from torch, NumPy and random, as augmentations do."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        import random

        return torch.rand(()) + float(np.random.rand()) + random.random()


def _epoch(num_workers: int) -> torch.Tensor:
    from torch.utils.data import DataLoader

    from medvid_core.data import worker_options

    g = torch.Generator().manual_seed(0)
    return torch.cat(list(DataLoader(_Noisy(), batch_size=2, shuffle=True, generator=g, **worker_options(num_workers))))


def test_loader_workers_are_seeded_so_reruns_are_identical():
    assert torch.equal(_epoch(2), _epoch(2))


def test_no_workers_adds_no_keyword():
    from medvid_core.data import worker_options

    assert worker_options(0) == {}
    with pytest.raises(ValueError, match="num_workers"):
        worker_options(-1)


# ------------------------------------------------------------------- the on-disk frame store


def _items(df):
    return list(zip(df["file"], df["view"]))


def test_built_frame_store_reads_what_prepare_gives(df, tmp_path):
    prepare = _prepare(12)
    store = FrameStore.build(_items(df), prepare, key={"size": 12}, folder=tmp_path / "frames")
    assert len(store.arrays) == len(df) and not store.cache
    for f, v in _items(df):
        a, b = store(f, v), prepare(f, v)
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert store(df.loc[0, "file"], "axial").shape == (SHAPE[2], 12, 12)  # not in the store: prepared, not kept
    assert not store._frames


def test_lazy_dataset_gives_the_in_memory_datasets_tensors_and_draws(df, tmp_path):
    disk = FrameStore.build(_items(df), _prepare(16), key={"size": 16}, folder=tmp_path / "frames")
    for train in (False, True):
        a = VolumeDataset(df, store=FrameStore(_prepare(16)), num_segments=4, train=train, seed=3)
        b = VolumeDataset(df, store=disk, num_segments=4, train=train, seed=3)
        for i in [*range(len(df)), 2, 2, 5]:
            (xa, ya), (xb, yb) = a[i], b[i]
            assert ya == yb and torch.equal(xa, xb)


def test_built_frame_store_names_a_file_it_cannot_read(df, tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti")
    items = [*_items(df)[:2], (str(bad), "sagittal")]
    with pytest.raises(ValueError, match=r"broken\.nii\.gz: cannot read NIfTI") as info:
        FrameStore.build(items, _prepare(8), key={"size": 8}, folder=tmp_path / "frames")
    assert "\n" not in str(info.value)


def _draws(ds, num_workers):
    from torch.utils.data import DataLoader

    from medvid_core.data import worker_options

    g = torch.Generator().manual_seed(0)
    return torch.cat([x for x, _ in DataLoader(ds, batch_size=3, shuffle=True, generator=g,
                                               **worker_options(num_workers))])


def test_dataset_workers_draw_their_own_deterministic_slices(df, tmp_path):
    store = FrameStore.build(_items(df), _prepare(8), key={"size": 8}, folder=tmp_path / "frames")
    ds = VolumeDataset(df, store=store, num_segments=4, train=True, seed=0)
    first, again = _draws(ds, 2), _draws(ds, 2)
    assert torch.equal(first, again)
    assert torch.equal(_draws(ds, 0), _draws(VolumeDataset(df, store=store, num_segments=4, train=True, seed=0), 0))
