"""Dense optical flow: a known translation comes back with its direction and size; orthogonal views."""
import numpy as np
import pytest
from scipy import ndimage

from medvid_core.transforms import FlowError, farneback_flow, flow_stack, orthogonal_views


def _texture(size=64, seed=0):
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.random((size, size)), 2.0)


@pytest.mark.parametrize("dx,dy", [(3, 0), (0, -2), (2, 2)])
def test_translation_recovers_direction_and_size(dx, dy):
    img = _texture()
    frames = np.stack([img, np.roll(img, (dy, dx), axis=(0, 1))])  # content moves by (dx, dy)
    flow = farneback_flow(frames)
    assert flow.shape == (1, 2, 64, 64) and flow.dtype == np.float32
    inner = flow[0, :, 12:-12, 12:-12]  # away from the wrapped border
    assert np.median(inner[0]) == pytest.approx(dx, abs=0.25)
    assert np.median(inner[1]) == pytest.approx(dy, abs=0.25)


def test_still_clip_has_no_flow_and_stack_order():
    img = _texture(seed=1)
    frames = np.stack([img, img, np.roll(img, 2, axis=1)])
    stack = flow_stack(frames)
    assert stack.shape == (4, 64, 64)
    assert np.abs(stack[:2, 12:-12, 12:-12]).mean() < 0.05  # frames 0 -> 1: no motion
    assert np.median(stack[2, 12:-12, 12:-12]) == pytest.approx(2, abs=0.25)  # dx of frames 1 -> 2


def test_bad_input_is_a_clear_error():
    with pytest.raises(FlowError, match="T>=2"):
        farneback_flow(np.zeros((1, 8, 8)))


def test_orthogonal_views_pick_the_three_planes():
    v = np.arange(5 ** 3).reshape(5, 5, 5)
    views = orthogonal_views(v)
    assert views.shape == (3, 5, 5)
    np.testing.assert_array_equal(views[0], v[2])
    np.testing.assert_array_equal(views[1], v[:, 2])
    np.testing.assert_array_equal(views[2], v[:, :, 2])
    with pytest.raises(ValueError, match="cube"):
        orthogonal_views(np.zeros((4, 5, 5)))


def test_subtract_mean_removes_camera_motion():
    img = _texture(seed=2)
    frames = np.stack([img, np.roll(img, 2, axis=1)])  # the whole view pans: camera motion only
    raw, compensated = flow_stack(frames), flow_stack(frames, subtract_mean=True)
    assert np.median(raw[0, 12:-12, 12:-12]) == pytest.approx(2, abs=0.25)
    np.testing.assert_allclose(compensated.mean(axis=(1, 2)), 0, atol=1e-4)
    assert np.abs(compensated[:, 12:-12, 12:-12]).mean() < 0.3
