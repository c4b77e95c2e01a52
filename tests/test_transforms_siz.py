"""Volume transforms: HU window, spline-interpolated zoom (SIZ) over all three axes, volume rotation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from medvid_core.studies import viptt_net
from medvid_core.transforms import RandomVolumeRotation, hu_to_unit, rotate_volume, spline_zoom


def test_hu_window_to_unit_range():
    out = hu_to_unit(np.array([-3000.0, -1000.0, -300.0, 400.0, 2000.0]))
    assert np.allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0]) and out.dtype == np.float32


@pytest.mark.parametrize("shape", [(30, 50, 40), (5, 64, 64), (70, 20, 30)])  # thicker, thinner than D, equal
@pytest.mark.parametrize("order", [1, 3])
def test_siz_shape_and_range(shape, order):
    rng = np.random.default_rng(0)
    vol = hu_to_unit(rng.uniform(-1200, 1200, shape))
    out = spline_zoom(vol, depth=12, height=16, width=16, order=order) if shape[0] != 70 else \
        spline_zoom(vol, depth=70, height=16, width=16, order=order)
    assert out.shape == ((70 if shape[0] == 70 else 12), 16, 16) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_thin_ct_is_stretched_not_padded():
    """A 5-slice volume zoomed to 20 slices: every output slice is an interpolation, none is padding,
    and a linear ramp along z stays a ramp (order 1 interpolates it exactly)."""
    vol = np.broadcast_to(np.linspace(0.1, 0.9, 5)[:, None, None], (5, 8, 8)).copy()
    out = spline_zoom(vol, depth=20, height=8, width=8, order=1)
    assert out.shape == (20, 8, 8)
    profile = out[:, 4, 4]
    assert np.allclose(profile, np.linspace(0.1, 0.9, 20), atol=1e-5)  # corners aligned: first and last slice kept
    assert (profile > 0.05).all()  # no zero (padding) slice


def test_siz_refuses_non_3d():
    with pytest.raises(ValueError, match="need a \\(d, h, w\\) volume"):
        spline_zoom(np.zeros((4, 4)), depth=2, height=2, width=2)


def test_rotation_angles_and_shape():
    vol = np.zeros((3, 32, 32), np.float32)
    vol[:, 14:18, 4:28] = 1.0  # a horizontal bar
    assert np.array_equal(rotate_volume(vol, 0), vol)
    turned = rotate_volume(vol, 20)
    assert turned.shape == vol.shape and 0 <= turned.min() and turned.max() <= 1
    assert not np.allclose(turned, vol) and np.allclose(turned[0], turned[2])  # every slice rotated alike
    torch.manual_seed(0)
    aug = RandomVolumeRotation(angles=(-20, -10, -5, 0, 5, 10, 20))
    seen = {float(np.abs(aug(vol) - vol).sum()) for _ in range(30)}
    assert len(seen) > 3  # several angles drawn, 0 among them
    assert 0.0 in seen
    assert isinstance(aug(torch.from_numpy(vol)), torch.Tensor)


def test_rotation_angles_are_the_callers_protocol():
    """No default draw in the generic transform: the angles are a study's protocol (ViPTT-Net's lives in its room)."""
    with pytest.raises(TypeError, match="angles"):
        RandomVolumeRotation()
    assert viptt_net.ROTATION_ANGLES == (-20, -10, -5, 0, 5, 10, 20)  # the study's draw, unchanged
    assert repr(RandomVolumeRotation(angles=[5, -5])) == "RandomVolumeRotation(angles=(5, -5), order=1)"
