"""TSN and TSM: a 2D ResNet shared over K frames, mean consensus, dropout + FC head.

TSN (Wang et al., ECCV 2016) runs the 2D backbone on every sampled frame and averages
the frame features. TSM (Lin et al., ICCV 2019) is the same network with a temporal
shift inside every residual branch, before its first convolution: 1/8 of the channels
take the next frame's values, 1/8 the previous frame's, the rest stay. The shift has no
parameters, so TSN and TSM of one depth have the same parameter count.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.models import resnet18, resnet50

from . import register_model

_BACKBONES = {"resnet18": resnet18, "resnet50": resnet50}


def _shift(x: torch.Tensor, n_segment: int, fold_div: int, reverse: bool = False) -> torch.Tensor:
    """(N*T, C, H, W): channels [0, C/fold_div) take frame t+1, the next C/fold_div take frame t-1.

    `reverse=True` shifts the other way: that is the gradient of the forward shift.
    """
    nt, c, h, w = x.shape
    x = x.view(nt // n_segment, n_segment, c, h, w)
    fold = c // fold_div
    pad = x.new_zeros(x.shape[0], 1, fold, h, w)  # the frame past either end of the clip

    def ahead(s):  # frame t sees frame t+1
        return torch.cat([s[:, 1:], pad], dim=1)

    def behind(s):  # frame t sees frame t-1
        return torch.cat([pad, s[:, :-1]], dim=1)

    first, second = x[:, :, :fold], x[:, :, fold : 2 * fold]
    moved = [behind(first), ahead(second)] if reverse else [ahead(first), behind(second)]
    return torch.cat([*moved, x[:, :, 2 * fold :]], dim=2).view(nt, c, h, w)


class _ShiftFunction(torch.autograd.Function):
    """The shift with its gradient written out (the reverse shift).

    Left to autograd, the slices above cost one full-size zero tensor each in backward;
    this keeps TSM's training step within a few per cent of TSN's (benchmarks/).
    """

    @staticmethod
    def forward(ctx, x, n_segment, fold_div):
        ctx.n_segment, ctx.fold_div = n_segment, fold_div
        return _shift(x, n_segment, fold_div)

    @staticmethod
    def backward(ctx, grad):
        return _shift(grad.contiguous(), ctx.n_segment, ctx.fold_div, reverse=True), None, None


class TemporalShift(nn.Module):
    """Shift a fraction of channels along time, then apply `net` (the branch's first conv).

    Input is (batch * frames, C, H, W); `n_segment` (frames per clip) is set by the TSN
    forward before the backbone runs, so one model works for any K.
    """

    def __init__(self, net: nn.Module, *, fold_div: int = 8):
        super().__init__()
        self.net, self.fold_div, self.n_segment = net, fold_div, 1

    @staticmethod
    def shift(x: torch.Tensor, n_segment: int, fold_div: int = 8) -> torch.Tensor:
        return _ShiftFunction.apply(x, n_segment, fold_div)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.shift(x, self.n_segment, self.fold_div))


class TSN(nn.Module):
    """Temporal Segment Network over a torchvision ResNet; `shift=True` makes it TSM."""

    def __init__(self, *, backbone: str = "resnet18", num_classes: int = 2, in_channels: int = 1,
                 dropout: float = 0.4, shift: bool = False, shift_div: int = 8):
        super().__init__()
        net = _BACKBONES[backbone](weights=None)  # torchvision inits convs with Kaiming normal
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        shifts = []
        if shift:
            for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
                for block in layer:
                    block.conv1 = TemporalShift(block.conv1, fold_div=shift_div)
                    shifts.append(block.conv1)
        self.shifts = tuple(shifts)  # a plain tuple: they are registered once, inside the backbone
        feat_dim = net.fc.in_features
        net.fc = nn.Identity()
        self.backbone = net
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(feat_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        for s in self.shifts:
            s.n_segment = t
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        feats = self.backbone(frames).view(b, t, -1).mean(dim=1)  # mean consensus over K frames
        return self.fc(self.dropout(feats))


@register_model
def tsn_r18(*, num_classes: int = 2, in_channels: int = 1, dropout: float = 0.4) -> TSN:
    return TSN(backbone="resnet18", num_classes=num_classes, in_channels=in_channels, dropout=dropout)


@register_model
def tsn_r50(*, num_classes: int = 2, in_channels: int = 1, dropout: float = 0.4) -> TSN:
    return TSN(backbone="resnet50", num_classes=num_classes, in_channels=in_channels, dropout=dropout)


@register_model
def tsm_r18(*, num_classes: int = 2, in_channels: int = 1, dropout: float = 0.4, shift_div: int = 8) -> TSN:
    return TSN(backbone="resnet18", shift=True, num_classes=num_classes, in_channels=in_channels, dropout=dropout,
               shift_div=shift_div)


@register_model
def tsm_r50(*, num_classes: int = 2, in_channels: int = 1, dropout: float = 0.4, shift_div: int = 8) -> TSN:
    return TSN(backbone="resnet50", shift=True, num_classes=num_classes, in_channels=in_channels, dropout=dropout,
               shift_div=shift_div)
