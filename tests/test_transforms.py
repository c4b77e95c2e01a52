"""Clip augmentation (one draw for all frames) and batch mixing (CutMix box shared by all frames)."""
from __future__ import annotations

import pytest
import torch

from medvid_core.transforms import BatchMix, VideoAugment

K, H, W = 5, 24, 24


def image(seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(H, W, generator=g)
    img[6:18, 8:14] += 1.0  # structure, so crops and rotations show
    return img


# ------------------------------------------------------------------- VideoAugment


@pytest.mark.parametrize("seed", range(4))
def test_same_transform_for_every_frame(seed):
    torch.manual_seed(seed)
    frames = image().expand(K, H, W).contiguous()
    out = VideoAugment()(frames)
    assert out.shape == (K, H, W) and out.dtype == torch.float32
    for k in range(1, K):
        assert torch.equal(out[k], out[0])
    assert not torch.allclose(out, frames, atol=1e-3)


def test_stacked_frames_equal_frames_done_one_by_one():
    """One random draw per clip: each frame of a clip gets what it would get alone with that draw."""
    frames = torch.stack([image(s) for s in range(K)])
    aug = VideoAugment()
    torch.manual_seed(11)
    stacked = aug(frames)
    for k in range(K):
        torch.manual_seed(11)
        alone = aug(frames[k : k + 1])
        torch.testing.assert_close(stacked[k], alone[0], rtol=1e-5, atol=1e-5)


def test_crop_only_still_crops():
    torch.manual_seed(0)
    frames = image().expand(K, H, W).contiguous()
    out = VideoAugment(crop_scale=(0.4, 0.5), brightness=0, rotate_degrees=0)(frames)
    assert out.shape == (K, H, W)
    assert not torch.allclose(out, frames, atol=1e-3)
    assert all(torch.equal(out[k], out[0]) for k in range(K))


def test_full_crop_no_brightness_no_rotation_is_identity():
    torch.manual_seed(0)
    frames = torch.stack([image(s) for s in range(K)])
    out = VideoAugment(crop_scale=(1.0, 1.0), brightness=0, rotate_degrees=0)(frames)
    torch.testing.assert_close(out, frames, rtol=1e-5, atol=1e-5)


def test_brightness_is_one_factor_per_clip():
    torch.manual_seed(3)
    frames = torch.stack([image(s) for s in range(K)]) + 0.1
    out = VideoAugment(crop_scale=(1.0, 1.0), brightness=0.2, rotate_degrees=0)(frames)
    ratio = out / frames
    f = ratio.flatten()[0].item()
    assert 0.8 <= f <= 1.2 and abs(f - 1) > 1e-4
    torch.testing.assert_close(ratio, torch.full_like(ratio, f), rtol=1e-4, atol=1e-4)


def test_repr():
    assert repr(VideoAugment(rotate_degrees=5)) == "VideoAugment(crop_scale=(0.8, 1.0), brightness=0.2, rotate_degrees=5)"


# ------------------------------------------------------------------- BatchMix

B, C, T = 4, 1, 3


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Clip b, frame t is filled with 10 * (b + 1) + t (plus a small pattern): the source of every pixel shows."""
    b = torch.arange(B).view(B, 1, 1, 1, 1)
    t = torch.arange(T).view(1, 1, T, 1, 1)
    pattern = 0.01 * torch.rand(1, C, 1, H, W, generator=torch.Generator().manual_seed(0))
    x = (10.0 * (b + 1) + t + pattern).expand(B, C, T, H, W).contiguous()
    return x, torch.arange(B)  # one class per clip: targets show who was mixed with whom


def test_soft_targets_default_mix():
    torch.manual_seed(0)
    x, y = batch()
    for _ in range(10):
        out, soft = BatchMix(num_classes=B)(x, y)
        assert out.shape == x.shape
        assert soft.shape == (B, B) and soft.dtype == torch.float32
        torch.testing.assert_close(soft.sum(1), torch.ones(B))
        assert (soft >= 0).all()


@pytest.mark.parametrize("seed", range(3))
def test_cutmix_pastes_one_box_into_every_frame(seed):
    torch.manual_seed(seed)
    x, y = batch()
    out, soft = BatchMix(num_classes=B, cutmix_p=1.0, mixup_p=0.0)(x, y)
    src = x.roll(1, 0)  # torchvision pairs each clip with the previous one
    pasted = out != x
    assert pasted.any(), "no pixel came from another clip"
    # every pixel is from the clip itself or from its partner, never blended
    assert torch.equal(torch.where(pasted, src, x), out)
    # the same box in every frame (and every clip)
    box = pasted[0, 0, 0]
    assert torch.equal(pasted, box.expand_as(pasted))
    rows, cols = box.any(1).nonzero().flatten(), box.any(0).nonzero().flatten()
    assert box.sum() == len(rows) * len(cols)  # a rectangle
    assert box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
    # the soft target is the pasted area
    lam = 1 - box.float().mean().item()
    for b in range(B):
        assert soft[b, b].item() == pytest.approx(lam, abs=1e-6)
        assert soft[b, (b - 1) % B].item() == pytest.approx(1 - lam, abs=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_mixup_is_a_convex_mix(seed):
    torch.manual_seed(seed)
    x, y = batch()
    out, soft = BatchMix(num_classes=B, cutmix_p=0.0, mixup_p=1.0)(x, y)
    lam = soft[0, 0].item()
    assert 0.0 <= lam <= 1.0
    torch.testing.assert_close(out, lam * x + (1 - lam) * x.roll(1, 0), rtol=1e-5, atol=1e-4)
    for b in range(B):
        assert soft[b, b].item() == pytest.approx(lam, abs=1e-6)
        assert soft[b, (b - 1) % B].item() == pytest.approx(1 - lam, abs=1e-6)
    assert out.is_contiguous() and type(out) is torch.Tensor


def test_no_mixing():
    torch.manual_seed(0)
    x, y = batch()
    y = torch.tensor([1, 0, 1, 1])
    out, soft = BatchMix(num_classes=2, cutmix_p=0.0, mixup_p=0.0)(x, y)
    assert torch.equal(out, x)
    assert torch.equal(soft, torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]))


def test_probabilities_must_sum_to_at_most_one():
    with pytest.raises(ValueError, match="cutmix_p"):
        BatchMix(num_classes=2, cutmix_p=0.7, mixup_p=0.4)
    BatchMix(num_classes=2, cutmix_p=0.6, mixup_p=0.4)  # exactly 1 is fine
