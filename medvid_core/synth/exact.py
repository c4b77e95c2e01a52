"""Arithmetic that gives the same bits on every CPU, for the generators' few steps that otherwise do not.

A synthetic cohort should be the same bytes on AVX2, AVX-512 and ARM machines. Two things broke that
(measured with `medvid_core.synth.checksums` on an AVX-512 machine, pinned to AVX2 and not):

* a NumPy ``@``/``tensordot`` goes to BLAS, which picks its kernels (and so the order of its sums and
  its use of fused multiply-add) by CPU: OpenBLAS's SkylakeX kernels changed the MNI152 heads' bytes;
* ``x ** y`` in float32 runs Intel's SVML on AVX-512 and another routine elsewhere (so do float64
  ``exp`` and ``**``): it changed the radiographs' bytes.

Element-wise ``*`` and ``+`` are single IEEE operations (NumPy never fuses them), and NumPy's own float32
``exp``/``log``/``sin`` gave the same bits with and without AVX-512 here, so both helpers below are
built from those alone.
"""
from __future__ import annotations

import numpy as np


def dot(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``points @ matrix`` for points (..., k) and a small matrix (k, m) or vector (k,): the products
    summed over k in a fixed order, without BLAS."""
    m = np.asarray(matrix)
    col = m[:, None] if m.ndim == 1 else m
    out = points[..., 0, None] * col[0]
    for k in range(1, col.shape[0]):
        out = out + points[..., k, None] * col[k]
    return out[..., 0] if m.ndim == 1 else out


def power(x: np.ndarray, exponent: float) -> np.ndarray:
    """``x ** exponent`` for x >= 0 in float32 as exp(exponent * log(x)) (0 stays 0)."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(divide="ignore"):
        return np.exp(np.float32(exponent) * np.log(x))
