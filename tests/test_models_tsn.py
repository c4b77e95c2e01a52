"""TSN / TSM (and the 3D-ResNet baseline): the temporal shift, sizes as in Video4MRI, and they learn."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from helpers import assert_tiny_run_learns

from medvid_core.models import count_parameters, get_model, list_models
from medvid_core.models.tsn import TSN, TemporalShift

# (exact trainable params with in_channels=1, num_classes=2; Video4MRI Table 2 in millions)
PARAMS = {
    "tsn_r18": (11_171_266, 11.19e6),
    "tsm_r18": (11_171_266, 11.19e6),
    "tsn_r50": (23_505_858, 23.56e6),
    "tsm_r50": (23_505_858, 23.56e6),
    "resnet3d_18": (33_161_922, 33.16e6),
    "resnet3d_50": (46_163_010, 46.16e6),
}


@pytest.fixture(scope="module")
def tsn(one_thread) -> TSN:
    torch.manual_seed(0)
    return get_model("tsn_r18", num_classes=2, in_channels=1, dropout=0.0).eval()


@pytest.fixture(scope="module")
def tsm(tsn) -> TSN:
    """A TSM with exactly TSN's weights (TSM's first conv of each block lives at `conv1.net`)."""
    model = get_model("tsm_r18", num_classes=2, in_channels=1, dropout=0.0).eval()
    shifted = {name for name, m in model.backbone.named_modules() if isinstance(m, TemporalShift)}
    mapped = {}
    for key, value in tsn.backbone.state_dict().items():
        module, _, leaf = key.rpartition(".")
        mapped[f"{module}.net.{leaf}" if module in shifted else key] = value
    model.backbone.load_state_dict(mapped)  # strict: every key must map
    model.fc.load_state_dict(tsn.fc.state_dict())
    return model


# ------------------------------------------------------------------- the shift itself


@pytest.mark.parametrize("fold_div", [8, 4])
def test_shift_moves_exactly_the_right_channels(fold_div):
    b, t, c, h, w = 2, 5, 16, 2, 3
    fold = c // fold_div
    bi = torch.arange(b).view(b, 1, 1, 1, 1)
    ti = torch.arange(t).view(1, t, 1, 1, 1)
    ci = torch.arange(c).view(1, 1, c, 1, 1)
    # every value encodes (clip, frame, channel); +1 keeps them all non-zero
    x = (1000 * bi + 100 * (ti + 1) + ci + 1).float().expand(b, t, c, h, w).contiguous()
    out = TemporalShift.shift(x.view(b * t, c, h, w), t, fold_div).view(b, t, c, h, w)
    assert out.shape == x.shape
    for n in range(b):
        for f in range(t):
            for ch in range(c):
                got = out[n, f, ch]
                if ch < fold:  # from the next frame; the last frame has none
                    want = 0.0 if f == t - 1 else 1000 * n + 100 * (f + 2) + ch + 1
                elif ch < 2 * fold:  # from the previous frame; the first frame has none
                    want = 0.0 if f == 0 else 1000 * n + 100 * f + ch + 1
                else:  # untouched
                    want = 1000 * n + 100 * (f + 1) + ch + 1
                assert torch.all(got == want), (n, f, ch, got.flatten()[0].item(), want)


def test_shift_does_not_mix_clips_and_keeps_input():
    x = torch.randn(3 * 4, 8, 2, 2)
    before = x.clone()
    out = TemporalShift.shift(x, 4)
    assert torch.equal(x, before)  # not in place
    # clip 1 alone gives the same result as clip 1 inside the batch
    alone = TemporalShift.shift(x[4:8].contiguous(), 4)
    assert torch.equal(out[4:8], alone)


@pytest.mark.parametrize("fold_div", [8, 4])
def test_shift_gradient_is_the_reverse_shift(fold_div):
    # the hand-written backward against finite differences (double precision)
    x = torch.randn(2 * 3, 8, 2, 2, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: TemporalShift.shift(v, 3, fold_div), (x,))
    # and against autograd through plain indexing
    g = torch.randn(6, 8, 2, 2, dtype=torch.double)
    TemporalShift.shift(x, 3, fold_div).backward(g)
    ref = x.detach().clone().requires_grad_()
    v, fold = ref.view(2, 3, 8, 2, 2), 8 // fold_div
    plain = torch.cat([torch.cat([v[:, 1:, :fold], torch.zeros_like(v[:, :1, :fold])], 1),
                       torch.cat([torch.zeros_like(v[:, :1, fold:2 * fold]), v[:, :-1, fold:2 * fold]], 1),
                       v[:, :, 2 * fold:]], 2)
    plain.reshape(6, 8, 2, 2).backward(g)
    assert torch.equal(x.grad, ref.grad)


def test_shift_wraps_first_conv_of_every_block_for_tsm_only():
    for name, n_blocks in (("tsm_r18", 8), ("tsm_r50", 16)):
        m = get_model(name)
        blocks = [blk for layer in (m.backbone.layer1, m.backbone.layer2, m.backbone.layer3, m.backbone.layer4)
                  for blk in layer]
        assert len(blocks) == n_blocks
        for blk in blocks:
            assert isinstance(blk.conv1, TemporalShift), name
            assert isinstance(blk.conv1.net, nn.Conv2d)
            assert blk.conv1.fold_div == 8
            for other in ("conv2", "downsample"):
                sub = getattr(blk, other)
                assert sub is None or not any(isinstance(s, TemporalShift) for s in sub.modules())
        shifts = [s for s in m.modules() if isinstance(s, TemporalShift)]
        assert len(shifts) == n_blocks and len(m.shifts) == n_blocks
        assert not isinstance(m.backbone.conv1, TemporalShift)  # stem is not shifted
    for name in ("tsn_r18", "tsn_r50"):
        m = get_model(name)
        assert not any(isinstance(s, TemporalShift) for s in m.modules()), name
        assert len(m.shifts) == 0


def test_forward_sets_segment_count(tsm):
    with torch.no_grad():
        tsm(torch.randn(1, 1, 3, 32, 32))
    assert {s.n_segment for s in tsm.shifts} == {3}
    with torch.no_grad():
        tsm(torch.randn(1, 1, 5, 32, 32))
    assert {s.n_segment for s in tsm.shifts} == {5}


# ------------------------------------------------------------------- registry and sizes


def test_unknown_model_names_choices():
    with pytest.raises(ValueError, match="nope") as err:
        get_model("nope")
    for name in ("tsn_r18", "tsm_r18", "tsn_r50", "tsm_r50", "resnet3d_18", "resnet3d_50"):
        assert name in list_models()
        assert name in str(err.value)


@pytest.mark.parametrize("name", list(PARAMS))
def test_parameter_count_matches_paper(name):
    exact, paper = PARAMS[name]
    n = count_parameters(get_model(name, num_classes=2, in_channels=1))
    assert n == exact, f"{name}: {n:,} trainable params"
    assert abs(n / paper - 1) <= 0.005, f"{name}: {n:,} vs paper {paper / 1e6} M"


def test_tsn_and_tsm_heads_and_stem():
    m = get_model("tsm_r50", num_classes=3, in_channels=2, dropout=0.1)
    assert m.backbone.conv1.in_channels == 2
    assert isinstance(m.fc, nn.Linear) and (m.fc.in_features, m.fc.out_features) == (2048, 3)
    assert m.dropout.p == 0.1
    assert isinstance(m.backbone.fc, nn.Identity)


@pytest.mark.parametrize("frames", [3, 8])
@pytest.mark.parametrize("fixture", ["tsn", "tsm"])
def test_output_shape(request, fixture, frames):
    model = request.getfixturevalue(fixture)
    with torch.no_grad():
        out = model(torch.randn(2, 1, frames, 32, 32))
    assert out.shape == (2, 2)
    assert torch.isfinite(out).all()


def test_resnet3d_output_shape():
    torch.manual_seed(0)
    m = get_model("resnet3d_18", num_classes=2, dropout=0.0).eval()
    with torch.no_grad():
        out = m(torch.randn(2, 1, 8, 32, 32))
    assert out.shape == (2, 2) and torch.isfinite(out).all()


# ------------------------------------------------------------------- the shift is active


def test_tsm_differs_from_tsn_with_identical_weights(tsn, tsm, monkeypatch):
    x = torch.randn(2, 1, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = tsn(x), tsm(x)
    assert not torch.allclose(a, b, atol=1e-4), "the shift changed nothing"
    # and the difference is the shift alone: without it, TSM is TSN
    monkeypatch.setattr(TemporalShift, "shift", staticmethod(lambda x, n_segment, fold_div=8: x))
    with torch.no_grad():
        c = tsm(x)
    torch.testing.assert_close(c, a, rtol=1e-5, atol=1e-5)


def test_frame_order_matters_for_tsm_only(tsn, tsm):
    x = torch.randn(1, 1, 4, 32, 32, generator=torch.Generator().manual_seed(2))
    perm = x[:, :, [2, 0, 3, 1]]
    with torch.no_grad():
        torch.testing.assert_close(tsn(perm), tsn(x), rtol=1e-4, atol=1e-5)  # mean consensus
        assert not torch.allclose(tsm(perm), tsm(x), atol=1e-4)


def test_tiny_training_run_reduces_loss():
    assert_tiny_run_learns("tsm_r18", frames=4, steps=4)
