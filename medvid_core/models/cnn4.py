"""CNN4: a small four-convolution slice classifier (Castro et al.'s CNN4 for head-CT slices), with a binary or a multi-label head.

Four 3x3 convolutions with ReLU in two pairs, each pair followed by a 2x2 max-pool, then a flatten
and two fully-connected layers; sigmoid outputs (the model returns logits: train with
`BCEWithLogitsLoss`). The flatten sees a fixed `pool_size` grid (adaptive max-pool) so any input size
works. The last layer is `ParallelHeads`: one independent Linear(hidden, 1) per output, i.e. a binary
head (1 output) or five parallel subtype heads (5 outputs); `heads.replace_head(model, path, n,
head=ParallelHeads)` puts the same head on another backbone (VGG's `classifier.6`, ResNet's `fc`).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import register_model

HEAD = "fc"  # attribute path of the last layer (the trainer's `head=`)


class ParallelHeads(nn.Module):
    """`num_outputs` parallel Linear(in_features, 1) layers; outputs concatenated to (N, num_outputs)."""

    def __init__(self, in_features: int, num_outputs: int):
        super().__init__()
        self.in_features, self.num_outputs = in_features, num_outputs
        self.heads = nn.ModuleList(nn.Linear(in_features, 1) for _ in range(num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([h(x) for h in self.heads], dim=1)


class CNN4(nn.Module):
    """conv-conv-pool, conv-conv-pool, flatten, FC-ReLU-dropout, parallel sigmoid heads."""

    def __init__(self, *, num_outputs: int = 1, in_channels: int = 3, width: int = 32, hidden: int = 128,
                 pool_size: int = 7, dropout: float = 0.5):
        super().__init__()

        def conv(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]

        self.features = nn.Sequential(*conv(in_channels, width), *conv(width, width), nn.MaxPool2d(2),
                                      *conv(width, 2 * width), *conv(2 * width, 2 * width), nn.MaxPool2d(2))
        self.pool = nn.AdaptiveMaxPool2d(pool_size)
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * pool_size**2, hidden), nn.ReLU(),
                                    nn.Dropout(dropout))
        self.fc = ParallelHeads(hidden, num_outputs)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.hidden(self.pool(self.features(x))))


@register_model
def cnn4(*, num_outputs: int = 1, in_channels: int = 3, width: int = 32, hidden: int = 128,
         dropout: float = 0.5) -> CNN4:
    """The seed's CNN4. Defaults: 1 output (hemorrhage yes/no; 5 for the subtypes), 3 window channels,
    32/64 filters and 128 hidden units (small: the seed trains it from scratch), dropout 0.5 against
    the over-fitting a few thousand slices invite."""
    return CNN4(num_outputs=num_outputs, in_channels=in_channels, width=width, hidden=hidden, dropout=dropout)
