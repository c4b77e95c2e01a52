"""`fork_map`: a function over a list of argument tuples, in order, on forked worker processes.

The generators and the study loaders write or read one subject (clip, study) per call, each from its
own seeded stream or file, so the results do not depend on how many processes ran them. Workers are
forked: what the parent built before the call (a template, a monkeypatched function) is theirs too.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Callable, Sequence


def fork_map(fn: Callable, args: Sequence[tuple], *, n_jobs: int, chunksize: int = 1) -> list:
    """`[fn(*a) for a in args]`, computed by `n_jobs` forked processes when `n_jobs` > 1."""
    if n_jobs > 1 and len(args):
        with ProcessPoolExecutor(n_jobs, mp_context=get_context("fork")) as pool:
            return list(pool.map(fn, *zip(*args), chunksize=chunksize))
    return [fn(*a) for a in args]


def _one_torch_thread() -> None:
    """In a forked worker: torch's intra-op thread pool does not survive a fork (a worker's first
    `F.interpolate` can hang), so each worker computes on one thread, as DataLoader workers do."""
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def progress_imap(fn: Callable, items: Sequence, *, n_jobs: int = 1, desc: str = "", min_items: int = 5000,
                  chunksize: int | None = None):
    """`fn(x)` for each of `items`, yielded in order as they are computed, on `n_jobs` forked processes, with a
    progress bar once there are `min_items` or more (a bar for a two-second pass is noise in a notebook).
    Results are not held: a caller writing each to disk keeps memory bounded. `fn` must be picklable
    (a module-level function or an instance of a module-level class). `chunksize`: items per message to
    and from a worker (default: up to 64, for small results); 1 for big results such as decoded volumes,
    since a worker returns a whole chunk's results at once and the parent holds them all meanwhile."""
    from tqdm import tqdm  # plain tqdm, as the trainer: tqdm.auto never advances under papermill

    bar = dict(total=len(items), desc=desc, leave=False, disable=len(items) < min_items)
    if n_jobs > 1 and len(items) > 1:
        with get_context("fork").Pool(n_jobs, initializer=_one_torch_thread) as pool:
            chunk = chunksize or max(1, min(64, len(items) // (4 * n_jobs)))
            yield from tqdm(pool.imap(fn, items, chunksize=chunk), **bar)
    else:
        yield from (fn(x) for x in tqdm(items, **bar))


def progress_map(fn: Callable, items: Sequence, *, n_jobs: int = 1, desc: str = "", min_items: int = 5000) -> list:
    """`list(progress_imap(...))`: every result, in order."""
    return list(progress_imap(fn, items, n_jobs=n_jobs, desc=desc, min_items=min_items))
