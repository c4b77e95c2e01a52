"""Shared test set-up."""
import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One intra-op thread: on a small shared CPU this is faster than two threads contending."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def environ_as_found():
    """Each test leaves os.environ as it found it: nbval's kernels, started later in the same session,
    inherit it (a leaked OMP_NUM_THREADS=1 once made CI's notebooks train on one thread)."""
    import os

    from medvid_core.batch import _restore_environ

    saved = dict(os.environ)
    yield
    _restore_environ(saved)
