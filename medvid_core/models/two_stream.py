"""Two-stream network (Simonyan & Zisserman, NeurIPS 2014): appearance and motion, fused late.

The spatial stream is a 2D network on one RGB frame; the temporal stream is a 2D network on a stack of
L dense optical-flow fields between consecutive frames, their horizontal and vertical components as 2L
input channels (`medvid_core.transforms.flow_stack`). Each stream is trained on its own; at test time
their softmax scores are averaged (the paper's simplest fusion). Input: a pair (frame (B, 3, H, W),
flow (B, 2L, H, W)); output: log of the averaged class probabilities, so `argmax` is the fused decision
and cross-entropy on it is the fused model's negative log-likelihood.

The same late fusion serves Carreira & Zisserman's two-stream I3D (CVPR 2017): two inflated 3D networks,
one on the RGB clip (B, 3, T, H, W), one on the flow clip (B, 2, T-1, H, W). Their "3D-fused" baseline
(after Feichtenhofer et al., CVPR 2016) fuses earlier instead: `FusedTwoStream3D` runs both 2D streams on
each of K time steps and fuses their last feature maps with a 3D convolution, trained end to end.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import register_model
from .inflate import i3d_small
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


@register_model
def two_stream_i3d_small(*, num_classes: int = 2, rgb_channels: int = 3, widths=(16, 32, 64), time_kernel: int = 3,
                         dropout: float = 0.0) -> TwoStream:
    """Two inflated small CNNs (`i3d_small`): RGB clip (B, 3, T, H, W) and flow clip (B, 2, T-1, H, W), fused late."""
    kw = dict(num_classes=num_classes, widths=widths, time_kernel=time_kernel, dropout=dropout)
    return TwoStream(i3d_small(in_channels=rgb_channels, **kw), i3d_small(in_channels=2, **kw))


class FusedTwoStream3D(nn.Module):
    """Pair (frames (B, 3, K, H, W), flow (B, 2L, K, H, W): an RGB frame and the L flow fields after it at
    each of K steps) -> `spatial` and `temporal` 2D conv bodies on every step -> their feature maps stacked
    (B, 2F, K, h, w) -> 3x3x3 conv, BatchNorm, ReLU -> global average pool -> dropout -> `fc`. The paper
    follows its 3D conv with a 3x3x3 max pool and a linear layer; here the pool is global."""

    def __init__(self, spatial: nn.Module, temporal: nn.Module, *, feature_dim: int, fused_dim: int,
                 num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.spatial, self.temporal = spatial, temporal
        self.fuse = nn.Sequential(nn.Conv3d(2 * feature_dim, fused_dim, 3, padding=1, bias=False),
                                  nn.BatchNorm3d(fused_dim), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.dropout, self.fc = nn.Dropout(dropout), nn.Linear(fused_dim, num_classes)

    @staticmethod
    def _per_step(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        b, c, k, h, w = x.shape
        f = net(x.transpose(1, 2).reshape(b * k, c, h, w))
        return f.view(b, k, *f.shape[1:]).transpose(1, 2)

    def forward(self, inputs) -> torch.Tensor:
        frames, flow = inputs
        if frames.ndim != 5 or flow.ndim != 5 or frames.shape[2] != flow.shape[2]:
            raise ValueError(f"FusedTwoStream3D expects frames (B, 3, K, H, W) and flow (B, 2L, K, H, W) with the "
                             f"same K, got {tuple(frames.shape)} and {tuple(flow.shape)}")
        x = torch.cat([self._per_step(self.spatial, frames), self._per_step(self.temporal, flow)], 1)
        return self.fc(self.dropout(self.fuse(x)))


@register_model
def two_stream_fused3d_small(*, num_classes: int = 2, rgb_channels: int = 3, flow_fields: int = 1,
                             widths=(16, 32, 64), fused_channels: int = 64, dropout: float = 0.0) -> FusedTwoStream3D:
    """The small 2D CNN's conv blocks as both streams (`flow_fields` flow fields per step), fused by one
    3D conv of `fused_channels` (as wide as the streams' last block: the fusion should not be the bottleneck)."""
    def body(channels: int) -> nn.Module:  # conv blocks without the global pool: the 3D conv needs the map
        return nn.Sequential(*list(SmallCNN(dims=2, in_channels=channels, widths=widths).body)[:-2])

    return FusedTwoStream3D(body(rgb_channels), body(2 * flow_fields), feature_dim=widths[-1],
                            fused_dim=fused_channels, num_classes=num_classes, dropout=dropout)
