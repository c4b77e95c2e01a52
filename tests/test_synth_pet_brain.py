"""Synthetic FET-like brain PET: masks are the paper's 1.3 x background threshold of the drawn uptake, 37/11 split, same bytes."""
import hashlib

import numpy as np
import pandas as pd

from medvid_core.cache import stamp_of
from medvid_core.io.nifti import load_volume
from medvid_core.synth import pet_brain as P


def _volume(i):
    return P.render_volume(np.random.default_rng(np.random.SeedSequence([0, i])))


def test_mask_is_the_drawn_lesion_above_the_background_by_a_margin():
    for i in range(3):
        o = _volume(i)
        b, mask = o["b"], o["mask"]
        assert mask.any() and np.array_equal(mask, o["lesion"])  # every drawn lesion voxel passes the threshold
        assert o["clean"][mask].min() >= P.RIM * b * (1 - 1e-6)  # inside: at least 1.4 B
        np.testing.assert_array_equal(o["clean"][~mask], o["background"][~mask])  # outside: the background model
        assert o["background"].max() <= 1.2 * b * (1 + 1e-6) < P.THRESHOLD * b  # which never reaches 1.3 B
        np.testing.assert_array_equal(mask, o["clean"] > P.THRESHOLD * b)  # the paper's definition, exactly
        assert o["pet"][mask].mean() > 1.2 * o["pet"][~mask & (o["background"] > 0.5 * b)].mean()  # visible after PSF + noise


def test_split_shapes_and_determinism(tmp_path):
    m = pd.read_csv(P.make_pet_cohort(tmp_path / "a", n_train=2, n_eval=1, seed=4))
    P.make_pet_cohort(tmp_path / "b", n_train=2, n_eval=1, seed=4)
    digest = lambda r: {p.relative_to(r).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
                        for p in sorted(r.rglob("*.*"))}
    assert digest(tmp_path / "a") == digest(tmp_path / "b") and len(digest(tmp_path / "a")) == 7
    assert m.split.tolist() == ["train", "train", "eval"]
    pet, zooms = load_volume(tmp_path / "a" / m.pet[0])
    mask = load_volume(tmp_path / "a" / m["mask"][0])[0]
    assert pet.shape == P.SHAPE == (64, 64, 40) and mask.shape == P.SHAPE
    np.testing.assert_allclose(zooms, P.voxel_mm(), rtol=1e-5)
    assert set(np.unique(mask)) == {0, 1} and m.lesion_ml[0] > 0.5


def test_default_cohort_is_the_slides_37_and_11(tmp_path, monkeypatch):
    assert (P.N_TRAIN, P.N_EVAL) == (37, 11)
    calls = []
    monkeypatch.setattr(P, "make_pet_cohort", lambda root, **kw: calls.append(kw) or (root / "manifest.csv").write_text("x"))
    P.ensure_pet_cohort(tmp_path / "c")
    assert calls == [{"n_train": 37, "n_eval": 11, "seed": 0}] and stamp_of(tmp_path / "c")["n_train"] == 37
