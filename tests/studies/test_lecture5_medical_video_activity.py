"""Lecture 5, part two, sections 2 (ICU activities) and 3 (the Quo Vadis line-up): tiny runs of the runners,
the timeline covering every frame, the windows' edges, and the five architectures in the slide's order."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medvid_core.studies import lecture5_medical_video as LMV
from medvid_core.synth.icu_activity import ACTIVITIES, FPS


def test_icu_windows_are_centred_and_repeat_the_edge_frames():
    video = np.arange(10, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
    offsets = LMV._icu_offsets(4, 2)
    assert offsets.tolist() == [-4, -2, 0, 2]
    windows = LMV._IcuWindows([video], [np.arange(10) % 5], [(0, 0), (0, 5), (0, 9)], offsets)
    x, y = windows[0]
    assert x.shape == (1, 4, 2, 3) and y == 0
    assert x[0, :, 0, 0].tolist() == [0, 0, 0, 2]  # frames before the clip are its first frame
    assert windows[1][0][0, :, 0, 0].tolist() == [1, 3, 5, 7] and windows[1][1] == 0
    assert windows[2][0][0, :, 0, 0].tolist() == [5, 7, 9, 9] and windows[2][1] == 4


@pytest.fixture(scope="module")
def icu(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDVID_DATA", str(tmp_path_factory.mktemp("data")))
        return LMV.run_icu(icu_clips=3, icu_seconds=24, icu_test_clips=1, icu_epochs=1, icu_stride=6,
                           icu_scale=3, device="cpu")


def test_icu_labels_every_frame_and_the_timeline_shows_them_all(icu):
    (pred,), (truth,) = icu["predictions"], icu["targets"]
    assert len(pred) == len(truth) == 24 * FPS
    assert set(np.unique(pred)) <= set(range(len(ACTIVITIES)))
    fig = LMV.icu_timeline_figure(icu)
    ax = fig.axes[0]
    for row, labels in ((1, pred), (0, truth)):  # bars of each row tile [0, duration] exactly
        bars = sorted((p.get_paths()[0].vertices[:, 0].min(), p.get_paths()[0].vertices[:, 0].max())
                      for c in ax.collections for p in [c] if c.get_paths()[0].vertices[:, 1].min() // 1 == row)
        assert bars[0][0] == pytest.approx(0) and bars[-1][1] == pytest.approx(len(labels) / FPS)
        assert all(a[1] == pytest.approx(b[0]) for a, b in zip(bars, bars[1:]))
        assert len(bars) == len(LMV.label_segments(labels))


def test_icu_scores_words_measures_findings(icu):
    assert icu["table"]["activity"].tolist() == list(ACTIVITIES)
    assert icu["table"]["frames"].sum() == len(icu["targets"][0])
    seg = icu["segment_table"]
    assert seg["IoU threshold"].tolist() == [0.1, 0.25, 0.5]
    assert (seg["found"].diff().dropna() <= 0).all()  # a stricter overlap never finds more
    words = LMV.icu_words(icu)
    assert f"{icu['summary']['frame accuracy']:.0%}" in words
    m = LMV.icu_measures(icu)
    assert m["icu: frame accuracy"].value == pytest.approx(icu["summary"]["frame accuracy"])
    assert len(LMV.icu_findings(icu)) == 2
    assert LMV.icu_paper_table(icu).shape == (3, 3)


def test_quo_vadis_tiny_run_has_the_five_rows_in_the_slides_order(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVID_DATA", str(tmp_path))
    r = LMV.run_quo_vadis(qv_clips_per_class=3, qv_frames=8, qv_frame_size=32, qv_epochs=1, device="cpu")
    t = r["table"]
    assert t["architecture"].tolist() == list(LMV.QUO_VADIS_ARCHITECTURES) == [
        "(a) LSTM", "(b) 3D-ConvNet", "(c) Two-Stream", "(d) 3D-Fused", "(e) Two-Stream I3D"]
    assert t["accuracy"].between(0, 1).all() and (t["params"] > 0).all()
    assert (t["ms/clip (with flow)"] >= t["ms/clip (network)"]).all() and r["flow_ms"] > 0
    flow_free = t.set_index("architecture").loc[["(a) LSTM", "(b) 3D-ConvNet"]]
    assert flow_free[["Flow", "RGB+Flow"]].isna().all().all()
    assert (flow_free["ms/clip (with flow)"] == flow_free["ms/clip (network)"]).all()
    assert t.set_index("architecture").loc[["(c) Two-Stream", "(e) Two-Stream I3D"], ["RGB", "Flow", "RGB+Flow"]].notna().all().all()
    shown = LMV.quo_vadis_table(r)
    assert shown.index.tolist() == list(LMV.QUO_VADIS_ARCHITECTURES)
    assert [c for c in shown.columns if c[0].endswith("(paper)")] == [
        (d, c) for d in ("UCF-101 (paper)", "HMDB-51 (paper)") for c in ("RGB", "Flow", "RGB+Flow")]
    assert shown.loc["(e) Two-Stream I3D", ("UCF-101 (paper)", "RGB+Flow")] == 93.4
    words = LMV.quo_vadis_words(r)
    assert all(a in words for a in LMV.QUO_VADIS_ARCHITECTURES)
    m = LMV.quo_vadis_measures(r)
    assert "quo vadis: (e) Two-Stream I3D accuracy" in m and "quo vadis: (c) Two-Stream Flow accuracy" in m
    assert all(0 <= v.value <= 1 for v in m.values())
    found = LMV.quo_vadis_findings(r)
    assert len(found) == 4 and all(f["holds"] in (True, False) or math.isnan(f["ours"] or math.nan) for f in found)
    LMV.quo_vadis_figure(r)
    assert torch.is_tensor(r["inputs"]["flow_clip"]) and r["inputs"]["flow_clip"].shape[1:3] == (2, 7)
    torch.randn(100)  # whatever the caller's random state, the same seed gives the same run
    again = LMV.run_quo_vadis(inputs=r["inputs"], qv_epochs=1, device="cpu")
    assert again["predictions"].keys() == r["predictions"].keys()
    assert all(np.array_equal(again["predictions"][k][1], p) for k, (_, p) in r["predictions"].items())
