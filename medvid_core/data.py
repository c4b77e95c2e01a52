"""Datasets over manifests, subject-level splits and the leakage guard.

A cohort is a folder with `manifest.csv` (columns subject, session, path, label, view;
paths relative to the folder). The synthetic cohorts are written that way, and a real
PPMI/ADNI/OASIS download converted to NIfTI needs only such a CSV beside it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset, get_worker_info

from .sampling import SegmentSampler
from .store import DiskArrays

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
    # a plain array: sklearn cannot index a pyarrow-backed string Index (pandas 3 with pyarrow installed)
    train_ids, test_ids = train_test_split(subjects.index.to_numpy(dtype=object), test_size=test_size, random_state=seed,
                                           stratify=subjects.values)
    train, test = df[df["subject"].isin(train_ids)], df[df["subject"].isin(test_ids)]
    check_no_leakage(train, test)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def subsample_subjects(df: pd.DataFrame, *, frac: float, seed: int = 0) -> pd.DataFrame:
    """A stratified random `frac` of the subjects, each with all its sessions: a laptop-sized cohort."""
    if not 0 < frac <= 1:
        raise ValueError(f"cohort_scale must be in (0, 1], got {frac}")
    return df if frac == 1 else subject_split(df, test_size=1 - frac, seed=seed)[0]


def leakage_report(train: pd.DataFrame, test: pd.DataFrame, *, key: str = "subject") -> dict:
    """Which `key` values (subjects, patients) sit on both sides of a split, and how many rows they hold.

    A slice-level split of a CT cohort puts neighbouring slices of one patient in both sets; this
    says by how much, so a lesson can show the leak instead of only refusing it.
    """
    shared = sorted(set(train[key]) & set(test[key]))
    return {"key": key, "shared": shared, "n_shared": len(shared),
            "n_train": int(train[key].nunique()), "n_test": int(test[key].nunique()),
            "train_rows_shared": int(train[key].isin(shared).sum()),
            "test_rows_shared": int(test[key].isin(shared).sum()),
            "test_fraction_shared": float(test[key].isin(shared).mean()) if len(test) else 0.0}


def check_no_leakage(train: pd.DataFrame, test: pd.DataFrame, *, key: str = "subject") -> dict:
    """Raise `LeakageError` if a `key` value is on both sides; else return the (empty) leakage report."""
    report = leakage_report(train, test, key=key)
    if report["n_shared"]:
        raise LeakageError(f"{report['n_shared']} {key}(s) on both sides of the split, e.g. {report['shared'][:3]}")
    return report


class FrameStore:
    """Prepared frame stacks by (file, view); one store serves every dataset, model and ablation of a run.

    `prepare(file, view)` turns one volume file into a (frames, H, W) tensor (a study's preprocessing).
    Two kinds:

    * `FrameStore.build(items, prepare, key=..., folder=...)`: every (file, view) of a cohort prepared once,
      by `n_jobs` processes, into a `DiskArrays` folder (atomic, keyed on everything that changes the
      bytes, reused by the next run); `store(file, view)` then reads that one stack back from disk. Nothing
      is held in memory but the index, so a cohort of any size costs a batch, and DataLoader workers share
      it. The tensors are the ones `prepare` returned, dtype and all (float16 stays float16: exact).
    * `FrameStore(prepare)`: in memory, each stack prepared on first use and kept (`cache=False`: never
      kept); for a handful of files, e.g. a notebook's own example.

    A (file, view) that a built store does not hold is prepared on the spot and not kept.
    """

    def __init__(self, prepare: Callable[[str, str], torch.Tensor] | None, *, cache: bool = True,
                 arrays: DiskArrays | None = None):
        self.prepare, self.cache, self.arrays = prepare, cache and arrays is None, arrays
        self._frames: dict[tuple[str, str], torch.Tensor] = {}

    @classmethod
    def build(cls, items: Sequence[tuple[str, str]], prepare: Callable[[str, str], torch.Tensor], *, key: dict,
              folder: str | Path, n_jobs: int = 1, desc: str = "preparing frames") -> "FrameStore":
        """Every (file, view) of `items` prepared once into `folder` (rebuilt when `key` or the items change).

        `key` must hold everything that changes the bytes (the files' listing, the preprocessing's
        parameters and version); `prepare` must be picklable for `n_jobs` > 1 (a module-level function or a
        `functools.partial` of one). A file `prepare` refuses (its one-line ValueError) is that one-line
        error here, naming the file, as it was when the dataset read it.
        """
        names = [_frame_name(f, v) for f, v in dict.fromkeys((str(f), str(v)) for f, v in items)]
        arrays = DiskArrays.build(folder, key={**key, "frame_store": 1}, names=names, decode=_PrepareName(prepare),
                                  n_jobs=n_jobs, desc=desc)
        if len(arrays.skipped):
            view, file = arrays.skipped["name"].iloc[0].split(":", 1)
            more = f" (and {len(arrays.skipped) - 1} more, listed in {arrays.folder / 'skipped.csv'})" \
                if len(arrays.skipped) > 1 else ""
            raise ValueError(f"{file}: {arrays.skipped['reason'].iloc[0]}{more}")
        return cls(prepare, arrays=arrays)

    def __call__(self, file: str, view: str) -> torch.Tensor:
        if self.arrays is not None:
            name = _frame_name(file, view)
            if name in self.arrays:
                return torch.from_numpy(self.arrays.get(name))
        key = (file, view)
        if key in self._frames:
            return self._frames[key]
        frames = self.prepare(file, view)
        if self.cache:
            self._frames[key] = frames
        return frames


def _frame_name(file: str, view: str) -> str:
    return f"{view}:{file}"  # views have no colon, so the first one splits it back


class _PrepareName:  # picklable for DiskArrays' worker pool (one torch thread each: parallel.progress_imap)
    def __init__(self, prepare: Callable[[str, str], torch.Tensor]):
        self.prepare = prepare

    def __call__(self, name: str) -> np.ndarray:
        view, file = name.split(":", 1)
        frames = self.prepare(file, view)
        return frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)


class VolumeDataset(Dataset):
    """Clips of K slices from the volumes of a manifest: (1, K, H, W) float32 and the class index.

    Each item reads its scan's frames from `store` when it is asked for (lazily: a built store reads them
    from disk), so the dataset holds only the manifest. `transform` is applied to the (K, H, W) frames of
    one sample, one random draw for all of them. In a DataLoader worker the slice sampler's stream is
    re-seeded from the worker's seed (which the loader draws from its generator), so workers do not
    repeat each other's draws and a run is deterministic for a given `num_workers`; without workers the
    stream is the one seeded by `seed`.
    """

    def __init__(self, df: pd.DataFrame, *, store: FrameStore, num_segments: int, train: bool,
                 transform=None, seed: int = 0):
        self.df, self.store, self.transform = df.reset_index(drop=True), store, transform
        self.sampler = SegmentSampler(num_segments, train=train)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._worker_seed: int | None = None

    def __len__(self) -> int:
        return len(self.df)

    def _stream(self) -> np.random.Generator:
        info = get_worker_info()
        if info is not None and info.seed != self._worker_seed:  # first item in this worker (or a new loader's)
            self._worker_seed = info.seed
            self.rng = np.random.default_rng([self.seed, info.seed])
        return self.rng

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        row = self.df.iloc[i]
        frames = self.store(row["file"], row["view"])
        clip = frames[self.sampler(len(frames), self._stream())].float()
        if self.transform is not None:
            clip = self.transform(clip)
        return clip.unsqueeze(0), int(row["target"])

    @property
    def targets(self) -> np.ndarray:
        return self.df["target"].to_numpy()


def _seed_worker(worker_id: int) -> None:
    """NumPy and `random` in a DataLoader worker, seeded from torch's per-worker seed (itself drawn from the
    loader's generator), so augmentations that use them are deterministic for a given `num_workers`."""
    import random

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def worker_options(num_workers: int = 0) -> dict:
    """DataLoader keywords for `num_workers` loading processes: `DataLoader(ds, ..., **worker_options(n))`.

    0 (the default, right for a 2-core laptop) loads in the main process and adds nothing, so a loader
    built with it draws exactly the random numbers it drew before. With n > 0 the workers are forked,
    kept alive between epochs and seeded (`_seed_worker`): a run is deterministic for a given n, and
    torch's own per-worker streams make it differ from n = 0.
    """
    if num_workers < 0:
        raise ValueError(f"num_workers must be 0 or more, got {num_workers}")
    if num_workers == 0:
        return {}
    return {"num_workers": num_workers, "worker_init_fn": _seed_worker, "persistent_workers": True,
            "multiprocessing_context": "fork"}
