"""medvid_core.cache.ensure: built once per key, rebuilt from scratch on another key, never half-built."""
import multiprocessing
import os
import time

import pytest

from medvid_core.cache import STAMP, ensure, stamp_of
from medvid_core.synth.nuclei import ensure_nuclei_images


def _writer(calls, files=("a.txt",), fail_after=None):
    def make(tmp):
        calls.append(tmp)
        for k, name in enumerate(files):
            if fail_after is not None and k == fail_after:
                raise RuntimeError("killed halfway")
            (tmp / name).write_text(name)
    return make


def _siblings(root):
    return sorted(p.name for p in root.parent.iterdir() if p.name != root.name and not p.name.endswith(".lock"))


def test_same_key_is_built_once(tmp_path):
    root, calls = tmp_path / "data", []
    assert ensure(root, {"seed": 0, "shape": (2, 3)}, _writer(calls)) == root
    assert ensure(root, {"shape": [2, 3], "seed": 0}, _writer(calls)) == root  # tuples and key order: same key
    assert len(calls) == 1 and calls[0] != root and calls[0].parent == root.parent  # built in a sibling
    assert (root / "a.txt").read_text() == "a.txt" and stamp_of(root) == {"seed": 0, "shape": [2, 3]}
    assert _siblings(root) == []  # no temporary folder left


def test_another_key_rebuilds_and_old_files_are_gone(tmp_path):
    root, calls = tmp_path / "data", []
    ensure(root, {"n": 2}, _writer(calls, files=("a.txt", "b.txt")))
    ensure(root, {"n": 1}, _writer(calls, files=("a.txt",)))
    assert len(calls) == 2
    assert sorted(p.name for p in root.iterdir()) == sorted(["a.txt", STAMP])
    assert _siblings(root) == []


def test_a_failed_build_leaves_no_complete_looking_root(tmp_path):
    root, calls = tmp_path / "data", []
    with pytest.raises(RuntimeError, match="halfway"):
        ensure(root, {"n": 2}, _writer(calls, files=("a.txt", "b.txt"), fail_after=1))
    assert not root.exists() and _siblings(root) == []
    ensure(root, {"n": 2}, _writer(calls, files=("a.txt", "b.txt")))
    assert len(calls) == 2 and (root / "b.txt").exists()
    # a failed rebuild keeps nothing of its own; the old build was not yet touched
    with pytest.raises(RuntimeError):
        ensure(root, {"n": 3}, _writer(calls, files=("a.txt", "c.txt"), fail_after=1))
    assert stamp_of(root) == {"n": 2} and not (root / "c.txt").exists() and _siblings(root) == []


def test_killed_builds_and_old_format_roots_are_cleaned(tmp_path):
    root, calls = tmp_path / "data", []
    (tmp_path / ".data.tmp-dead").mkdir()  # what a SIGKILLed build leaves
    (tmp_path / ".data.tmp-dead" / "a.txt").write_text("half")
    (tmp_path / ".data.old-dead").mkdir()
    root.mkdir()
    (root / "COHORT").write_text("old-style stamp\n")  # a root from before the helper
    (root / "stale.txt").write_text("old")
    ensure(root, {"n": 1}, _writer(calls))
    assert len(calls) == 1 and sorted(p.name for p in root.iterdir()) == sorted(["a.txt", STAMP])
    assert _siblings(root) == []
    (root / STAMP).write_text("{not json")  # a garbled stamp is no stamp
    ensure(root, {"n": 1}, _writer(calls))
    assert len(calls) == 2


def _slow_build(root, log):
    def make(tmp):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.5)
        (tmp / "a.txt").write_text("a")
    ensure(root, {"n": 1}, make)


def test_concurrent_processes_build_once(tmp_path):
    root, log = tmp_path / "data", tmp_path / "builds.log"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_slow_build, args=(root, log)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(log.read_text().split()) == 1  # the others waited on the lock, then reused the build
    assert stamp_of(root) == {"n": 1} and (root / "a.txt").exists()


def test_nuclei_lowering_n_images_rebuilds(tmp_path):
    root = tmp_path / "nuclei"
    ensure_nuclei_images(root, n_images=3, size=48, n_nuclei=4, seed=0)
    assert len([p for p in root.iterdir() if p.is_dir()]) == 3
    masks = len(list(root.rglob("masks/*.png")))
    ensure_nuclei_images(root, n_images=2, size=48, n_nuclei=4, seed=0)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["synthetic0000", "synthetic0001"]
    assert len(list(root.rglob("masks/*.png"))) < masks
    before = (root / STAMP).stat().st_mtime_ns
    ensure_nuclei_images(root, n_images=2, size=48, n_nuclei=4, seed=0)  # same arguments: reused
    assert (root / STAMP).stat().st_mtime_ns == before


def test_the_build_gets_ordinary_permissions(tmp_path):
    root = tmp_path / "data"
    ensure(root, {"n": 1}, _writer([]))
    mask = os.umask(0)
    os.umask(mask)
    assert root.stat().st_mode & 0o777 == 0o777 & ~mask  # not mkdtemp's 0700
