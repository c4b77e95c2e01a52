"""Small plain CNNs, 2D or 3D, for lessons that must train in seconds on a CPU.

One generic class: `depth` blocks of (3^d convolution, BatchNorm, ReLU, 2^d max-pool), global average
pooling, dropout and the head `fc`. With `dims=3` it is the kind of simple 3D CNN Huang et al. (ISBI 2017)
used on candidate cubes for lung-nodule classification; with `dims=2` it is the per-view or per-frame
network of the multi-view, two-stream and CNN+RNN models. `features(x)` gives the pooled feature vector.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import register_model

_LAYERS = {2: (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d),
           3: (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d, nn.AdaptiveAvgPool3d)}


class SmallCNN(nn.Module):
    """(B, C, H, W) images (`dims=2`) or (B, C, D, H, W) volumes/clips (`dims=3`) -> class logits."""

    def __init__(self, *, dims: int = 2, in_channels: int = 1, num_classes: int = 2,
                 widths: tuple[int, ...] = (16, 32, 64), dropout: float = 0.0):
        super().__init__()
        if dims not in _LAYERS:
            raise ValueError(f"SmallCNN: dims must be 2 or 3, got {dims}")
        conv, norm, pool, gap = _LAYERS[dims]
        layers, c = [], in_channels
        for w in widths:
            layers += [conv(c, w, 3, padding=1, bias=False), norm(w), nn.ReLU(), pool(2)]
            c = w
        self.dims, self.feature_dim = dims, c
        self.body = nn.Sequential(*layers, gap(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.dims + 2:
            raise ValueError(f"SmallCNN(dims={self.dims}) expects {self.dims + 2}D input, got shape {tuple(x.shape)}")
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))


@register_model
def cnn2d_small(*, in_channels: int = 1, num_classes: int = 2, widths=(16, 32, 64), dropout: float = 0.0) -> SmallCNN:
    """Three 2D conv blocks (16-32-64 channels: ~24k parameters, trains in seconds on a CPU)."""
    return SmallCNN(dims=2, in_channels=in_channels, num_classes=num_classes, widths=widths, dropout=dropout)


@register_model
def cnn3d_small(*, in_channels: int = 1, num_classes: int = 2, widths=(16, 32, 64), dropout: float = 0.0) -> SmallCNN:
    """The same three blocks with 3x3x3 kernels (~3x the 2D parameters: every filter gains a depth of 3)."""
    return SmallCNN(dims=3, in_channels=in_channels, num_classes=num_classes, widths=widths, dropout=dropout)
