"""TSN segment sampling and the slicing of a RAS volume into frames."""
from __future__ import annotations

import numpy as np
import pytest

from medvid_core.sampling import VIEW_AXIS, SegmentSampler, volume_to_frames

# ------------------------------------------------------------------- SegmentSampler


def test_test_mode_takes_segment_middles():
    idx = SegmentSampler(4, train=False)(40)
    assert idx.tolist() == [5, 15, 25, 35]
    assert SegmentSampler(3, train=False)(9).tolist() == [1, 4, 7]
    assert SegmentSampler(8, train=False)(64).tolist() == [4, 12, 20, 28, 36, 44, 52, 60]


def test_test_mode_is_deterministic_and_ignores_rng():
    s = SegmentSampler(5, train=False)
    a = s(37, np.random.default_rng(0))
    b = s(37, np.random.default_rng(1))
    assert a.tolist() == b.tolist() == s(37).tolist()


@pytest.mark.parametrize("n_frames,k", [(40, 4), (37, 8), (100, 16), (9, 3)])
def test_train_indices_fall_in_their_segments(n_frames, k):
    s = SegmentSampler(k, train=True)
    edges = np.linspace(0, n_frames, k + 1)
    lo, hi = np.floor(edges[:-1]).astype(int), np.ceil(edges[1:]).astype(int) - 1
    rng = np.random.default_rng(0)
    draws = np.stack([s(n_frames, rng) for _ in range(500)])
    assert draws.shape == (500, k) and draws.dtype.kind == "i"
    assert (draws >= lo).all() and (draws <= hi).all()
    assert (np.diff(draws, axis=1) >= 0).all()
    # draws differ, and each segment is explored beyond a single frame
    possible = int(np.prod(hi - lo + 1))
    assert len({tuple(d) for d in draws}) >= min(50, 0.9 * possible)
    assert all(len(set(draws[:, j])) > 1 for j in range(k))


def test_train_mode_exact_segments_when_divisible():
    s = SegmentSampler(4, train=True)
    rng = np.random.default_rng(3)
    for _ in range(200):
        idx = s(40, rng)
        assert [i // 10 for i in idx] == [0, 1, 2, 3]


def test_train_mode_is_seeded_and_default_rng_varies():
    s = SegmentSampler(6, train=True)
    assert s(60, np.random.default_rng(7)).tolist() == s(60, np.random.default_rng(7)).tolist()
    assert len({tuple(s(60)) for _ in range(20)}) > 1  # no rng: fresh entropy each call


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("n_frames", [1, 3, 5])
def test_fewer_frames_than_segments_repeat(train, n_frames):
    s = SegmentSampler(8, train=train)
    rng = np.random.default_rng(0)
    for _ in range(50):
        idx = s(n_frames, rng)
        assert len(idx) == 8
        assert idx.min() >= 0 and idx.max() <= n_frames - 1
        assert (np.diff(idx) >= 0).all()
        if n_frames == 1:
            assert idx.tolist() == [0] * 8
    if not train:
        assert s(3).tolist() == [0, 0, 0, 1, 1, 2, 2, 2]


def test_single_segment():
    assert SegmentSampler(1, train=False)(40).tolist() == [20]
    assert SegmentSampler(1, train=False)(7).tolist() == [3]
    draws = {int(SegmentSampler(1, train=True)(10, np.random.default_rng(i))[0]) for i in range(200)}
    assert draws == set(range(10))


def test_invalid_segments():
    with pytest.raises(ValueError, match="num_segments"):
        SegmentSampler(0, train=False)


# ------------------------------------------------------------------- volume_to_frames

SHAPE = (5, 6, 7)  # RAS: x left->right, y posterior->anterior, z inferior->superior
MARK = (1, 4, 5)  # a voxel: left of centre, anterior, superior


@pytest.fixture
def volume():
    v = np.zeros(SHAPE, np.float32)
    v[MARK] = 1.0
    return v


@pytest.mark.parametrize(
    "view,shape,where",
    [
        # sagittal: frames left->right, rows superior->inferior, cols posterior->anterior
        ("sagittal", (5, 7, 6), (1, 7 - 1 - 5, 4)),
        # coronal: frames posterior->anterior, rows superior->inferior, cols left->right
        ("coronal", (6, 7, 5), (4, 7 - 1 - 5, 1)),
        # axial: frames inferior->superior, rows anterior->posterior, cols left->right
        ("axial", (7, 6, 5), (5, 6 - 1 - 4, 1)),
    ],
)
def test_marked_voxel_lands_where_expected(volume, view, shape, where):
    frames = volume_to_frames(volume, view)
    assert frames.shape == shape
    assert frames.flags["C_CONTIGUOUS"]
    assert frames[where] == 1.0
    assert frames.sum() == 1.0
    assert frames.dtype == volume.dtype


def test_superior_is_up_in_every_sagittal_and_coronal_frame():
    z = np.broadcast_to(np.arange(SHAPE[2], dtype=float), SHAPE)  # value = height (superior larger)
    for view in ("sagittal", "coronal"):
        f = volume_to_frames(z, view)
        assert (np.diff(f, axis=1) < 0).all(), view  # rows go down = inferior
        assert (np.diff(f, axis=2) == 0).all(), view
    y = np.broadcast_to(np.arange(SHAPE[1], dtype=float)[None, :, None], SHAPE)  # anterior larger
    f = volume_to_frames(y, "axial")
    assert (np.diff(f, axis=1) < 0).all()  # anterior at the top
    assert (np.diff(f, axis=0) == 0).all()


def test_exact_frames_on_a_small_array():
    v = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    f = volume_to_frames(v, "sagittal")
    np.testing.assert_array_equal(f[0], v[0].T[::-1])
    np.testing.assert_array_equal(f[1], v[1].T[::-1])
    f = volume_to_frames(v, "coronal")
    np.testing.assert_array_equal(f[2], v[:, 2, :].T[::-1])
    f = volume_to_frames(v, "axial")
    np.testing.assert_array_equal(f[3], v[:, :, 3].T[::-1])


def test_unknown_view():
    assert set(VIEW_AXIS) == {"sagittal", "coronal", "axial"}
    with pytest.raises(ValueError, match="oblique") as err:
        volume_to_frames(np.zeros(SHAPE), "oblique")
    for view in VIEW_AXIS:
        assert view in str(err.value)
