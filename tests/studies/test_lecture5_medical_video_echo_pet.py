"""Lecture 5, part two, sections 1 (echo EF) and 4 (PET U-Net): tiny runs that learn, the beat-to-beat windows,
the tables beside the papers, measures and findings."""
import numpy as np
import pytest

from medvid_core.studies import lecture5_medical_video as LMV


@pytest.mark.parametrize("n,frames,period", [(72, 8, 8), (200, 16, 4), (57, 8, 8)])
def test_windows_cover_the_whole_video(n, frames, period):
    starts = LMV.echo_window_starts(n, echo_frames=frames, echo_period=period)
    span = (frames - 1) * period + 1
    covered = np.zeros(n, bool)
    for s in starts:
        covered[s : s + span] = True
    assert covered.all() and starts[0] == 0 and starts[-1] + span == n and starts == sorted(set(starts))


def test_a_window_longer_than_the_video_is_refused():
    with pytest.raises(ValueError, match="shorter than one window"):
        LMV.echo_window_starts(40, echo_frames=8, echo_period=8)


@pytest.fixture(scope="module")
def echo_run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MEDVID_DATA", str(tmp_path_factory.mktemp("data")))
    try:
        yield LMV.run_echo(echo_clips=48, echo_frames=8, echo_size=24, echo_period=8, echo_epochs=12, echo_lr=3e-3,
                           echo_widths=(8, 16, 32, 32), echo_batch_size=4, seed=0, device="cpu")
    finally:
        mp.undo()


def test_echo_regression_beats_predicting_the_mean(echo_run):
    t = echo_run["table"].set_index("model")
    r21 = t.loc[LMV.ECHO_MODELS["r2plus1d_small"]]
    assert r21.MAE < t.loc["predict the training mean", "MAE"] and r21.R2 > 0
    assert echo_run["n_train"] == 36 and echo_run["n_test"] == 6
    table = LMV.echo_table(echo_run)
    assert table.MAE.iloc[-1] == LMV.ECHONET_PAPER["MAE"] and table.R2.iloc[-1] == LMV.ECHONET_PAPER["R2"]


def test_beat_to_beat_windows_cover_the_long_clip(echo_run):
    b = LMV.beat_to_beat(echo_run, beat_ef=(60, 40, 25, 55))
    covered = np.zeros(b["n_frames"], bool)
    for s in b["starts"]:
        covered[s : s + b["span"]] = True
    assert covered.all() and len(b["predicted"]) == len(b["drawn"]) == len(b["starts"])
    assert b["drawn"].min() >= 25 - 1e-9 and b["drawn"].max() <= 60 + 1e-9  # each window's EF is its beats' mean


def test_echo_words_measures_and_findings_come_from_the_numbers(echo_run):
    b = LMV.beat_to_beat(echo_run)
    words = LMV.echo_words(echo_run, b)
    mae = echo_run["table"].set_index("model").MAE[LMV.ECHO_MODELS["r2plus1d_small"]]
    assert f"MAE {mae:.1f}" in words
    m = LMV.echo_measures(echo_run)
    assert set(m) == {f"echo: {label} {k}" for label in LMV.ECHO_MODELS.values() for k in ("MAE", "R2")}
    assert m[f"echo: {LMV.ECHO_MODELS['r2plus1d_small']} MAE"].value == pytest.approx(mae)
    f = LMV.echo_findings(echo_run, b)
    assert len(f) == 3 and all(x["holds"] in (True, False, None) for x in f)


def test_pet_unet_learns_the_lesions(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVID_DATA", str(tmp_path))
    r = LMV.run_pet_unet(pet_train=8, pet_eval=2, pet_epochs=12, pet_lr=1e-2, pet_channels=(4, 8, 16, 32),
                         pet_res_units=1, pet_crop=32, pet_batch_size=1, seed=0, device="cpu")
    v = r["per_volume"]
    assert len(v) == 4 and (v.split == "eval").sum() == 2  # Dice on as many training volumes as evaluation ones
    assert v[v.split == "train"].Dice.mean() > 0.3  # an untrained net's argmax marks all or nothing: Dice ~0
    table = LMV.pet_table(r)
    assert table.loc["Dice (evaluation)", "Blanc-Durand et al. 2018"] == 0.7911
    assert table.loc["Dice (evaluation)", "this run (synthetic)"] == round(v[v.split == "eval"].Dice.mean(), 3)
    m = LMV.pet_measures(r)
    assert m["pet: U-Net Dice (evaluation volumes)"].n == 2
    assert [x["claim"][:2] for x in LMV.pet_findings(r)] == ["4.", "4."]
    assert f"{v[v.split == 'eval'].Dice.mean():.2f}" in LMV.pet_words(r)
