"""The synthetic brain-MRI cohort: deterministic bytes, manifest, storage orientation, real anatomy, disease signal."""
from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from medvid_core.cache import stamp_of
from medvid_core.io.nifti import load_volume
from medvid_core.synth import brain_mri
from medvid_core.synth.brain_mri import (
    CH,
    CVAL,
    GRID,
    HEAD_CENTRE,
    PRESETS,
    STORAGE_AXCODES,
    VOXEL_MM,
    Preset,
    _anatomy,
    _grid_mm,
    _maps,
    _save,
    ensure_cohort,
    make_cohort,
    render_session,
)
from medvid_core.synth.mni152 import sample_stack

TINY = Preset(n_patient=2, n_control=2, view="sagittal", disease="PD", effect=0.35)
TINY2 = Preset(n_patient=1, n_control=1, view="sagittal", disease="AD", effect=0.35, sessions=(2, 2))
COLUMNS = ["subject", "session", "path", "label", "view", "age", "sex", "atrophy", "disease_atrophy", "mask_path"]


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


def test_grid():
    p = _grid_mm()
    assert p.shape == (3, *GRID)
    np.testing.assert_allclose(p[:, 0, 0, 0], [-85.0, -101.0, -89.0])
    np.testing.assert_allclose(p[:, -1, -1, -1], [85.0, 101.0, 89.0])
    np.testing.assert_allclose(p[0, 1, 0, 0] - p[0, 0, 0, 0], VOXEL_MM)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def template_on_grid():
    """The unwarped MNI152 maps on the scanner grid (head centred, no pose): (..., channels)."""
    maps, origin, mm = _maps()
    q = np.moveaxis(_grid_mm(), 0, -1) + HEAD_CENTRE.astype(np.float32)
    return sample_stack(maps, origin, mm, q, CVAL)


@pytest.fixture(scope="module")
def sessions():
    """One subject (fixed anatomy, same scan draw) as a control and with AD or PD disease atrophy."""
    anat = _anatomy(np.random.default_rng(3))
    out = {}
    for name, disease, kind in (("nc", 0.0, "AD"), ("ad", 0.35, "AD"), ("pd", 0.35, "PD")):
        out[name] = render_session(np.random.default_rng(7), anat, ageing=0.2, disease=disease, kind=kind)
    return out


def test_anatomy_is_the_template_warped(sessions, template_on_grid):
    """A subject's intracranial space and tissue overlap the template's, but not exactly (warp, size, pose)."""
    s, t = sessions["nc"], template_on_grid
    ic = dice(s["inside"], t[..., CH["dist"]] > 0)
    tissue = dice(s["gm"] + s["wm"] > 0.5, t[..., CH["gm"]] + t[..., CH["wm"]] > 0.5)
    assert 0.85 < ic < 0.995, ic
    assert 0.6 < tissue < 0.98, tissue
    # an adult intracranial volume (MNI152's own is ~2.0 L, bigger than most heads)
    litres = s["inside"].sum() * VOXEL_MM**3 / 1e6
    assert 1.2 < litres < 1.8, litres


def test_t1_contrast(sessions):
    """White matter brighter than grey matter, grey brighter than CSF; air near zero."""
    s = sessions["nc"]
    wm, gm = s["wm"] > 0.9, s["gm"] > 0.9
    csf = s["inside"] & (s["gm"] + s["wm"] < 0.05)
    t1 = s["t1"]
    assert t1[wm].mean() > 1.3 * t1[gm].mean() > 1.3 * 2 * t1[csf].mean()
    assert t1[0, 0, :].mean() < 0.15  # a corner of the field of view: air (Rician noise floor)


def test_disease_enlarges_ventricles_and_thins_cortex(sessions, template_on_grid):
    nc, ad, pd_ = sessions["nc"], sessions["ad"], sessions["pd"]
    periventricular = template_on_grid[..., CH["ventricle_dist"]] < 12  # within 12 mm of the template's ventricles
    csf = {k: (s["inside"] & (s["gm"] + s["wm"] < 0.5)) for k, s in sessions.items()}
    v = {k: (c & periventricular).sum() for k, c in csf.items()}
    assert v["ad"] > 1.3 * v["nc"] and v["pd"] > 1.2 * v["nc"], v
    tissue = {k: (s["gm"] + s["wm"]).sum() for k, s in sessions.items()}
    assert tissue["ad"] < 0.95 * tissue["nc"] and tissue["pd"] < 0.97 * tissue["nc"], tissue
    # AD takes the medial temporal lobe hardest, PD the frontal cortex: compare where grey matter goes
    temporal, frontal = template_on_grid[..., CH["ad_weight"]] > 1.8, template_on_grid[..., CH["pd_weight"]] > 1.2
    loss = {k: nc["gm"] - s["gm"] for k, s in (("ad", ad), ("pd", pd_))}
    assert loss["ad"][temporal].mean() > 1.5 * loss["pd"][temporal].mean()
    assert loss["ad"][temporal].mean() > 1.5 * loss["ad"][frontal].mean()
    # the scan of the same head and pose: the skull and scalp do not move
    np.testing.assert_array_equal(nc["inside"], ad["inside"])
    # the ground truth marks exactly the tissue the disease took
    assert nc["atrophy"].sum() == 0 and ad["atrophy"].sum() > 1000
    assert ((ad["gm"] + ad["wm"])[ad["atrophy"]] < 0.5).all()


def test_patients_have_larger_ventricles_across_heads(template_on_grid):
    """Different heads and ages: every AD patient's periventricular CSF exceeds every same-age control's mean."""
    near = template_on_grid[..., CH["ventricle_dist"]] < 12
    volume = {"NC": [], "AD": []}
    for k in range(4):
        for label, disease in (("NC", 0.0), ("AD", 0.25)):
            rng = np.random.default_rng([k, disease > 0])
            scan = render_session(rng, _anatomy(rng, "FM"[k % 2]), ageing=0.15 + 0.03 * k, disease=disease)
            volume[label].append((scan["inside"] & (scan["gm"] + scan["wm"] < 0.5) & near).sum() * VOXEL_MM**3 / 1e3)
    assert min(volume["AD"]) > np.mean(volume["NC"]), volume  # millilitres


def test_unknown_preset(presets, tmp_path):
    with pytest.raises(ValueError, match="nope") as err:
        make_cohort(tmp_path, "nope")
    for name in ("small", "ppmi", "adni", "oasis1", "oasis2", "tiny"):
        assert name in str(err.value)
    with pytest.raises(ValueError, match="nope"):
        ensure_cohort(tmp_path / "e", "nope")
    assert not (tmp_path / "e").exists()


def test_ensure_cohort_reuses_and_regenerates(presets, tmp_path, monkeypatch):
    root = tmp_path / "cohort"
    manifest = ensure_cohort(root, "tiny", seed=0)
    assert manifest == root / "manifest.csv"
    assert stamp_of(root)["seed"] == 0 and stamp_of(root)["version"] == "v3-mni152-exact"
    first = manifest.read_bytes()
    stamp = os.stat(manifest).st_mtime_ns

    calls = []
    real = brain_mri.make_cohort
    monkeypatch.setattr(brain_mri, "make_cohort", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert ensure_cohort(root, "tiny", seed=0) == manifest
    assert calls == [] and os.stat(manifest).st_mtime_ns == stamp

    assert ensure_cohort(root, "tiny", seed=1) == manifest
    assert len(calls) == 1
    assert stamp_of(root)["seed"] == 1
    assert manifest.read_bytes() != first
