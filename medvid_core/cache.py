"""Build a generated folder once, atomically, and rebuild it whenever what it was built from changes.

Every synthetic generator goes through `ensure(root, key, make)`:

* `key` is a JSON-able dict of everything that changes the bytes (the generator's format version, the
  preset's values, the seed, sizes...; not `n_jobs`). `root/STAMP.json` records the key of a finished
  build; the same key reuses `root`, any other key (or no stamp: a root from before this helper, or
  one a killed build left) rebuilds it.
* `make(tmp)` writes into a fresh temporary sibling of `root` (same parent, so the final rename is
  atomic); the stamp is written last, inside `tmp`; then the old `root` is moved aside, `tmp` renamed
  into place and the old tree deleted. A build killed at any point leaves only hidden
  `.<name>.tmp-*` / `.<name>.old-*` siblings, removed by the next build: never a `root` that looks
  complete, never old files mixed with new ones. `root` belongs to the cache: a rebuild replaces it
  wholesale, so give each generator a folder of its own.
* Concurrent processes (two papermill runs of one batch asking for the same cohort) serialise on an
  advisory lock, `fcntl.flock` on the sibling `.<name>.lock`: the second waits, then finds the first
  one's stamp and reuses its build. The kernel drops the lock when its holder dies, so a killed build
  never blocks the next one. A finished `root` is read without the lock.

The bytes written must not depend on the folder's path (they are written in `tmp`): manifests hold
paths relative to `root`.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

STAMP = "STAMP.json"  # written last: its presence with the right key is what "complete" means


def _normal(key: dict) -> dict:
    """The key as it reads back from JSON (tuples become lists), so a stamp compares equal to its key."""
    return json.loads(json.dumps(key, sort_keys=True))


def stamp_of(root: str | Path) -> dict | None:
    """The key `root` was built from, or None (no finished build there)."""
    try:
        return json.loads((Path(root) / STAMP).read_text())
    except (OSError, ValueError):
        return None


@contextmanager
def _locked(root: Path):
    fd = os.open(root.parent / f".{root.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks while another process builds this root
        yield
    finally:
        os.close(fd)  # closing releases the lock


def ensure(root: str | Path, key: dict, make: Callable[[Path], object]) -> Path:
    """Return `root` holding a complete build of `key`, calling `make(tmp)` only when it does not yet."""
    root, want = Path(root), _normal(key)
    if stamp_of(root) == want:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        if stamp_of(root) == want:  # another process finished it while we waited
            return root
        for part in ("tmp", "old"):  # left by killed builds (nobody else builds while we hold the lock)
            for stale in root.parent.glob(f".{root.name}.{part}-*"):
                shutil.rmtree(stale, ignore_errors=True)
        tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"  # mkdir, not mkdtemp: the umask's modes, not 0700
        tmp.mkdir()
        try:
            make(tmp)
            (tmp / STAMP).write_text(json.dumps(want, indent=1, sort_keys=True) + "\n")
            old = None
            if root.exists():
                old = root.parent / f".{root.name}.old-{os.getpid()}"
                os.replace(root, old)  # aside first: a kill here leaves no root, not a half one
            os.replace(tmp, root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return root
