"""Index a big folder once: read a small record (a DICOM header, an image size) from every file, in
parallel with a progress bar, and keep the table so that the next run starts at once.

The table is cached under ``data_dir()/index/`` (never inside the download, which may be read-only
and which `data check` promises not to touch), keyed on the reader's name and on the folder's listing:
every file's name, size and modification time. Adding, removing, replacing or touching a file gives
another key and a fresh index; an unchanged folder reuses the cached one. A file the reader refuses is
a row whose `error` holds the reader's one-line message, so the caller can put it in its skip log.
The cache is a CSV written to a temporary name and renamed into place: a killed run leaves no index
that looks complete (and no pickle: reading it back runs no code).
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Callable

import pandas as pd

from ..parallel import progress_map
from ..paths import data_dir


def listing_key(paths: list[str]) -> str:
    """SHA-256 of every file's name, size and modification time, in the given order."""
    h = hashlib.sha256()
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class _Record:  # picklable for the worker pool: read(path) -> dict, or the error's one line
    def __init__(self, read: Callable[[str], dict]):
        self.read = read

    def __call__(self, path: str) -> dict:
        try:
            return {"file": path, **self.read(path), "error": ""}
        except ValueError as exc:  # medvid's readers raise one-line ValueErrors naming the file
            return {"file": path, "error": str(exc).split(": ", 1)[-1]}


def index_files(paths: list[str], read: Callable[[str], dict], *, name: str, n_jobs: int = 1,
                text_columns: tuple[str, ...] = (), cache: bool = True) -> pd.DataFrame:
    """One row per path: `file`, the keys of `read(path)`, and `error` ("" when it read).

    `name` names the reader in the cache key (change it when `read` changes what it returns);
    `text_columns` are read back from the cache as text (UIDs such as "1.2" would otherwise become numbers).
    """
    paths = [str(p) for p in paths]
    target = data_dir() / "index" / f"{name}-{listing_key(paths)[:24]}.csv"
    if not (cache and target.exists()):
        table = pd.DataFrame(progress_map(_Record(read), paths, n_jobs=n_jobs, desc=f"indexing {name}"))
        if "error" not in table:
            table["error"] = pd.Series(dtype=str)
        if not cache:  # the same text round trip as a cached table, so both give identical frames
            return _read(io.StringIO(table.to_csv(index=False)), text_columns)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        table.to_csv(tmp, index=False)
        os.replace(tmp, target)
    return _read(target, text_columns)


def _read(source, text_columns) -> pd.DataFrame:
    text = ("file", "error", *text_columns)
    table = pd.read_csv(source, dtype={c: str for c in text})
    return table.fillna({c: "" for c in text if c in table})
