"""Frame averaging: a 2D network on every frame, its features averaged over time, one linear head.

The baseline every temporal model is measured against (TSN's consensus without segments): it sees
what each frame shows but not in which order, so it cannot tell an action from the same action played
backwards. `cnn_lstm_small` is its recurrent twin for the comparison: the same per-frame network feeding
an LSTM (the generic `CNNRNN` of `cnn_rnn.py`), trained end to end.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import register_model
from .cnn_rnn import CNNRNN
from .small_cnn import SmallCNN


class FrameAverage(nn.Module):
    """(B, C, T, H, W) -> `backbone.features` on each frame -> mean over T -> dropout -> `fc`."""

    def __init__(self, backbone: nn.Module, *, feature_dim: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.backbone, self.dropout, self.fc = backbone, nn.Dropout(dropout), nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"FrameAverage expects clips (B, C, T, H, W), got shape {tuple(x.shape)}")
        b, c, t, h, w = x.shape
        feats = self.backbone(x.transpose(1, 2).reshape(b * t, c, h, w)).view(b, t, -1)
        return self.fc(self.dropout(feats.mean(1)))


def _frame_net(in_channels: int, widths, grid: int = 1) -> tuple[nn.Module, int]:
    """The small 2D CNN's conv blocks, average-pooled to a `grid` x `grid` layout and flattened.

    grid=1 is global pooling: the features say *what* a frame shows, not *where*. A larger grid keeps a
    coarse layout (as the fully connected layers of a big CNN do), so a model over frames can follow
    things that move. Returns the network and its feature size, widths[-1] * grid**2.
    """
    body = SmallCNN(dims=2, in_channels=in_channels, widths=widths).body  # conv blocks, global pool, flatten
    if grid > 1:
        body = nn.Sequential(*list(body)[:-2], nn.AdaptiveAvgPool2d(grid), nn.Flatten())
    return body, widths[-1] * grid * grid


@register_model
def frame_average_small(*, in_channels: int = 3, num_classes: int = 2, widths=(16, 32, 64), grid: int = 1,
                        dropout: float = 0.0) -> FrameAverage:
    """The small 2D CNN on every frame (features pooled to a `grid` x `grid` layout), averaged over the clip."""
    net, dim = _frame_net(in_channels, widths, grid)
    return FrameAverage(net, feature_dim=dim, num_classes=num_classes, dropout=dropout)


@register_model
def cnn_lstm_small(*, in_channels: int = 3, num_classes: int = 2, widths=(16, 32, 64), grid: int = 1,
                   hidden: int = 64, fc_hidden: int = 64, dropout: float = 0.0) -> CNNRNN:
    """The same per-frame CNN into an LSTM(64) and a Dense(64) (small enough to train end to end on a CPU)."""
    net, dim = _frame_net(in_channels, widths, grid)
    return CNNRNN(net, feature_dim=dim, num_classes=num_classes, hidden=hidden, fc_hidden=fc_hidden, dropout=dropout)
