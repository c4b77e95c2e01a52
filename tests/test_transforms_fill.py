"""Removing a boxed object: a fill with the ring's mean leaves no edge at the box border, blanking does,
the outlier mask finds the letters and not their background, and inpainting changes the mask only."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from medvid_core.metrics import border_contrast
from medvid_core.transforms import blank_boxes, boxes_mask, inpaint, outlier_mask, ring_mean_fill

BOX = (20, 24, 44, 40)  # x0, y0, x1, y1


def _marked(seed: int = 0) -> np.ndarray:
    """A noisy mid-grey background with a bright letter 'L' inside BOX."""
    rng = np.random.default_rng(seed)
    img = (0.55 + rng.normal(0, 0.01, (64, 72))).astype(np.float32)
    u8 = np.zeros(img.shape, np.uint8)
    cv2.putText(u8, "L", (25, 38), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 2)
    return np.maximum(img, u8.astype(np.float32) / 255)


def test_ring_mean_fill_leaves_no_edge_blank_does():
    img = _marked()
    filled = ring_mean_fill(img, [BOX], ring=4)
    blanked = blank_boxes(img, [BOX])
    assert border_contrast(filled, BOX) <= 1.5  # the step across the border: about the noise between neighbours
    assert border_contrast(blanked, BOX) > 10  # a black box on grey: an edge all round
    assert border_contrast(img, BOX) < border_contrast(blanked, BOX)
    x0, y0, x1, y1 = BOX
    assert np.allclose(filled[y0:y1, x0:x1], filled[y0, x0]) and abs(filled[y0, x0] - 0.55) < 0.01
    outside = ~boxes_mask(img.shape, [BOX])
    assert np.array_equal(filled[outside], img[outside]) and np.array_equal(blanked[outside], img[outside])
    assert (blanked[y0:y1, x0:x1] == 0).all()


def test_ring_mean_ignores_other_boxes_and_widens_float_boxes():
    img = np.full((30, 30), 0.2, np.float32)
    img[5:10, 12:20] = 1.0  # a second box right next to the first: its pixels must not enter the first's ring
    filled = ring_mean_fill(img, [(4.6, 5.2, 11.4, 9.9), (12, 5, 20, 10)], ring=3)
    assert filled[5:10, 4:12] == pytest.approx(0.2)  # floor the start, ceil the end: whole pixels 4..11
    assert filled[5:10, 12:20] == pytest.approx(0.2)


def test_outlier_mask_finds_the_letter_not_its_background():
    img = _marked()
    mask = outlier_mask(img, [BOX], ring=4, k=3.0, grow=0)
    letter = img > 0.7
    assert mask[letter].all()  # every bright stroke pixel
    assert mask.sum() < 1.5 * letter.sum()  # and little else
    assert not mask[~boxes_mask(img.shape, [BOX])].any()  # never outside the box


def test_inpaint_fills_the_mask_only_and_removes_the_letter():
    img = _marked()
    mask = outlier_mask(img, [BOX], ring=4, k=3.0, grow=1)
    out = inpaint(img, mask, radius=3)
    assert out.dtype == img.dtype
    assert np.array_equal(out[~mask], img[~mask])  # not even 8-bit rounding outside the mask
    assert np.abs(out[mask] - 0.55).max() < 0.05  # the letter is gone: background level
    u8 = np.round(img * 255).astype(np.uint8)
    assert np.array_equal(inpaint(u8, mask)[~mask], u8[~mask])
    with pytest.raises(ValueError, match="mask .* does not match image"):
        inpaint(img, mask[:10])
    with pytest.raises(ValueError, match="method must be one of telea, ns"):
        inpaint(img, mask, method="fast")
