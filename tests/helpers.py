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
