"""explain: guided backprop (vs plain gradient and a hook-free reference), ReLU-safe copies, Grad-CAM,
eq. (1), local entropy, crop boxes, the zoom, and scores against ground-truth boxes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

import medvid_core.models.resnet2d  # noqa: F401
import medvid_core.models.vgg  # noqa: F401
from medvid_core import explain
from medvid_core.models import get_model


class _GuidedReLU(torch.autograd.Function):
    """Hook-free guided ReLU: pass gradient only where input > 0 and gradient > 0."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0) * (g > 0)


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 6, 3, padding=1)
        self.r1, self.r2, self.r3 = nn.ReLU(), nn.ReLU(), nn.ReLU()
        self.fc1, self.fc2 = nn.Linear(6 * 4 * 4, 8), nn.Linear(8, 2)

    def forward(self, x, relu=None):
        act = relu or (lambda m, t: m(t))
        x = F.max_pool2d(act(self.r1, self.c1(x)), 2)
        x = F.max_pool2d(act(self.r2, self.c2(x)), 2)
        return self.fc2(act(self.r3, self.fc1(x.flatten(1))))


@pytest.fixture
def net(one_thread):
    torch.manual_seed(0)
    return SmallNet().eval()


def test_guided_backprop_matches_hook_free_reference_and_differs_from_gradient(net):
    x = torch.randn(3, 1, 16, 16)
    gbp = explain.guided_backprop(net, x, target=1)
    xr = x.clone().requires_grad_(True)
    net(xr, relu=lambda m, t: _GuidedReLU.apply(t))[:, 1].sum().backward()
    torch.testing.assert_close(gbp, xr.grad)
    plain = explain.plain_gradient(net, x, target=1)
    assert not torch.allclose(gbp, plain, atol=1e-6)
    assert (gbp != 0).any()


def test_torchvision_resnet_is_made_relu_safe(one_thread):
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None, num_classes=2).eval()
    ours = get_model("resnet18", num_classes=2).eval()
    ours.load_state_dict(tv.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match="layer1.0.relu"):
        explain.check_relus_called_once(tv, x)  # the original reuses its block ReLU
    safe = explain.relu_safe_copy(tv)
    explain.check_relus_called_once(safe, x)
    torch.testing.assert_close(safe(x), tv(x))
    torch.testing.assert_close(explain.guided_backprop(tv, x, target=0), explain.guided_backprop(ours, x, target=0))
    assert isinstance(tv.layer1[0].relu, nn.ReLU)  # the caller's model is untouched


def test_gbp_normalize_is_eq1():
    x = torch.rand(2, 1, 5, 7) * 3 + 1
    y = explain.gbp_normalize(x)
    ref = 0.5 + 0.5 * (x[1] - x[1].mean()) / x[1].std(correction=0)
    torch.testing.assert_close(y[1], ref)
    torch.testing.assert_close(y.mean(dim=(1, 2, 3)), torch.full((2,), 0.5))
    assert torch.equal(explain.gbp_normalize(torch.ones(1, 1, 3, 3)), torch.full((1, 1, 3, 3), 0.5))


def test_entropy_of_constant_map_is_zero_and_texture_is_high():
    assert explain.local_entropy(np.full((20, 20), 0.3), radius=3).max() == 0
    rng = np.random.default_rng(0)
    noisy = np.zeros((40, 40))
    noisy[5:15, 20:35] = rng.random((10, 15))
    ent = explain.local_entropy(noisy, radius=2)
    assert ent[10, 27] > 3 and ent[35, 5] == 0
    x0, y0, x1, y1 = explain.entropy_region(ent, quantile=0.9)
    assert 3 <= x0 and x1 <= 38 and y0 >= 3 and y1 <= 17 and 18 <= (x0 + x1) / 2 <= 36
    assert explain.entropy_region(np.zeros((8, 6))) == (0, 0, 6, 8)


@pytest.mark.parametrize("region,image,size", [((2, 3, 4, 5), (300, 200), 64), ((0, 0, 1, 1), (300, 200), 64),
                                               ((60, 60, 64, 64), (300, 200), 64), ((0, 0, 64, 64), (300, 200), 64),
                                               ((10, 10, 20, 20), (50, 400), 64)])
def test_crop_box_inside_image_and_at_least_input_size(region, image, size):
    x0, y0, x1, y1 = explain.crop_box(region, (64, 64), image, size)
    h, w = image
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    assert x1 - x0 >= min(size, w) and y1 - y0 >= min(size, h)
    if h < size:
        assert (y0, y1) == (0, h)  # shorter than the input: the whole axis


