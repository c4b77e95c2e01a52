"""Read one Data Science Bowl 2018 sample: `<id>/images/<id>.png` and the per-nucleus PNGs in `<id>/masks/`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


class NucleiError(ValueError):
    """A sample folder that cannot be used; the message names the file or folder."""


def load_nuclei_sample(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(grey image float32 in [0, 1] (H, W), bool instance masks (N, H, W)). RGB(A) images are averaged to grey."""
    folder = Path(folder)
    image_path = folder / "images" / f"{folder.name}.png"
    if not image_path.exists():
        raise NucleiError(f"{image_path}: image not found")
    try:
        img = np.asarray(Image.open(image_path), dtype=np.float32)
    except Exception as exc:
        raise NucleiError(f"{image_path}: cannot read PNG ({type(exc).__name__})") from None
    if img.ndim == 3:
        img = img[..., :3].mean(-1)
    masks = []
    for p in sorted((folder / "masks").glob("*.png")):
        m = np.asarray(Image.open(p)) > 0
        if m.shape != img.shape:
            raise NucleiError(f"{p}: mask shape {m.shape} differs from the image's {img.shape}")
        masks.append(m)
    if not masks:
        raise NucleiError(f"{folder / 'masks'}: no mask PNGs")
    return img / 255.0, np.stack(masks)
