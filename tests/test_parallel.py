"""fork_map: the serial list comprehension's results, in order, whatever the process count."""
from __future__ import annotations

import os

from medvid_core.parallel import fork_map


def _pid_and_sum(a, b):
    return os.getpid(), a + b


def test_same_results_in_order_with_and_without_workers():
    args = [(i, 10 * i) for i in range(20)]
    serial = fork_map(_pid_and_sum, args, n_jobs=1)
    forked = fork_map(_pid_and_sum, args, n_jobs=2, chunksize=3)
    assert [s for _, s in serial] == [s for _, s in forked] == [11 * i for i in range(20)]
    assert {p for p, _ in serial} == {os.getpid()} and os.getpid() not in {p for p, _ in forked}
    assert fork_map(_pid_and_sum, [], n_jobs=2) == []
