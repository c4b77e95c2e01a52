"""Two-stream network (Simonyan & Zisserman, NeurIPS 2014): appearance and motion, fused late.

The spatial stream is a 2D network on one RGB frame; the temporal stream is a 2D network on a stack of
L dense optical-flow fields between consecutive frames, their horizontal and vertical components as 2L
input channels (`medvid_core.transforms.flow_stack`). Each stream is trained on its own; at test time
their softmax scores are averaged (the paper's simplest fusion). Input: a pair (frame (B, 3, H, W),
flow (B, 2L, H, W)); output: log of the averaged class probabilities, so `argmax` is the fused decision
and cross-entropy on it is the fused model's negative log-likelihood.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import register_model
from .small_cnn import SmallCNN


class TwoStream(nn.Module):
    def __init__(self, spatial: nn.Module, temporal: nn.Module, *, spatial_weight: float = 0.5):
        super().__init__()
        self.spatial, self.temporal, self.spatial_weight = spatial, temporal, spatial_weight

    def forward(self, inputs) -> torch.Tensor:
        frame, flow = inputs
        w = self.spatial_weight
        probs = w * self.spatial(frame).softmax(1) + (1 - w) * self.temporal(flow).softmax(1)
        return probs.clamp_min(1e-12).log()


@register_model
def two_stream_small(*, num_classes: int = 2, rgb_channels: int = 3, flow_frames: int = 4,
                     widths=(16, 32, 64), dropout: float = 0.0) -> TwoStream:
    """Two small 2D CNNs: one on an RGB frame, one on `flow_frames` flow fields (2 channels each)."""
    kw = dict(dims=2, num_classes=num_classes, widths=widths, dropout=dropout)
    return TwoStream(SmallCNN(in_channels=rgb_channels, **kw), SmallCNN(in_channels=2 * flow_frames, **kw))
