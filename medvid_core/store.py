"""Decode once, read lazily: `DiskArrays`, preprocessed arrays (slices, clips, volumes) on disk.

A study's loader turns every raw file (a DICOM slice, a CT volume, an MRI scan) into the array its
network reads; at a real dataset's size those arrays outgrow memory (RSNA's 674k labelled slices are
about 17 GB at 64 px). So they are decoded once, by `n_jobs` processes, and appended to one data file
under ``data_dir()``, with an index (name, offset, dtype, shape) beside it; a dataset then reads the one
array it needs with `os.pread`. Memory stays bounded by a batch whatever the cohort's size:

* why not a memory-mapped .npy: pages touched through a mapping count as the process's resident memory
  (RssFile), so one epoch over a mapped cohort grows a process's peak RSS with the cohort; pages read
  with `pread` live in the kernel's page cache, shared and reclaimable, not in the process;
* why not zarr or MONAI's `PersistentDataset`: zarr is not a dependency, and `PersistentDataset` pickles
  one file per item (`torch.load` of pickles, and 674k small files); one flat file plus a CSV index is
  enough for fixed-dtype arrays, reads back without running code, and works for ragged shapes (MRI
  scans with different slice counts, radiographs of different sizes).

The folder is built with `medvid_core.cache.ensure`, keyed on everything that changes the bytes (the
listing of the source files, the preprocessing and its parameters), in a temporary folder renamed into
place: a killed build never looks complete, a changed parameter never reuses old arrays. A source the
decoder refuses (its one-line ValueError) is a row of `skipped.csv` (name, reason), never dropped silently.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .cache import ensure
from .parallel import progress_imap

DATA, INDEX, SKIPPED = "arrays.bin", "index.csv", "skipped.csv"


class _Decode:  # picklable for the worker pool: name -> (name, array or None, reason)
    def __init__(self, decode: Callable[[str], np.ndarray]):
        self.decode = decode

    def __call__(self, name: str):
        try:
            return name, np.ascontiguousarray(self.decode(name)), ""
        except ValueError as exc:  # medvid's readers raise one-line ValueErrors naming the file
            return name, None, str(exc).split(": ", 1)[-1]


def _write(folder: Path, names: Sequence[str], decode: Callable[[str], np.ndarray], n_jobs: int, desc: str) -> None:
    rows, skipped, offset = [], [], 0
    with open(folder / DATA, "wb") as out:
        # chunksize 1: a worker returns a whole chunk's arrays in one message, and the parent would hold them all
        for name, array, reason in progress_imap(_Decode(decode), list(names), n_jobs=n_jobs, desc=desc, min_items=500,
                                                 chunksize=1):
            if array is None:
                skipped.append({"name": name, "reason": reason})
                continue
            out.write(array.tobytes())
            rows.append({"name": name, "offset": offset, "dtype": array.dtype.str,
                         "shape": "x".join(map(str, array.shape))})
            offset += array.nbytes
    pd.DataFrame(rows, columns=["name", "offset", "dtype", "shape"]).to_csv(folder / INDEX, index=False)
    pd.DataFrame(skipped, columns=["name", "reason"]).to_csv(folder / SKIPPED, index=False)


class DiskArrays:
    """Named arrays in one file; `get(name)` reads one, `stack(names)` a batch. Nothing held in memory
    but the index. Safe to use from DataLoader workers (each opens its own file descriptor)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        index = pd.read_csv(self.folder / INDEX, dtype={"name": str, "dtype": str, "shape": str},
                            keep_default_na=False)
        self._where = {n: (int(o), np.dtype(d), tuple(int(x) for x in s.split("x")) if s else ())
                       for n, o, d, s in zip(index["name"], index["offset"], index["dtype"], index["shape"])}
        self.skipped = pd.read_csv(self.folder / SKIPPED, dtype=str, keep_default_na=False)
        self._fd: int | None = None
        self._pid = -1

    @classmethod
    def build(cls, folder: str | Path, *, key: dict, names: Sequence[str], decode: Callable[[str], np.ndarray],
              n_jobs: int = 1, desc: str = "decoding") -> "DiskArrays":
        """The arrays `decode(name)` for every name, decoded once into `folder` (rebuilt when `key` changes)."""
        key = {**key, "names": _digest(names), "store": 1}
        return cls(ensure(folder, key, lambda tmp: _write(tmp, names, decode, n_jobs, desc)))

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    @property
    def names(self) -> list[str]:
        return list(self._where)

    def nbytes(self) -> int:
        return int(os.path.getsize(self.folder / DATA))

    def get(self, name: str) -> np.ndarray:
        offset, dtype, shape = self._where[name]
        if self._fd is None or self._pid != os.getpid():  # a forked worker opens its own descriptor
            self._fd, self._pid = os.open(self.folder / DATA, os.O_RDONLY), os.getpid()
        n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        buf = os.pread(self._fd, n, offset)
        if len(buf) != n:
            raise ValueError(f"{self.folder / DATA}: truncated store ({len(buf)} of {n} bytes for {name})")
        return np.frombuffer(buf, dtype=dtype).reshape(shape).copy()  # writable, owned

    def stack(self, names: Sequence[str]) -> np.ndarray:
        return np.stack([self.get(n) for n in names])

    def __getstate__(self):  # pickled into spawned workers without the descriptor
        return {**self.__dict__, "_fd": None, "_pid": -1}

    def __del__(self):
        if self._fd is not None and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass


def _digest(names: Sequence[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(map(str, names)).encode()).hexdigest()
