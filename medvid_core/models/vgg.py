"""VGG image classifiers (Simonyan & Zisserman, ICLR 2015) for 2D images, with a width knob.

Built from torchvision's own layer recipe (`torchvision.models.vgg.cfgs` + `make_layers`), with
the same attribute names (`features`, `avgpool`, `classifier`), so at ``width=1.0`` the model is
torchvision's VGG with a new head: a local torchvision state dict loads into it (no download here).
`width` multiplies every channel count and the two hidden fully-connected sizes, so a CPU run can
use a VGG19 of the same depth at 1/8 of the channels.

Attribution-safe: every ReLU is its own non-inplace `nn.ReLU`, called once per forward, so
captum's GuidedBackprop (which overrides `nn.ReLU` modules) sees each activation exactly once.

The classifier head is ``classifier.6`` (pass ``head="classifier.6"`` to the trainer).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.models.vgg import cfgs, make_layers

from . import register_model

# depth -> torchvision's configuration letter
_CFG = {11: "A", 13: "B", 16: "D", 19: "E"}

HEAD = "classifier.6"  # attribute path of the last Linear (the trainer's `head=`)


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def vgg_features(depth: int = 16, *, width: float = 1.0, in_channels: int = 3,
                 batch_norm: bool = False) -> nn.Sequential:
    """VGG's conv stack alone (5 max-pools: stride 32); output has ``round(512 * width)`` channels.

    Each ReLU is a separate non-inplace module (guided backprop needs that).
    """
    if depth not in _CFG:
        raise ValueError(f"VGG depth must be one of {sorted(_CFG)}, got {depth}")
    cfg = [v if v == "M" else _scaled(v, width) for v in cfgs[_CFG[depth]]]
    stack = make_layers(cfg, batch_norm=batch_norm)
    if in_channels != 3:  # make_layers always starts from 3 channels
        stack[0] = nn.Conv2d(in_channels, cfg[0], kernel_size=3, padding=1)
    for m in stack.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
        elif isinstance(m, nn.Conv2d):  # torchvision VGG's init
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return stack


class VGG(nn.Module):
    """VGG-`depth`: conv stack, 7x7 adaptive average pool, three fully-connected layers."""

    def __init__(self, *, depth: int = 19, num_classes: int = 2, in_channels: int = 3, width: float = 1.0,
                 batch_norm: bool = False, dropout: float = 0.5):
        super().__init__()
        self.features = vgg_features(depth, width=width, in_channels=in_channels, batch_norm=batch_norm)
        self.out_channels = _scaled(512, width)
        hidden = _scaled(4096, width)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(self.out_channels * 7 * 7, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        for m in self.classifier.modules():  # torchvision VGG's init
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate (second hidden FC) activations, shape (N, round(4096 * width))."""
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier[:6](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier[6](self.forward_features(x))


@register_model
def vgg11(*, num_classes: int = 2, in_channels: int = 3, width: float = 1.0, batch_norm: bool = False,
          dropout: float = 0.5) -> VGG:
    return VGG(depth=11, num_classes=num_classes, in_channels=in_channels, width=width, batch_norm=batch_norm,
               dropout=dropout)


@register_model
def vgg16(*, num_classes: int = 2, in_channels: int = 3, width: float = 1.0, batch_norm: bool = False,
          dropout: float = 0.5) -> VGG:
    return VGG(depth=16, num_classes=num_classes, in_channels=in_channels, width=width, batch_norm=batch_norm,
               dropout=dropout)


@register_model
def vgg19(*, num_classes: int = 2, in_channels: int = 3, width: float = 1.0, batch_norm: bool = False,
          dropout: float = 0.5) -> VGG:
    """VGG19 (configuration E): 16 convolutions and 3 fully-connected layers."""
    return VGG(depth=19, num_classes=num_classes, in_channels=in_channels, width=width, batch_norm=batch_norm,
               dropout=dropout)
