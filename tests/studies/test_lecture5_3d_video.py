"""Lecture 5 companion: RoI Align against a hand-computed bilinear sample, the lesson's tables and tiny runs."""
import math

import numpy as np
import pytest
import torch
from torchvision.ops import roi_align

from medvid_core.studies import lecture5_3d_video as L5


def _bilinear(f, y, x):
    y0, x0 = math.floor(y), math.floor(x)
    wy, wx = y - y0, x - x0
    return ((1 - wy) * (1 - wx) * f[y0, x0] + (1 - wy) * wx * f[y0, x0 + 1]
            + wy * (1 - wx) * f[y0 + 1, x0] + wy * wx * f[y0 + 1, x0 + 1])


@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_equals_a_hand_computed_bilinear_sample(aligned):
    torch.manual_seed(0)
    f = torch.randn(1, 1, 9, 11)
    x1, y1, x2, y2 = 2.3, 1.7, 6.9, 5.1
    # one bin, one sample: the box centre (minus half a cell when aligned)
    out = roi_align(f, torch.tensor([[0, x1, y1, x2, y2]]), 1, sampling_ratio=1, aligned=aligned)
    off = 0.5 if aligned else 0.0
    expected = _bilinear(f[0, 0], (y1 + y2) / 2 - off, (x1 + x2) / 2 - off)
    assert out.item() == pytest.approx(float(expected), abs=1e-6)
    # 2x2 bins, 2x2 samples: each bin is the mean of four bilinear samples
    out = roi_align(f, torch.tensor([[0, x1, y1, x2, y2]]), 2, sampling_ratio=2, aligned=aligned)[0, 0]
    bw, bh = (x2 - x1) / 2, (y2 - y1) / 2
    for i in range(2):
        for j in range(2):
            pts = [_bilinear(f[0, 0], y1 - off + (i + a) * bh, x1 - off + (j + b) * bw)
                   for a in (0.25, 0.75) for b in (0.25, 0.75)]
            assert out[i, j].item() == pytest.approx(float(sum(pts) / 4), abs=1e-5)


def test_roi_snapping_table():
    t = L5.roi_snapping(box=(1.3, 0.6, 6.1, 4.4), output_size=2)["table"]
    assert (t["RoI Align error"].abs() < 1e-4).all()  # bilinear sampling of a ramp is exact
    assert t["RoI Pool cells x"].tolist() == ["1..3", "4..6", "1..3", "4..6"]  # corners rounded to 1 and 6
    assert (t["RoI Pool (max)"] != t["exact mean"]).all()


def test_conv_cost_table_matches_the_formulas():
    t = L5.conv_cost_table(out_channels=64, kernel=3).set_index(["input", "layer"])
    ct = t.loc["CT 224x224x1x256"]
    assert ct.loc["3D", "params"] == 64 * 27 + 64 and ct.loc["2D, slice by slice", "params"] == 64 * 9 + 64
    assert ct.loc["2D, slices as channels", "params"] == 64 * 256 * 9 + 64
    assert ct.loc["3D", "output shape"] == (1, 64, 256, 224, 224)
    video = t.loc["video 224x224x3x500"]
    assert video.loc["3D", "GFLOPs"] == pytest.approx(2 * 64 * 500 * 224 * 224 * 3 * 27 / 1e9, abs=0.1)


def test_inflation_check_is_exact_only_with_replicate():
    r = L5.inflation_check(image_size=32, frames=4, time_kernel=3)
    t = r["table"].set_index("time padding")
    assert t.loc["replicate", "max |logit 3D - logit 2D|"] < 1e-4
    assert t.loc["zeros", "max |logit 3D - logit 2D|"] > 1e-3
    assert (r["per_frame"]["zeros"] > r["per_frame"]["replicate"]).all()


def test_action_clips_reverse_the_same_kind_of_clip():
    video, y, names = L5.action_clips(actions=("TennisSwing",), clips_per_class=2, frames=4, frame_size=32,
                                      reversed_classes=True)
    assert video.shape == (4, 4, 32, 32, 3) and y.tolist() == [0, 1, 0, 1]
    assert names == ["TennisSwing", "TennisSwing (reversed)"]


def test_instance_ap_runs_and_splitting_helps(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVID_DATA", str(tmp_path))
    t = L5.run_instance_ap(n_images=2)["table"]
    assert ((t[["AP", "AP50", "AP75"]] >= 0) & (t[["AP", "AP50", "AP75"]] <= 100)).all().all()
    assert (t["AP50"] >= t["AP75"]).all() and (t["AP50"] >= t["AP"]).all()


def test_multiview_vs_3d_tiny_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVID_DATA", str(tmp_path))
    r = L5.run_multiview_vs_3d(n_nodules=12, nodule_epochs=1, batch_size=8, test_size=0.5)
    t = r["table"]
    assert len(t) == 5 and t["accuracy"].between(0, 1).all()
    assert t["params"].iloc[4] > t["params"].iloc[0]  # the 3D CNN has more weights than the 2D view net


def test_order_check_flags_frame_averaging_as_order_blind():
    import medvid_core.models.frame_average  # noqa: F401
    from medvid_core.models import get_model

    torch.manual_seed(0)
    clips = L5.action_clips(actions=("Mixing",), clips_per_class=2, frames=4, frame_size=32)
    models = {name: get_model(name, num_classes=2, widths=(8, 16)) for name in ("frame_average_small", "cnn_lstm_small")}
    t = L5.order_check(models, clips).set_index("model")["order-blind"]
    assert t["frame_average_small"] and not t["cnn_lstm_small"]