def test_crop_box_follows_the_region():
    # region in the map's top-left corner of a 640x640 image: crop near the top-left, 64 px
    assert explain.crop_box((0, 0, 4, 4), (64, 64), (640, 640), 64) == (0, 0, 64, 64)
    # a large region keeps its size (scaled by 10)
    assert explain.crop_box((30, 10, 50, 40), (64, 64), (640, 640), 64) == (300, 100, 500, 400)
    # inside an earlier crop at (100, 50) of size 128: coordinates compose
    assert explain.crop_box((32, 32, 64, 64), (64, 64), (128, 128), 64, origin=(100, 50),
                            within=(640, 640)) == (164, 114, 228, 178)


def test_zoom_runs_recurrently_and_keeps_boxes_inside(one_thread):
    torch.manual_seed(0)
    model = get_model("vgg11", num_classes=2, in_channels=1, width=0.125, batch_norm=True).eval()
    rng = np.random.default_rng(0)
    images = [rng.random((120, 90)).astype(np.float32), rng.random((40, 200)).astype(np.float32)]
    res = explain.zoom(model, images, input_size=32, steps=2, keep_maps=True, entropy_radius=2)
    assert res["probs"].shape == (3, 2, 2) and np.allclose(res["probs"].sum(-1), 1, atol=1e-5)
    assert res["boxes"].shape == (2, 2, 4) and res["response"].shape == (2, 2, 32, 32)
    for step in range(2):
        for (x0, y0, x1, y1), im in zip(res["boxes"][step], images):
            h, w = im.shape
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert x1 - x0 >= min(32, w) and y1 - y0 >= min(32, h)


def test_grad_cam_is_image_sized_and_non_negative(one_thread):
    torch.manual_seed(0)
    model = get_model("vgg11", num_classes=2, in_channels=1, width=0.125).eval()
    x = torch.randn(2, 1, 64, 64)
    cam = explain.grad_cam(model, model.features[-2], x, target=1)
    assert cam.shape == (2, 64, 64) and cam.min() >= 0


def test_scores_against_ground_truth():
    assert explain.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    s = explain.score_crop((0, 0, 64, 64), abnormalities=[(10, 10, 20, 20)], flags=[(60, 60, 80, 80)])
    assert s["contains_abnormality"] == 1.0 and s["on_flag"] == 0.0 and s["iou"] == pytest.approx(100 / 4096)
    s = explain.score_crop((50, 50, 100, 100), abnormalities=[], flags=[(60, 60, 80, 80)])
    assert np.isnan(s["iou"]) and np.isnan(s["contains_abnormality"]) and s["on_flag"] == 1.0
    sal = np.zeros((10, 10))
    sal[2, 3] = 3.0
    sal[8, 8] = 1.0
    # map at half the image resolution: map pixel (3, 2) is image pixels x 6-8, y 4-6
    assert explain.map_mass(sal, [(6, 4, 8, 6)], map_to_image=(2, 2)) == pytest.approx(0.75)
    assert explain.pointing_hit(sal, [(6, 4, 8, 6)], map_to_image=(2, 2)) == 1.0
    assert explain.pointing_hit(sal, [(0, 0, 4, 4)], map_to_image=(2, 2)) == 0.0


def test_an_empty_map_is_reported_not_scored():
    """An all-zero map (Grad-CAM with every weighted channel negative) points nowhere: NaN, not a miss."""
    zero = np.zeros((8, 8), np.float32)
    assert explain.empty_map(zero) and not explain.empty_map(np.eye(8))
    assert np.isnan(explain.map_mass(zero, [(0, 0, 4, 4)]))
    assert np.isnan(explain.pointing_hit(zero, [(0, 0, 4, 4)]))


def test_a_constant_nonzero_map_is_reported_not_scored_and_chance_is_the_area_share():
    """A constant map that is not zero points nowhere either: NaN for mass and hit (it used to score the
    boxes' area share as its mass); that share is `area_fraction`, the uniform map's chance level."""
    flat = np.full((8, 8), 0.3, np.float32)
    box = [(0, 0, 4, 4)]  # a quarter of the map
    assert explain.empty_map(flat)
    assert np.isnan(explain.map_mass(flat, box)) and np.isnan(explain.pointing_hit(flat, box))
    assert explain.area_fraction(flat.shape, box) == 0.25
    assert explain.area_fraction((8, 8), [(0, 0, 8, 8)], map_to_image=(2, 2)) == 0.25  # image pixels -> map
    assert np.isnan(explain.area_fraction((8, 8), []))
    almost = flat.copy()
    almost[0, 0] = 0.31  # one pixel off: no longer constant, scored
    assert explain.map_mass(almost, box) == pytest.approx((16 * 0.3 + 0.01) / (64 * 0.3 + 0.01))
