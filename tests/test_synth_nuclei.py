"""Synthetic nuclei in the DSB-2018 layout, and the reader that refuses broken samples by name."""
import hashlib

import numpy as np
import pytest

from medvid_core.io.nuclei import NucleiError, load_nuclei_sample
from medvid_core.synth.nuclei import make_nuclei_images, render_nuclei


def test_layout_roundtrip_and_determinism(tmp_path):
    make_nuclei_images(tmp_path / "a", n_images=2, seed=1)
    make_nuclei_images(tmp_path / "b", n_images=2, seed=1)
    digest = lambda r: sorted(hashlib.md5(p.read_bytes()).hexdigest() for p in r.rglob("*.png"))  # noqa: E731
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    image, masks = load_nuclei_sample(tmp_path / "a" / "synthetic0001")
    _, expected = render_nuclei(seed=1001, size=96, n_nuclei=14)
    np.testing.assert_array_equal(masks, expected)
    assert image.shape == (96, 96) and 0 <= image.min() and image.max() <= 1
    assert masks.sum(0).max() == 1  # instances never overlap
    assert image[masks.any(0)].mean() > 2 * image[~masks.any(0)].mean()  # nuclei are brighter


def test_missing_parts_are_named(tmp_path):
    with pytest.raises(NucleiError, match="image not found"):
        load_nuclei_sample(tmp_path / "nothing")
    make_nuclei_images(tmp_path, n_images=1)
    for p in (tmp_path / "synthetic0000" / "masks").glob("*.png"):
        p.unlink()
    with pytest.raises(NucleiError, match="no mask PNGs"):
        load_nuclei_sample(tmp_path / "synthetic0000")
