"""Heads: swap a model's classifier, and load weights into everything but the classifier.

Both address the head by its dotted submodule path (`"fc"`, `"classifier.6"`), the same path the
trainer's `head=` takes, through `nn.Module.get_submodule` / `set_submodule`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import torch
import torch.nn as nn


def replace_head(model: nn.Module, path: str, num_outputs: int, *,
                 head: Callable[[int, int], nn.Module] = nn.Linear) -> nn.Module:
    """Put a fresh `head(in_features, num_outputs)` (default a Linear) at submodule `path`; every other
    weight stays. The old module must have `in_features` (a Linear, or a head built this way); the new one
    goes to the old one's device. Returns `model`, changed in place."""
    try:
        old = model.get_submodule(path)
    except AttributeError:
        raise ValueError(f"replace_head: {type(model).__name__} has no submodule {path!r}") from None
    if not isinstance(getattr(old, "in_features", None), int):
        raise ValueError(f"replace_head: {path} is a {type(old).__name__}, not a Linear (no in_features)")
    new = head(old.in_features, num_outputs)
    weight = next(old.parameters(), None)
    if weight is not None:
        new = new.to(weight.device)
    model.set_submodule(path, new)
    return model


def load_without_head(model: nn.Module, state: Mapping[str, torch.Tensor], head: str, *,
                      source: str | Path = "state dict") -> nn.Module:
    """Load `state` into every weight of `model` but the head at `head` (e.g. a 1000-class ImageNet
    classifier: `state`'s own entries under `head` are dropped), checking that what stays unloaded is
    exactly the head and that nothing is left over: a `strict=False` load that skips a renamed or
    mistyped layer silently would leave it at random init. Raises ValueError naming `source` (the
    checkpoint file) and the keys otherwise."""
    def under_head(k: str) -> bool:
        return k == head or k.startswith(head + ".")

    head_keys = {k for k in model.state_dict() if under_head(k)}
    if not head_keys:
        raise ValueError(f"{source}: {type(model).__name__} has no head {head!r}")
    state = {k: v for k, v in state.items() if not under_head(k)}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches are raised even with strict=False
        raise ValueError(f"{source}: does not fit {type(model).__name__}: {_one_line(exc)}") from None
    missing, unexpected = set(result.missing_keys) - head_keys, set(result.unexpected_keys)
    if missing or unexpected:
        wrong = [f"missing {_keys(missing)}" if missing else "", f"unexpected {_keys(unexpected)}" if unexpected else ""]
        raise ValueError(f"{source}: only the head {head!r} may be missing; " + "; ".join(w for w in wrong if w))
    return model


def _keys(keys, shown: int = 5) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:shown]) + (f" (+{len(keys) - shown} more)" if len(keys) > shown else "")


def _one_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__
