"""Evaluation: the paper's bootstrap accuracy and the efficiency figures of Table 2."""
from __future__ import annotations

import time

import numpy as np
import torch

from .models import count_parameters


def bootstrap_accuracy(y_true, y_pred, *, frac: float = 0.4, n_rounds: int = 100, seed: int = 0) -> dict:
    """Video4MRI's bootstrap: draw `frac` of the test set with replacement `n_rounds` times.

    Returns the mean accuracy, the 2.5/97.5 percentile interval, and its half-width (the
    number in brackets in the paper's Table 2, e.g. 0.849(0.103)).
    """
    correct = (np.asarray(y_true) == np.asarray(y_pred)).astype(float)
    if correct.size == 0:
        raise ValueError("bootstrap_accuracy: empty test set")
    rng = np.random.default_rng(seed)
    size = max(1, int(round(frac * correct.size)))
    accs = correct[rng.integers(0, correct.size, (n_rounds, size))].mean(axis=1)
    low, high = np.percentile(accs, [2.5, 97.5])
    return {"mean": float(accs.mean()), "low": float(low), "high": float(high),
            "half_width": float((high - low) / 2), "samples": accs}


@torch.no_grad()
def inference_ms(model: torch.nn.Module, clip_shape: tuple[int, ...], *, repeats: int = 5, device="cpu") -> float:
    """Milliseconds per sample for one clip (batch 1) of `clip_shape` = (C, T, H, W), after a warm-up."""
    model.eval().to(device)
    x = torch.zeros((1, *clip_shape), device=device)
    model(x)
    start = time.perf_counter()
    for _ in range(repeats):
        model(x)
    return 1000 * (time.perf_counter() - start) / repeats


def efficiency(model: torch.nn.Module, history: list[dict], clip_shape: tuple[int, ...]) -> dict:
    """Trainable params (M), training s/epoch (mean of epochs after the first, which also reads
    the files), and inference ms/sample."""
    secs = [h["train_seconds"] for h in history[1:]] or [h["train_seconds"] for h in history]
    return {"params_m": count_parameters(model) / 1e6, "train_s_per_epoch": float(np.mean(secs)),
            "inference_ms": inference_ms(model, clip_shape)}
