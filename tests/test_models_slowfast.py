"""SlowFast-R50: size as in Video4MRI, any slice count, lateral fusion shapes, and it learns."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
from helpers import assert_tiny_run_learns

from medvid_core.models import count_parameters, get_model, list_models
from medvid_core.models.slowfast import SlowFast

PAPER_PARAMS = 33.61e6  # Video4MRI Table 2, SlowFast-R50
ALPHA, BETA_INV = 8, 8
SLOW_CHANNELS_AT_FUSION = (64, 256, 512, 1024)  # slow width after stem, res2, res3, res4


@pytest.fixture(scope="module")
def model(one_thread) -> SlowFast:
    torch.manual_seed(0)
    return get_model("slowfast_r50", num_classes=2, in_channels=1).eval()


def test_registered_and_builds_the_right_class(model):
    assert "slowfast_r50" in list_models()
    assert isinstance(model, SlowFast)
    assert isinstance(model.fc, nn.Linear) and model.fc.in_features == 2048 + 256
    assert model.fc.out_features == 2


def test_parameter_count_matches_paper(model):
    n = count_parameters(model)
    assert abs(n / PAPER_PARAMS - 1) <= 0.005, f"{n:,} trainable params, paper says 33.61 M"


@pytest.mark.parametrize("frames", [32, 31, 33, 9, 16])
def test_output_shape_for_any_slice_count(model, frames):
    with torch.no_grad():
        out = model(torch.randn(2, 1, frames, 64, 64))
    assert out.shape == (2, 2)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("frames", [32, 33, 9])
def test_lateral_connections_match_slow_path(model, frames):
    slow_t = math.ceil(frames / ALPHA)
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 1, frames, 64, 64))
    for i, c_slow in enumerate(SLOW_CHANNELS_AT_FUSION):
        lat = feats[f"lateral{i}"]
        assert lat.shape[1] == 2 * c_slow // BETA_INV, f"lateral{i}: {tuple(lat.shape)}"
        assert lat.shape[2] == slow_t, f"lateral{i} has {lat.shape[2]} steps, slow path {slow_t}"
    # the concatenated channels are what the next slow stage is built to take
    for i, stage in enumerate(model.slow_stages):
        assert stage[0].a[0].in_channels == SLOW_CHANNELS_AT_FUSION[i] * (1 + 2 / BETA_INV)
    assert feats["slow"].shape[1:3] == (2048, slow_t)
    assert feats["fast"].shape[1:3] == (256, frames)


def test_slow_path_sees_every_alpha_th_frame(model):
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(x)
    assert feats["slow_input"].shape[2] == 32 // ALPHA == model.slow_frames(32)
    assert torch.equal(feats["slow_input"], x[:, :, ::ALPHA])
    # frames between the sampled ones reach the slow path only through the laterals
    y = x.clone()
    y[:, :, 1:ALPHA] += 5.0
    with torch.no_grad():
        feats_y = model.forward_features(y)
    assert torch.equal(feats_y["slow_input"], feats["slow_input"])
    assert not torch.allclose(feats_y["lateral0"], feats["lateral0"])


def test_kwargs_and_odd_fusion_kernel():
    m = get_model("slowfast_r50", num_classes=3, in_channels=2, dropout=0.0)
    assert m.slow_stem[0][0].in_channels == 2 and m.fast_stem[0][0].in_channels == 2
    assert m.fc.out_features == 3 and m.dropout.p == 0.0
    with pytest.raises(ValueError):
        SlowFast(fusion_kernel=4)


def test_tiny_training_run_reduces_loss():
    assert_tiny_run_learns("slowfast_r50", frames=8, steps=3)
