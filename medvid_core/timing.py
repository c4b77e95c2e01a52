"""The one timer: wall-clock and process-CPU seconds of a block, for every timing in studies and benchmarks.

    with timed() as t:
        work()
    t.wall, t.cpu          # seconds, frozen when the block ends

or, where a `with` block would re-indent a long function, ``t = timed()`` starts it and ``t.wall`` /
``t.cpu`` read the time so far until ``t.stop()``. Wall clock (`time.perf_counter`) is the figure to
report; CPU time (`time.process_time`, all threads of this process) is immune to other jobs on the cores.
`device`: a CUDA device whose queued work is waited for before the clock is read (GPU kernels run
asynchronously); the CPU needs nothing.
"""
from __future__ import annotations

import time


class timed:  # noqa: N801 -- used like a function: `with timed() as t`
    """Wall and CPU seconds since creation (or since entering the `with` block), frozen by `stop()`."""

    def __init__(self, *, device=None):
        self.device = device
        self._end: tuple[float, float] | None = None
        self._start = (time.perf_counter(), time.process_time())

    def __enter__(self) -> "timed":
        self._end = None
        self._start = (time.perf_counter(), time.process_time())
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> "timed":
        """Freeze the readings (waiting for `device` first); later calls keep the first reading."""
        if self._end is None:
            _sync(self.device)
            self._end = (time.perf_counter(), time.process_time())
        return self

    def _now(self) -> tuple[float, float]:
        return self._end if self._end is not None else (time.perf_counter(), time.process_time())

    @property
    def wall(self) -> float:
        """Wall-clock seconds (up to now while running)."""
        return self._now()[0] - self._start[0]

    @property
    def cpu(self) -> float:
        """Process CPU seconds, all threads (up to now while running)."""
        return self._now()[1] - self._start[1]

    def __repr__(self) -> str:
        state = "stopped" if self._end is not None else "running"
        return f"timed(wall={self.wall:.3f}s, cpu={self.cpu:.3f}s, {state})"


def _sync(device) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)
