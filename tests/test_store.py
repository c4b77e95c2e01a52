"""medvid_core.store.DiskArrays: decoded once, read back identical, rebuilt on a new key, skips recorded."""
from __future__ import annotations

import pickle
from functools import partial

import numpy as np
import pytest

from medvid_core.store import DiskArrays

CALLS = []


def decode(name: str, *, scale: float = 1.0) -> np.ndarray:
    CALLS.append(name)
    if name == "bad":
        raise ValueError(f"{name}: cannot decode (test)")
    k = int(name[1:])
    return (np.arange((k + 1) * 6, dtype=np.float32).reshape(k + 1, 2, 3) * scale).astype(np.float16)


NAMES = ["s0", "s1", "bad", "s2"]


@pytest.fixture(autouse=True)
def fresh():
    CALLS.clear()


def test_arrays_read_back_identical_with_their_shapes(tmp_path):
    store = DiskArrays.build(tmp_path / "a", key={"scale": 1}, names=NAMES, decode=decode)
    for n in ("s0", "s1", "s2"):
        want = decode(n)
        got = store.get(n)
        assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)
        got[...] = 0  # the caller owns the copy
    assert store.get("s2").shape == (3, 2, 3) and len(store) == 3 and "bad" not in store


def test_refused_sources_are_recorded_not_dropped(tmp_path):
    store = DiskArrays.build(tmp_path / "a", key={}, names=NAMES, decode=decode)
    assert store.skipped.to_dict("records") == [{"name": "bad", "reason": "cannot decode (test)"}]


def test_same_key_reuses_changed_key_rebuilds(tmp_path):
    DiskArrays.build(tmp_path / "a", key={"scale": 1}, names=NAMES, decode=decode)
    assert len(CALLS) == 4
    DiskArrays.build(tmp_path / "a", key={"scale": 1}, names=NAMES, decode=decode)
    assert len(CALLS) == 4
    store = DiskArrays.build(tmp_path / "a", key={"scale": 2}, names=NAMES, decode=partial(decode, scale=2.0))
    assert len(CALLS) == 8 and np.array_equal(store.get("s1"), decode("s1", scale=2.0))
    DiskArrays.build(tmp_path / "a", key={"scale": 2}, names=NAMES[:2], decode=partial(decode, scale=2.0))
    assert len(CALLS) == 11  # another list of names is another store (+ the comparison call above)


def test_a_killed_build_leaves_nothing_complete(tmp_path):
    def dies(name):
        if name == "s2":
            raise KeyboardInterrupt
        return decode(name)

    with pytest.raises(KeyboardInterrupt):
        DiskArrays.build(tmp_path / "a", key={}, names=NAMES, decode=dies)
    assert not (tmp_path / "a").exists()
    store = DiskArrays.build(tmp_path / "a", key={}, names=NAMES, decode=decode)
    assert len(store) == 3


def test_parallel_build_is_the_same_file(tmp_path):
    one = DiskArrays.build(tmp_path / "one", key={}, names=NAMES, decode=decode)
    two = DiskArrays.build(tmp_path / "two", key={}, names=NAMES, decode=decode, n_jobs=2)
    assert (one.folder / "arrays.bin").read_bytes() == (two.folder / "arrays.bin").read_bytes()
    assert (one.folder / "index.csv").read_text() == (two.folder / "index.csv").read_text()


def test_pickles_without_its_descriptor(tmp_path):
    store = DiskArrays.build(tmp_path / "a", key={}, names=NAMES, decode=decode)
    store.get("s0")
    clone = pickle.loads(pickle.dumps(store))
    assert clone._fd is None and np.array_equal(clone.stack(["s0", "s0"])[1], decode("s0"))


def test_a_truncated_data_file_is_named(tmp_path):
    store = DiskArrays.build(tmp_path / "a", key={}, names=NAMES, decode=decode)
    data = tmp_path / "a" / "arrays.bin"
    data.write_bytes(data.read_bytes()[:10])
    with pytest.raises(ValueError, match="truncated store"):
        DiskArrays(tmp_path / "a").get("s2")
