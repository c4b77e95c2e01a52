"""Losses and loss weights that the trainer's `loss_fn` takes (`fit(..., loss_fn=...)`).

Plain torch losses serve most recipes as they are: `nn.CrossEntropyLoss(weight=w)` for class weights,
`nn.BCEWithLogitsLoss()` for multi-label targets, `nn.CrossEntropyLoss(ignore_index=...)` for sparse labels.
This module holds what torch does not ship.
"""
from __future__ import annotations

import numpy as np
import torch


def class_weights(targets, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights n / (k * n_c), as scikit-learn's class_weight="balanced" computes them.

    A class absent from `targets` gets weight 0 (it cannot be learnt from this split); the message of
    the ValueError names the problem when `targets` is empty or holds a label outside 0..k-1.
    """
    t = np.asarray(targets).astype(int).ravel()
    if t.size == 0:
        raise ValueError("class_weights: no targets")
    if t.min() < 0 or t.max() >= num_classes:
        raise ValueError(f"class_weights: labels must be in 0..{num_classes - 1}, got {t.min()}..{t.max()}")
    counts = np.bincount(t, minlength=num_classes).astype(float)
    weights = np.divide(t.size, num_classes * counts, out=np.zeros_like(counts), where=counts > 0)
    return torch.tensor(weights, dtype=torch.float32)
