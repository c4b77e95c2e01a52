"""Shared pieces of the model tests: a separable toy set and a few optimiser steps."""
import torch
import torch.nn.functional as F


def toy_clips(*, n: int = 8, frames: int = 4, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy clips; class 1 has a bright square in the middle of every slice."""
    labels = torch.arange(n) % 2
    clips = 0.1 * torch.randn(n, 1, frames, size, size)
    clips[labels == 1, :, :, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] += 1.0
    return clips, labels


def train_losses(model: torch.nn.Module, clips: torch.Tensor, labels: torch.Tensor, *, steps: int) -> list[float]:
    """Loss before each of `steps` Adam steps (lr 1e-3) on the whole batch."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(clips), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def assert_tiny_run_learns(model_name: str, *, frames: int, steps: int) -> None:
    """A registry model on the toy set, from seed 0: finite losses, the last under half the first."""
    import math

    from medvid_core.models import get_model

    torch.manual_seed(0)
    clips, labels = toy_clips(frames=frames)
    model = get_model(model_name, num_classes=2, dropout=0.0).train()
    losses = train_losses(model, clips, labels, steps=steps)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses
