"""Synthetic nodule cubes and sparse-annotation volumes: real NIfTI files, deterministic, labels as documented."""
import hashlib

import numpy as np
import pandas as pd

from medvid_core.cache import STAMP, stamp_of
from medvid_core.io.nifti import load_volume
from medvid_core.synth.lung_nodule import (CUBE, UNLABELLED, ensure_nodule_cubes, make_nodule_cubes,
                                           make_sparse_volumes, sparse_slices)


def _digest(root):
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.nii.gz"))}


def test_nodule_cubes_are_deterministic_hu_cubes(tmp_path):
    m = pd.read_csv(make_nodule_cubes(tmp_path / "a", n_nodules=6, seed=3))
    make_nodule_cubes(tmp_path / "b", n_nodules=6, seed=3)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert m.target.tolist() == [0, 1, 0, 1, 0, 1] and set(m.label) == {"pfn", "non_pfn"}
    vol, zooms = load_volume(tmp_path / "a" / m.path[1])
    assert vol.shape == (CUBE,) * 3 and zooms == (1.0, 1.0, 1.0)
    assert -1024 <= vol.min() and vol.max() < 1000 and vol.mean() < -500  # lung HU
    c = CUBE // 2
    assert vol[c - 1 : c + 2, c - 1 : c + 2, c - 1 : c + 2].mean() > -200  # a solid nodule at the centre
    assert m[m.target == 1].fissure.all() and (m[m.target == 1].flatness < 0.6).all()


def test_ensure_generates_once(tmp_path):
    first = ensure_nodule_cubes(tmp_path, n_nodules=2)
    stamp = (tmp_path / STAMP).stat().st_mtime_ns
    assert ensure_nodule_cubes(tmp_path, n_nodules=2) == first
    assert (tmp_path / STAMP).stat().st_mtime_ns == stamp
    assert stamp_of(tmp_path)["pfn_fraction"] == 0.5  # defaults are part of the key
    ensure_nodule_cubes(tmp_path, n_nodules=1)
    assert len(list((tmp_path / "nodules").iterdir())) == 1  # rebuilt, not added to


def test_sparse_labels_only_on_the_chosen_slices(tmp_path):
    m = pd.read_csv(make_sparse_volumes(tmp_path, n_volumes=1, shape=(24, 24, 24), slices_per_axis=1, n_tubes=4,
                                        n_blobs=5))
    dense = load_volume(tmp_path / m.labels[0])[0]
    sparse = load_volume(tmp_path / m.sparse_labels[0])[0]
    picks = sparse_slices(dense.shape, per_axis=1)
    labelled = sparse != UNLABELLED
    expected = np.zeros_like(labelled)
    expected[picks["yz"]] = expected[:, picks["xz"]] = expected[:, :, picks["xy"]] = True
    np.testing.assert_array_equal(labelled, expected)
    np.testing.assert_array_equal(sparse[labelled], dense[labelled])
    assert 0.01 < dense.mean() < 0.3 and set(np.unique(dense)) == {0, 1}
