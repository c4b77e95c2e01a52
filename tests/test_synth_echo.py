"""Synthetic echocardiograms: the drawn ventricle's EF is the stated one, bytes are deterministic, the sector is dark outside."""
import hashlib

import numpy as np
import pandas as pd
import pytest

from medvid_core.cache import stamp_of
from medvid_core.io.echonet import load_video, read_filelist
from medvid_core.synth import echo as E


def _measured_ef(out) -> float:
    v = E.area_length_volume(out["area_mm2"], out["length_mm"])
    return 100 * (v.max() - v.min()) / v.max()


@pytest.mark.parametrize("i", range(6))
def test_ef_measured_from_the_masks_is_the_stated_ef(i):
    """Area-length volumes of the rendered cavity masks: EF within 1.5 EF points of the stated EF (rasterising
    the cavity, and frames that miss the exact end-diastolic or end-systolic instant, are all that differ)."""
    rng = np.random.default_rng(np.random.SeedSequence([0, i]))
    heart = E.draw_heart(rng)
    n = E.clip_frames(heart)
    vols, _ = E.volume_curve(n, heart.fps, heart.heart_rate, heart.edv, heart.esv, phase=heart.phase)
    out = E.render(heart, vols, rng)
    assert abs(_measured_ef(out) - heart.ef) < 1.5
    v = E.area_length_volume(out["area_mm2"], out["length_mm"])
    np.testing.assert_allclose(v, vols, rtol=0.03)  # every frame's volume, not only the extremes
    assert np.corrcoef(out["masks"].sum((1, 2)), vols)[0, 1] > 0.99  # the mask's area follows the volume


def test_a_reduced_ef_patient_contracts_less():
    efs = []
    for ef in (25.0, 65.0):
        rng = np.random.default_rng(1)
        heart = E.draw_heart(rng)
        heart = E.Heart(**{**heart.__dict__, "ef": ef})
        vols, _ = E.volume_curve(60, heart.fps, heart.heart_rate, heart.edv, heart.esv)
        efs.append(_measured_ef(E.render(heart, vols, rng)))
    assert efs[0] == pytest.approx(25, abs=1.5) and efs[1] == pytest.approx(65, abs=1.5)  # noqa: PT018


def test_outside_the_sector_is_black_and_the_cavity_inside_it():
    sector = E.sector_mask()
    assert 0.4 < sector.mean() < 0.8 and sector[0, 0] == 0 and sector[-1, E.SIZE // 2] == 1
    rng = np.random.default_rng(np.random.SeedSequence([0, 3]))
    heart = E.draw_heart(rng)
    out = E.render(heart, np.array([heart.edv, heart.esv]), rng)
    assert (out["frames"][:, ~sector] == 0).all() and out["frames"][:, sector].mean() > 10
    assert not (out["masks"] & ~sector).any() and out["masks"].any()
    assert out["frames"][0][out["masks"][0]].mean() < 0.5 * out["frames"][0][sector & ~out["masks"][0]].mean()


def test_files_are_deterministic_and_in_echonet_layout(tmp_path):
    a, b = E.make_echonet(tmp_path / "a", n_clips=3, seed=2), E.make_echonet(tmp_path / "b", n_clips=3, seed=2)
    digest = lambda root: {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.*"))}  # noqa: E731
    assert digest(a) == digest(b) and len(digest(a)) == 5
    table = read_filelist(a)
    assert list(table.columns[:9]) == ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS",
                                       "NumberOfFrames", "Split"]
    row = table.iloc[0]
    frames = load_video(row)
    assert frames.shape == (row.NumberOfFrames, 112, 112)
    assert row.EF == pytest.approx(100 * (row.EDV - row.ESV) / row.EDV, abs=1e-3)
    vols = pd.read_csv(a / "FrameVolumes.csv")
    assert (vols.groupby("FileName").size() == table.set_index("FileName").NumberOfFrames).all()
    sector = E.sector_mask()
    assert frames[:, ~sector].mean() < 1  # black outside the sector (MJPG rings a little at its edge)


def test_splits_and_reduced_ef_share():
    assert [E.split_of(i) for i in range(8)] == ["TRAIN"] * 6 + ["VAL", "TEST"]
    efs = np.array([E.draw_heart(np.random.default_rng(np.random.SeedSequence([0, i]))).ef for i in range(200)])
    assert 0.15 < (efs < E.REDUCED_EF).mean() < 0.35 and efs.min() >= 15 and efs.max() <= 75


def test_beat_to_beat_clip_follows_each_beats_ef():
    out = E.render_beats(0, beat_ef=[60, 45, 30])
    v = E.area_length_volume(out["area_mm2"], out["length_mm"])
    for b, ef in enumerate([60, 45, 30]):
        in_beat = out["beats"] == b
        measured = 100 * (1 - v[in_beat].min() / out["beat_edv"][b])
        assert measured == pytest.approx(ef, abs=2.0)


def test_ensure_echonet_builds_once(tmp_path):
    root = E.ensure_echonet(tmp_path / "e", n_clips=2, seed=1)
    assert stamp_of(root)["n_clips"] == 2 and len(list((root / "Videos").iterdir())) == 2
