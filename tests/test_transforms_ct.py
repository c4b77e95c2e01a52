"""CT windowing arithmetic, the three-window stack and background removal."""
from __future__ import annotations

import numpy as np
import torch

from medvid_core.transforms import CT_WINDOWS, ct_window, remove_background, window_stack


def test_window_arithmetic():
    hu = np.array([-1000.0, 0.0, 20.0, 40.0, 60.0, 80.0, 1000.0])
    np.testing.assert_allclose(ct_window(hu, 40, 80), [0, 0, 0.25, 0.5, 0.75, 1, 1])
    np.testing.assert_allclose(ct_window(torch.tensor(hu), 80, 200).numpy(), [0, 0.1, 0.2, 0.3, 0.4, 0.5, 1])


def test_three_window_stack():
    assert CT_WINDOWS == {"brain": (40.0, 80.0), "subdural": (80.0, 200.0), "bone": (600.0, 2800.0)}
    hu = np.full((4, 5), 40.0)
    hu[0, 0] = 1300.0
    out = window_stack(hu)
    assert out.shape == (3, 4, 5) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 1, 1], [0.5, 0.3, (40 - (600 - 1400)) / 2800])
    np.testing.assert_allclose(out[:, 0, 0], [1.0, 1.0, 0.75])
    np.testing.assert_allclose(window_stack(hu, [(0, 100)])[0, 1, 1], 0.9)


def test_background_removal_keeps_the_head_only():
    hu = np.full((40, 40), -1000.0, np.float32)
    hu[5:30, 5:30] = 40.0  # head
    hu[12:15, 12:15] = 10.0  # CSF inside (kept)
    hu[34:37, 2:38] = 300.0  # headrest, separate from the head
    hu[1, 38] = 50.0  # noise speck
    out = remove_background(hu)
    assert (out[5:30, 5:30] == hu[5:30, 5:30]).all()
    assert (out[34:37] == -1000).all() and out[1, 38] == -1000
    assert (remove_background(np.full((4, 4), -1000.0)) == -1000).all()
