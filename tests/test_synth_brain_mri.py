"""The synthetic brain-MRI cohort: deterministic bytes, manifest, storage orientation, disease signal."""
from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from medvid_core.io.nifti import load_volume
from medvid_core.synth import brain_mri
from medvid_core.synth.brain_mri import (
    GRID,
    PRESETS,
    STORAGE_AXCODES,
    VOXEL_MM,
    Preset,
    _anatomy,
    _grid_mm,
    _save,
    _tissue,
    ensure_cohort,
    make_cohort,
)

TINY = Preset(n_patient=2, n_control=2, view="sagittal", disease="PD", effect=0.35)
TINY2 = Preset(n_patient=1, n_control=1, view="sagittal", disease="AD", effect=0.35, sessions=(2, 2))
COLUMNS = ["subject", "session", "path", "label", "view", "age", "sex", "atrophy", "disease_atrophy", "mask_path"]
CSF = 3


@pytest.fixture(scope="module")
def presets():
    """The tiny presets, registered for this module only."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(PRESETS, "tiny", TINY)
        mp.setitem(PRESETS, "tiny2", TINY2)
        yield


@pytest.fixture(scope="module")
def cohorts(presets, tmp_path_factory) -> dict[str, Path]:
    """name -> root of: seed 0 twice with one process, once with two; seed 1; the 2-session preset."""
    base = tmp_path_factory.mktemp("synth")
    spec = {"a": ("tiny", 0, 1), "b": ("tiny", 0, 1), "c": ("tiny", 0, 2), "d": ("tiny", 1, 1),
            "two": ("tiny2", 0, 1)}
    out = {}
    for name, (preset, seed, jobs) in spec.items():
        manifest = make_cohort(base / name, preset, seed=seed, n_jobs=jobs)
        assert manifest == base / name / "manifest.csv"
        out[name] = base / name
    return out


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes(cohorts):
    a, b = tree(cohorts["a"]), tree(cohorts["b"])
    assert len(a) == 2 * 4 + 1  # T1w + atrophy map per session, and the manifest
    assert "manifest.csv" in a
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == b[k], k


def test_process_count_does_not_change_bytes(cohorts):
    assert tree(cohorts["a"]) == tree(cohorts["c"])


def test_other_seed_differs(cohorts):
    a, d = tree(cohorts["a"]), tree(cohorts["d"])
    assert a.keys() == d.keys()  # same layout...
    t1 = [k for k in a if k.endswith("_T1w.nii.gz")]
    assert all(a[k] != d[k] for k in t1)  # ...different scans
    assert a["manifest.csv"] != d["manifest.csv"]


def test_manifest(cohorts):
    m = pd.read_csv(cohorts["a"] / "manifest.csv")
    assert list(m.columns) == COLUMNS
    assert m["label"].value_counts().to_dict() == {"PD": 2, "NC": 2}
    assert m["subject"].tolist() == ["sub-0001", "sub-0002", "sub-0003", "sub-0004"]
    assert (m["session"] == 1).all() and (m["view"] == "sagittal").all()
    assert set(m["sex"]) <= {"F", "M"}
    for row in m.itertuples():
        assert row.path == f"{row.subject}/ses-1/anat/{row.subject}_ses-1_T1w.nii.gz"
        assert row.mask_path == row.path.replace("_T1w", "_atrophy")
        assert (cohorts["a"] / row.path).exists() and (cohorts["a"] / row.mask_path).exists()
    assert (m.loc[m["label"] == "NC", "disease_atrophy"] == 0).all()
    assert (m.loc[m["label"] == "PD", "disease_atrophy"] > 0).all()
    assert ((m["atrophy"] >= 0) & (m["atrophy"] <= 1)).all()


def test_two_session_preset(cohorts):
    m = pd.read_csv(cohorts["two"] / "manifest.csv")
    assert len(m) == 4
    assert m.groupby("subject")["session"].apply(list).tolist() == [[1, 2], [1, 2]]
    assert m["label"].value_counts().to_dict() == {"AD": 2, "NC": 2}  # rows: 2 sessions each
    assert m.groupby("subject")["label"].nunique().tolist() == [1, 1]
    for _, rows in m.groupby("subject"):  # fixed per subject: sex; follow-up: older, not less atrophied
        assert rows["sex"].nunique() == 1
        assert rows["age"].iloc[1] == pytest.approx(rows["age"].iloc[0] + 0.75, abs=0.11)
        assert rows["atrophy"].iloc[1] >= rows["atrophy"].iloc[0]
    assert len(tree(cohorts["two"])) == 2 * 4 + 1


def test_stored_orientation_and_voxel_size(cohorts):
    m = pd.read_csv(cohorts["a"] / "manifest.csv")
    for rel in list(m["path"]) + list(m["mask_path"]):
        img = nib.load(cohorts["a"] / rel)
        assert nib.aff2axcodes(img.affine) == STORAGE_AXCODES["sagittal"] == ("P", "S", "R")
        assert img.header.get_zooms() == (VOXEL_MM,) * 3 == (2.0, 2.0, 2.0)
        assert img.header.get_xyzt_units()[0] == "mm"
    vol, zooms = load_volume(cohorts["a"] / m.loc[0, "path"])
    assert vol.shape == GRID and zooms == (2.0, 2.0, 2.0)
    assert vol.max() > 0


@pytest.mark.parametrize("view", sorted(STORAGE_AXCODES))
def test_save_round_trips_through_the_loader(tmp_path, view):
    data = np.arange(np.prod(GRID), dtype=np.int32).reshape(GRID) % 3000
    _save(data, tmp_path / "x.nii.gz", view, np.int16)
    img = nib.load(tmp_path / "x.nii.gz")
    assert nib.aff2axcodes(img.affine) == STORAGE_AXCODES[view]
    out, zooms = load_volume(tmp_path / "x.nii.gz")
    np.testing.assert_array_equal(out, data)
    assert zooms == (2.0, 2.0, 2.0)
    # the canonical array's centre sits at the world origin
    canon = nib.as_closest_canonical(img)
    centre = canon.affine @ np.array([(n - 1) / 2 for n in GRID] + [1.0])
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-9)


def test_atrophy_maps(cohorts):
    m = pd.read_csv(cohorts["a"] / "manifest.csv")
    for row in m.itertuples():
        mask, _ = load_volume(cohorts["a"] / row.mask_path)
        assert set(np.unique(mask)) <= {0.0, 1.0}
        if row.label == "NC":
            assert mask.sum() == 0, row.subject
        else:
            assert mask.sum() > 0, row.subject


@pytest.fixture(scope="module")
def tissues():
    p, anat = _grid_mm(), _anatomy(np.random.default_rng(0))
    return p, anat, _tissue(p, anat, 0.0), _tissue(p, anat, 0.6)


def test_grid():
    p = _grid_mm()
    assert p.shape == (3, *GRID)
    np.testing.assert_allclose(p[:, 0, 0, 0], [-79.0, -95.0, -79.0])
    np.testing.assert_allclose(p[:, -1, -1, -1], [79.0, 95.0, 79.0])
    np.testing.assert_allclose(p[0, 1, 0, 0] - p[0, 0, 0, 0], VOXEL_MM)


def test_atrophy_adds_csf_and_enlarges_ventricles(tissues):
    p, anat, healthy, atrophic = tissues
    assert healthy.shape == atrophic.shape == GRID
    assert set(np.unique(healthy)) == set(range(7))
    x, y, z = p / anat.scale
    rho = np.sqrt(sum((c / r) ** 2 for c, r in zip((x, y, z), anat.radii)))
    brain = rho < 1.0
    csf0, csf6 = (healthy[brain] == CSF).sum(), (atrophic[brain] == CSF).sum()
    assert csf6 > 1.3 * csf0, (csf0, csf6)
    # the core of the brain (below the deepest sulci) holds only the ventricles
    core = rho < 0.4
    v0, v6 = (healthy[core] == CSF).sum(), (atrophic[core] == CSF).sum()
    assert v0 > 100 and v6 > 1.5 * v0, (v0, v6)
    # less tissue overall: grey+white matter shrink
    assert (atrophic >= 4).sum() < (healthy >= 4).sum()
    # the head itself (scalp/skull outline) does not change
    assert np.array_equal(healthy >= 1, atrophic >= 1) and np.array_equal(healthy == 2, atrophic == 2)


def test_unknown_preset(presets, tmp_path):
    with pytest.raises(ValueError, match="nope") as err:
        make_cohort(tmp_path, "nope")
    for name in ("small", "ppmi", "adni", "oasis1", "oasis2", "tiny"):
        assert name in str(err.value)
    with pytest.raises(ValueError, match="nope"):
        ensure_cohort(tmp_path / "e", "nope")
    assert not (tmp_path / "e" / "COHORT").exists()


def test_ensure_cohort_reuses_and_regenerates(presets, tmp_path, monkeypatch):
    root = tmp_path / "cohort"
    manifest = ensure_cohort(root, "tiny", seed=0)
    assert manifest == root / "manifest.csv"
    assert (root / "COHORT").read_text() == "video4mri-brain-mri preset=tiny seed=0 v1\n"
    first = manifest.read_bytes()
    stamp = os.stat(manifest).st_mtime_ns

    calls = []
    real = brain_mri.make_cohort
    monkeypatch.setattr(brain_mri, "make_cohort", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert ensure_cohort(root, "tiny", seed=0) == manifest
    assert calls == [] and os.stat(manifest).st_mtime_ns == stamp

    assert ensure_cohort(root, "tiny", seed=1) == manifest
    assert len(calls) == 1
    assert (root / "COHORT").read_text() == "video4mri-brain-mri preset=tiny seed=1 v1\n"
    assert manifest.read_bytes() != first
