"""Losses and loss weights that the trainer's `loss_fn` takes (`fit(..., loss_fn=...)`).

Plain torch losses serve most recipes as they are: `nn.CrossEntropyLoss(weight=w)` for class weights,
`nn.BCEWithLogitsLoss()` for multi-label targets, `nn.CrossEntropyLoss(ignore_index=...)` for sparse labels.
This module holds what torch does not ship.
"""
from __future__ import annotations

import numpy as np
import torch


# --------------------------------------------------------------------------- class imbalance


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


# --------------------------------------------------------------------------- segmentation from sparse annotation
# Dice + cross-entropy over the labelled voxels only (3D U-Net, Cicek et al. 2016).

class SparseDiceCELoss(torch.nn.Module):
    """Cross-entropy + soft Dice over the *labelled* voxels only; voxels whose target is `ignore_index`
    carry no weight at all (Cicek et al.'s sparse annotation: a few labelled slices, the rest unlabelled).

    The mask is applied *after* the softmax: unlabelled voxels enter neither the cross-entropy (its
    `ignore_index`) nor any Dice sum, so their logits get an exactly zero gradient and the loss value does
    not depend on them. (MONAI's `MaskedLoss` multiplies the *logits* by the mask before the softmax: an
    unlabelled voxel then still predicts a uniform 1/C, which enters the Dice denominators.)
    Input: logits (B, C, *spatial); target: integer labels (B, *spatial) or (B, 1, *spatial).
    """

    def __init__(self, *, ignore_index: int = 255, dice_weight: float = 1.0, ce_weight: float = 1.0,
                 smooth: float = 1e-5, include_background: bool = False):
        super().__init__()
        self.ignore_index, self.dice_weight, self.ce_weight = ignore_index, dice_weight, ce_weight
        self.smooth, self.include_background = smooth, include_background  # background Dice off: it dominates

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.ndim == logits.ndim:
            target = target[:, 0]
        target = target.long()
        labelled = target != self.ignore_index
        if not labelled.any():
            return logits.sum() * 0.0  # nothing labelled in this batch: no signal, a zero gradient
        ce = torch.nn.functional.cross_entropy(logits, target, ignore_index=self.ignore_index)
        n_classes = logits.shape[1]
        onehot = torch.nn.functional.one_hot(torch.where(labelled, target, 0), n_classes).movedim(-1, 1)
        weight = labelled.unsqueeze(1).to(logits.dtype)
        probs = logits.softmax(1) * weight  # after the activation: unlabelled voxels drop out entirely
        onehot = onehot.to(logits.dtype) * weight
        dims = [0, *range(2, logits.ndim)]
        inter, denom = (probs * onehot).sum(dims), (probs + onehot).sum(dims)
        dice = (2 * inter + self.smooth) / (denom + self.smooth)
        if not self.include_background:
            dice = dice[1:]
        return self.ce_weight * ce + self.dice_weight * (1 - dice.mean())


# --------------------------------------------------------------------------- attention across scales
# The pairwise ranking loss of the recurrent attention CNN (Fu, Zheng & Mei, CVPR 2017).


def scale_ranking_loss(logits: torch.Tensor, targets: torch.Tensor, *, margin: float = 0.05) -> torch.Tensor:
    """Mean over samples and neighbouring scales of max(0, p_t(s) - p_t(s + 1) + margin).

    `logits` (N, S, K) per scale, `targets` (N,) class indices; p_t(s) is the softmax probability of the
    true class at scale s. The loss is zero once every finer scale is at least `margin` more confident
    than the one before (Fu et al.'s margin: 0.05); it trains the attention, which picks what the finer
    scale sees, while the classifiers are held fixed."""
    if logits.ndim != 3 or logits.shape[1] < 2:
        raise ValueError(f"scale_ranking_loss expects (N, scales >= 2, classes) logits, got {tuple(logits.shape)}")
    p = logits.softmax(-1).gather(2, targets.long().view(-1, 1, 1).expand(-1, logits.shape[1], 1))[..., 0]
    return torch.clamp(p[:, :-1] - p[:, 1:] + margin, min=0).mean()
