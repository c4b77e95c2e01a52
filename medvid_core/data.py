"""Datasets over manifests, subject-level splits and the leakage guard.

A cohort is a folder with `manifest.csv` (columns subject, session, path, label, view;
paths relative to the folder). The synthetic cohorts are written that way, and a real
PPMI/ADNI/OASIS download converted to NIfTI needs only such a CSV beside it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset

from .io.nifti import load_volume
from .sampling import SegmentSampler, volume_to_frames

MANIFEST_COLUMNS = ("subject", "session", "path", "label", "view")


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and the row."""


class LeakageError(ValueError):
    """The same subject on both sides of a split."""


def read_manifest(path: str | Path, *, classes: list[str]) -> pd.DataFrame:
    """Read and check a manifest; adds `target` (class index) and absolute `file` columns."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: manifest not found")
    df = pd.read_csv(path)
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{path}: missing column(s) {', '.join(missing)}")
    bad = df.loc[~df["label"].isin(classes)]
    if len(bad):
        row = bad.index[0]
        raise ManifestError(f"{path}: row {row + 2} ({bad.loc[row, 'path']}) has label "
                            f"{bad.loc[row, 'label']!r}, not one of {classes}")
    df = df.assign(target=df["label"].map(classes.index), file=[str(path.parent / p) for p in df["path"]])
    absent = [f for f in df["file"] if not Path(f).exists()]
    if absent:
        raise ManifestError(f"{path}: {len(absent)} listed file(s) missing, first: {absent[0]}")
    return df


def subject_split(df: pd.DataFrame, *, test_size: float = 0.3, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified split by subject: all sessions of a subject fall on one side."""
    subjects = df.groupby("subject")["target"].agg(lambda t: t.mode().iloc[0])
    train_ids, test_ids = train_test_split(subjects.index, test_size=test_size, random_state=seed,
                                           stratify=subjects.values)
    train, test = df[df["subject"].isin(train_ids)], df[df["subject"].isin(test_ids)]
    check_no_leakage(train, test)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def subsample_subjects(df: pd.DataFrame, *, frac: float, seed: int = 0) -> pd.DataFrame:
    """A stratified random `frac` of the subjects, each with all its sessions: a laptop-sized cohort."""
    if not 0 < frac <= 1:
        raise ValueError(f"cohort_scale must be in (0, 1], got {frac}")
    return df if frac == 1 else subject_split(df, test_size=1 - frac, seed=seed)[0]


def check_no_leakage(train: pd.DataFrame, test: pd.DataFrame, *, key: str = "subject") -> None:
    shared = sorted(set(train[key]) & set(test[key]))
    if shared:
        raise LeakageError(f"{len(shared)} {key}(s) on both sides of the split, e.g. {shared[:3]}")


def prepare_frames(file: str, view: str, image_size: int) -> torch.Tensor:
    """Volume file -> (frames, image_size, image_size) float16 in [0, ~1].

    Slices with no head in them are trimmed, each slice is padded to a square and resized
    (antialiased), intensities are scaled by the volume's 99.5th percentile. That is all:
    like Video4MRI, no skull stripping or registration.
    """
    volume, _ = load_volume(file)
    frames = volume_to_frames(volume, view)
    scale = np.percentile(frames, 99.5) or 1.0
    frames = frames / scale
    keep = np.flatnonzero(frames.reshape(len(frames), -1).max(1) > 0.1)
    frames = frames[keep[0] : keep[-1] + 1] if len(keep) else frames
    n, h, w = frames.shape
    side = max(h, w)
    pad = ((0, 0), ((side - h) // 2, side - h - (side - h) // 2), ((side - w) // 2, side - w - (side - w) // 2))
    t = torch.from_numpy(np.pad(frames, pad)).unsqueeze(1)
    t = F.interpolate(t, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return t[:, 0].clamp_(0, 2).to(torch.float16)


class FrameStore:
    """Prepared frame stacks by file, kept in memory so only the first epoch reads NIfTI.

    One store serves every dataset, model and ablation of a notebook run on one cohort.
    """

    def __init__(self, *, image_size: int, cache: bool = True):
        self.image_size, self.cache = image_size, cache
        self._frames: dict[tuple[str, str], torch.Tensor] = {}

    def __call__(self, file: str, view: str) -> torch.Tensor:
        key = (file, view)
        if key in self._frames:
            return self._frames[key]
        frames = prepare_frames(file, view, self.image_size)
        if self.cache:
            self._frames[key] = frames
        return frames


class VolumeDataset(Dataset):
    """Clips of K slices from the volumes of a manifest: (1, K, H, W) float32 and the class index.

    `transform` is applied to the (K, H, W) frames of one sample, one random draw for all of them.
    """

    def __init__(self, df: pd.DataFrame, *, store: FrameStore, num_segments: int, train: bool,
                 transform=None, seed: int = 0):
        self.df, self.store, self.transform = df.reset_index(drop=True), store, transform
        self.sampler = SegmentSampler(num_segments, train=train)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.df)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        row = self.df.iloc[i]
        frames = self.store(row["file"], row["view"])
        clip = frames[self.sampler(len(frames), self.rng)].float()
        if self.transform is not None:
            clip = self.transform(clip)
        return clip.unsqueeze(0), int(row["target"])

    @property
    def targets(self) -> np.ndarray:
        return self.df["target"].to_numpy()
