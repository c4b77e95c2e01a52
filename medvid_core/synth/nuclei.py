"""Synthetic fluorescence nuclei for instance segmentation, in the Data Science Bowl 2018 layout.

DSB 2018 (the lecture's nuclei example) ships one folder per image: `<id>/images/<id>.png` and one
binary PNG per nucleus in `<id>/masks/`. This writes the same tree: grey images of elliptical nuclei
(varying size, brightness and texture; some touching, which is what makes instance segmentation harder
than semantic segmentation), blur, background glow and noise, each nucleus's mask as its own PNG.
Deterministic: the same seed gives the same bytes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from ..cache import ensure


def render_nuclei(*, seed: int, size: int = 96, n_nuclei: int = 14, touching: float = 0.4):
    """One image in memory: (uint8 image (size, size), bool masks (N, size, size)). About a fraction
    `touching` of nuclei are placed against an earlier one; masks never overlap (later ones are clipped)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, size, n_nuclei]))
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    taken = np.zeros((size, size), bool)
    masks, centres, image = [], [], np.zeros((size, size), np.float32)
    for _ in range(200):
        if len(masks) == n_nuclei:
            break
        ry, rx = rng.uniform(3.5, 8.0), rng.uniform(3.5, 8.0)
        if centres and rng.random() < touching:  # against an earlier nucleus
            cy0, cx0, r0 = centres[rng.integers(len(centres))]
            a = rng.uniform(0, 2 * np.pi)
            cy, cx = cy0 + (r0 + ry) * 0.95 * np.sin(a), cx0 + (r0 + rx) * 0.95 * np.cos(a)
        else:
            cy, cx = rng.uniform(6, size - 6, 2)
        angle = rng.uniform(0, np.pi)
        c, s = np.cos(angle), np.sin(angle)
        u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
        m = (u / rx) ** 2 + (v / ry) ** 2 <= 1
        m &= ~taken
        if m.sum() < 25 or m.sum() < 0.6 * np.pi * rx * ry:  # mostly hidden behind others: skip
            continue
        taken |= m
        masks.append(m)
        centres.append((cy, cx, max(rx, ry)))
        texture = 1 + 0.15 * ndimage.gaussian_filter(rng.normal(size=(size, size)), 1.5) / 0.19
        image += m * rng.uniform(0.45, 1.0) * texture
    glow = ndimage.gaussian_filter(rng.random((size, size)), 12)
    image = ndimage.gaussian_filter(image, 1.0) + 0.12 + 0.06 * (glow - glow.mean()) / glow.std()  # uneven background
    image += rng.normal(0, 0.05, image.shape)
    image = np.clip(255 * image / max(1.0, float(image.max())), 0, 255).astype(np.uint8)
    return image, np.stack(masks) if masks else np.zeros((0, size, size), bool)


def make_nuclei_images(root: str | Path, *, n_images: int = 4, size: int = 96, n_nuclei: int = 14,
                       seed: int = 0) -> Path:
    """Write `n_images` DSB-2018-style folders under `root`; return `root`."""
    root = Path(root)
    for i in range(n_images):
        image, masks = render_nuclei(seed=seed * 1000 + i, size=size, n_nuclei=n_nuclei)
        sid = f"synthetic{i:04d}"
        (root / sid / "images").mkdir(parents=True, exist_ok=True)
        (root / sid / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / sid / "images" / f"{sid}.png")
        for k, m in enumerate(masks):
            Image.fromarray((m * 255).astype(np.uint8)).save(root / sid / "masks" / f"{sid}_{k:03d}.png")
    return root


def ensure_nuclei_images(root: str | Path, *, n_images: int = 4, size: int = 96, n_nuclei: int = 14,
                         seed: int = 0) -> Path:
    """`make_nuclei_images` on first use (`medvid_core.cache.ensure`), keyed on every argument: another
    `n_images` (or size, count, seed) rebuilds `root` from scratch, so no image of an older run is left."""
    key = dict(generator="nuclei", version=1, n_images=n_images, size=size, n_nuclei=n_nuclei, seed=seed)
    return ensure(root, key, lambda tmp: make_nuclei_images(tmp, n_images=n_images, size=size,
                                                            n_nuclei=n_nuclei, seed=seed))
