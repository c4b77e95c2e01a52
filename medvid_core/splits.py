"""A stratified train/test split that says when it cannot stratify, instead of quietly not doing it."""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.model_selection import train_test_split


class UnstratifiedSplitWarning(UserWarning):
    """A split asked to be stratified was made unstratified (a class too small for it)."""


def stratified_split(items, labels, *, test_size: float, seed: int):
    """`train_test_split(items, stratify=labels)`; when scikit-learn cannot stratify (a class with one
    member, or fewer test items than classes: tiny cohorts), the unstratified split with the same seed,
    and an `UnstratifiedSplitWarning` naming the smallest class and its size."""
    try:
        return train_test_split(items, test_size=test_size, random_state=seed, stratify=labels)
    except ValueError as exc:
        values, counts = np.unique(np.asarray(labels), return_counts=True)
        k = int(np.argmin(counts))
        smallest = values[k].item() if isinstance(values[k], np.generic) else values[k]
        warnings.warn(f"split not stratified: the smallest class, {smallest!r}, has {counts[k]} of {counts.sum()} "
                      f"items ({exc})", UnstratifiedSplitWarning, stacklevel=2)
        return train_test_split(items, test_size=test_size, random_state=seed)
