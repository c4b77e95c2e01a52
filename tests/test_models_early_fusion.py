"""Early fusion: six views in, one prediction out; only the first layer has weights per view, and it
sees every view (a label carried by the last view alone is learnt)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import train_losses

from medvid_core.models import count_parameters, get_model


def _model(**kw):
    return get_model("vgg19_early_fusion", width=0.0625, batch_norm=True, **kw)


def test_shapes_views_as_frames_or_stacked(one_thread):
    model = _model().eval()
    views = torch.randn(2, 1, 6, 32, 32)
    out = model(views)
    assert out.shape == (2, 2)
    assert torch.allclose(out, model(views[:, 0]))  # (B, 6, H, W): view v is channel v
    with pytest.raises(ValueError, match=r"\(B, 1, 6, H, W\)"):
        model(torch.randn(2, 1, 5, 32, 32))
    with pytest.raises(ValueError, match="stacked"):
        model(torch.randn(2, 3, 32, 32))


def test_the_first_layer_sees_six_views_each_with_its_own_kernel():
    model = _model()
    conv = model.first_conv
    assert conv is model.features[0] and conv.in_channels == 6
    x = torch.randn(1, 6, 16, 16)
    per_view = sum(F.conv2d(x[:, v:v + 1], conv.weight[:, v:v + 1], padding=1) for v in range(6))
    per_view = per_view + conv.bias[:, None, None]
    assert torch.allclose(conv(x), per_view, atol=1e-5)
    y = x.clone()
    y[:, 5] += 1.0  # the last view changes: the first layer's output changes
    assert not torch.allclose(conv(x), conv(y))


def test_everything_after_the_first_layer_is_one_network():
    fused, single = _model(), get_model("vgg19", in_channels=1, width=0.0625, batch_norm=True)
    shapes = {k: v.shape for k, v in fused.state_dict().items()}
    assert shapes.pop("features.0.weight")[1] == 6
    expected = {k: v.shape for k, v in single.state_dict().items()}
    expected.pop("features.0.weight")
    assert shapes == expected  # no layer repeated per view
    out_ch = fused.first_conv.out_channels
    assert count_parameters(fused) - count_parameters(single) == 5 * out_ch * 3 * 3


def test_a_label_in_the_last_view_alone_is_learnt(one_thread):
    torch.manual_seed(0)
    labels = torch.arange(8) % 2
    views = 0.1 * torch.randn(8, 1, 6, 32, 32)
    views[labels == 1, :, 5, 8:24, 8:24] += 1.0  # only view 6 tells the classes apart
    model = _model(dropout=0.0).train()
    losses = train_losses(model, views, labels, steps=15)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses
