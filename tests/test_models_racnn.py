"""RA-CNN: squares stay inside their parent whatever the APN says, the crop is differentiable in
(tx, ty, tl), three scales of logits, the initial square, and the ranking loss reaches only the APN."""
from __future__ import annotations

import itertools

import pytest
import torch

from medvid_core.losses import scale_ranking_loss
from medvid_core.models import get_model
from medvid_core.models.racnn import nest, square_from_raw, zoom_square


def _model(**kw):
    return get_model("racnn_vgg19", in_channels=1, input_size=32, width=0.0625, batch_norm=True, **kw)


def _inside(sq: torch.Tensor, eps: float = 1e-6) -> bool:
    tx, ty, tl = sq.unbind(-1)
    return bool(((tx - tl >= -eps) & (tx + tl <= 1 + eps) & (ty - tl >= -eps) & (ty + tl <= 1 + eps)).all())


def test_the_attention_crop_stays_inside_the_image_for_extreme_apn_outputs():
    values = (-1e6, -50.0, 0.0, 50.0, 1e6)
    raw = torch.tensor(list(itertools.product(values, repeat=3)))
    sq = square_from_raw(raw, min_side=1 / 3, init_side=0.5)
    assert torch.isfinite(sq).all() and _inside(sq)
    assert (2 * sq[:, 2] >= 1 / 3 - 1e-6).all() and (2 * sq[:, 2] <= 1 + 1e-6).all()
    assert _inside(nest(sq, sq.flip(0)))  # a square inside a square inside the image
    model = _model().eval()
    for apn in model.apns:  # an APN gone wild: its largest possible outputs
        apn.fc[-1].bias.data = torch.tensor([1e6, -1e6, 1e6])
    _, squares = model(torch.rand(2, 1, 48, 48))
    assert _inside(squares)
    s2, s3 = squares[:, 0], squares[:, 1]  # scale 3's square lies inside scale 2's
    for c in (0, 1):  # x, then y
        assert (s3[:, c] - s3[:, 2] >= s2[:, c] - s2[:, 2] - 1e-6).all()
        assert (s3[:, c] + s3[:, 2] <= s2[:, c] + s2[:, 2] + 1e-6).all()


def test_the_crop_is_differentiable_in_tx_ty_tl():
    torch.manual_seed(0)
    image = torch.rand(1, 1, 12, 12, dtype=torch.double)
    sq = torch.tensor([[0.45, 0.6, 0.2]], dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: zoom_square(image, s, 6), (sq,), eps=1e-6, atol=1e-5)
    zoom_square(image, sq, 6).sum().backward()
    assert (sq.grad.abs() > 0).all()  # every one of tx, ty, tl moves the crop


def test_the_crop_is_the_square_zoomed():
    image = torch.arange(64.0).view(1, 1, 8, 8)
    half = zoom_square(image, torch.tensor([[0.25, 0.25, 0.25]]), 4, sharpness=1e4)  # the top-left quarter
    assert torch.allclose(half, image[..., :4, :4], atol=1e-3)
    whole = zoom_square(image, torch.tensor([[0.5, 0.5, 0.5]]), 8, sharpness=1e4)
    assert torch.allclose(whole, image, atol=1e-3)


def test_three_scales_of_logits_and_the_initial_square(one_thread):
    model = _model().eval()
    logits, squares = model(torch.rand(3, 1, 40, 40))
    assert logits.shape == (3, 3, 2) and squares.shape == (3, 2, 3)
    assert torch.allclose(model.combine(logits), logits.mean(1))
    # a fresh APN proposes half its parent's side, centred: 1/2 of the image, then 1/4
    assert torch.allclose(squares[:, 0], torch.tensor([0.5, 0.5, 0.25]).expand(3, 3))
    assert torch.allclose(squares[:, 1], torch.tensor([0.5, 0.5, 0.125]).expand(3, 3))
    assert len({id(p) for p in model.scales[0].parameters()} & {id(p) for p in model.scales[1].parameters()}) == 0


def test_ranking_loss_asks_each_finer_scale_to_be_surer_by_the_margin():
    targets = torch.tensor([1])
    ordered = torch.log(torch.tensor([[[0.7, 0.3], [0.5, 0.5], [0.3, 0.7]]]))  # p_t: 0.3, 0.5, 0.7
    assert scale_ranking_loss(ordered, targets) == 0
    reversed_ = ordered.flip(1)  # p_t: 0.7, 0.5, 0.3
    assert scale_ranking_loss(reversed_, targets).item() == pytest.approx(0.2 + 0.05)
    with pytest.raises(ValueError, match="scales"):
        scale_ranking_loss(torch.zeros(2, 1, 2), torch.tensor([0, 1]))


def test_the_ranking_loss_reaches_the_apns(one_thread):
    torch.manual_seed(0)
    model = _model().train()
    for apn in model.apns:
        torch.nn.init.normal_(apn.fc[-1].weight, std=0.1)  # off the zero start, so both layers get a gradient
    logits, _ = model(torch.rand(4, 1, 40, 40))
    scale_ranking_loss(logits, torch.tensor([0, 1, 0, 1]), margin=1.0).backward()
    for apn in model.apns:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in apn.parameters())
