"""I3D inflation: turn a 2D network into a 3D one that starts from the 2D weights.

Carreira & Zisserman (CVPR 2017, "Quo Vadis, Action Recognition?") bootstrap a 3D network from an
ImageNet 2D one: every k x k filter becomes a t x k x k filter holding t copies of the 2D filter, divided
by t. On a "boring video" (one frame repeated) each 3D filter then sums t equal responses divided by t,
i.e. gives the 2D response, so the inflated network reproduces the 2D network's output on that frame.

That equality holds at every frame only if the frames past either end of the clip look like the edge
frames: time padding that *replicates* the edge frames keeps it exact; zero padding (what `nn.Conv3d`
does) darkens the first and last frames' responses, so the pooled output drifts. `time_padding` picks one.
Space is always zero-padded, as in the 2D network.
"""
from __future__ import annotations

import copy
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import resnet18

from . import register_model
from .small_cnn import SmallCNN

TIME_PADDINGS = ("replicate", "zeros")


class InflatedConv3d(nn.Conv3d):
    """A Conv3d that pads time itself ("replicate" edge frames or "zeros") and space with zeros."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int, int], *,
                 stride: tuple[int, int, int], padding: tuple[int, int, int], dilation: tuple[int, int, int] = (1, 1, 1),
                 groups: int = 1, bias: bool = True, time_padding: str = "replicate"):
        if time_padding not in TIME_PADDINGS:
            raise ValueError(f"time_padding must be one of {TIME_PADDINGS}, got {time_padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=(0, *padding[1:]),
                         dilation=dilation, groups=groups, bias=bias)
        self.time_pad, self.time_padding = padding[0], time_padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_pad:
            pad = (0, 0, 0, 0, self.time_pad, self.time_pad)  # last dims first: W, H, then T
            x = F.pad(x, pad, mode="replicate") if self.time_padding == "replicate" else F.pad(x, pad)
        return super().forward(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, time_pad={self.time_pad}, time_padding={self.time_padding!r}"


def inflate_conv(conv: nn.Conv2d, *, time_kernel: int = 3, time_padding: str = "replicate") -> InflatedConv3d:
    """Conv2d -> InflatedConv3d: the 2D filter copied `time_kernel` times along time, divided by `time_kernel`.

    Time stride 1 and 'same' time padding, so a clip keeps its number of frames.
    """
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError(f"inflate_conv: only numeric zero-padded Conv2d is supported, got {conv}")
    if time_kernel < 1 or time_kernel % 2 == 0:
        raise ValueError(f"time_kernel must be odd and >= 1 (keeps the frame count), got {time_kernel}")
    out = InflatedConv3d(conv.in_channels, conv.out_channels, (time_kernel, *conv.kernel_size),
                         stride=(1, *conv.stride), padding=(time_kernel // 2, *conv.padding),
                         dilation=(1, *conv.dilation), groups=conv.groups, bias=conv.bias is not None,
                         time_padding=time_padding)
    with torch.no_grad():
        out.weight.copy_(conv.weight.unsqueeze(2).repeat(1, 1, time_kernel, 1, 1) / time_kernel)
        if conv.bias is not None:
            out.bias.copy_(conv.bias)
    return out


def _inflate_bn(bn: nn.BatchNorm2d) -> nn.BatchNorm3d:
    out = nn.BatchNorm3d(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                         track_running_stats=bn.track_running_stats)
    out.load_state_dict(bn.state_dict())  # same per-channel statistics: frames are extra samples
    return out


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _inflate_module(m: nn.Module, time_kernel: int, time_padding: str) -> nn.Module | None:
    """The 3D replacement of one 2D leaf module, or None when it works on 5D input as it is."""
    if isinstance(m, nn.Conv2d):
        kt = time_kernel if max(m.kernel_size) > 1 else 1  # 1x1 projections stay 1x1x1 (as in I3D)
        return inflate_conv(m, time_kernel=kt, time_padding=time_padding)
    if isinstance(m, nn.BatchNorm2d):
        return _inflate_bn(m)
    if isinstance(m, nn.MaxPool2d):  # pooling stays within a frame: time is kept whole
        return nn.MaxPool3d((1, *_pair(m.kernel_size)), (1, *_pair(m.stride)), (0, *_pair(m.padding)),
                            ceil_mode=m.ceil_mode)
    if isinstance(m, nn.AvgPool2d):
        return nn.AvgPool3d((1, *_pair(m.kernel_size)), (1, *_pair(m.stride)), (0, *_pair(m.padding)),
                            ceil_mode=m.ceil_mode, count_include_pad=m.count_include_pad)
    if isinstance(m, nn.AdaptiveAvgPool2d):  # global pooling also averages over time
        return nn.AdaptiveAvgPool3d((1, *_pair(m.output_size)))
    if "2d" in type(m).__name__.lower():
        raise ValueError(f"inflate: no 3D version known for {type(m).__name__}")
    return None


def inflate(net2d: nn.Module, *, time_kernel: int = 3, time_padding: str = "replicate") -> nn.Module:
    """A deep copy of `net2d` with every 2D layer made 3D; input becomes (batch, channels, frames, H, W).

    Conv2d -> inflated Conv3d (weights replicated over `time_kernel` frames and divided by it), BatchNorm2d
    -> BatchNorm3d (same statistics), 2D pooling -> 3D pooling of time extent 1, global pooling over time too.
    The network's own `forward` is kept, so it must only reshape with `flatten(x, 1)`-style calls (as
    torchvision's ResNets do).
    """
    net = copy.deepcopy(net2d)
    for name, module in list(net.named_modules()):
        new = _inflate_module(module, time_kernel, time_padding)
        if new is not None:
            if name == "":
                return new
            net.set_submodule(name, new)
    return net


def boring_video(frame: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, frames, H, W): the same frame repeated, I3D's sanity check input."""
    return frame.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous()


@register_model
def i3d_r18(*, num_classes: int = 2, in_channels: int = 3, time_kernel: int = 3, time_padding: str = "replicate",
            weights: str | None = None) -> nn.Module:
    """torchvision's ResNet-18 inflated to 3D; `weights`: a local 2D ResNet-18 state-dict file to start from."""
    net = resnet18(weights=None)  # no download: a local file may bring ImageNet weights
    if weights is not None:
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    if in_channels != 3:  # a grey clip: sum the RGB filters so a grey frame gives the same response
        conv = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        conv.weight.data.copy_(net.conv1.weight.data.sum(1, keepdim=True).repeat(1, in_channels, 1, 1) / in_channels)
        net.conv1 = conv
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    return inflate(net, time_kernel=time_kernel, time_padding=time_padding)


@register_model
def i3d_small(*, in_channels: int = 3, num_classes: int = 2, widths=(16, 32, 64), time_kernel: int = 3,
              time_padding: str = "replicate", dropout: float = 0.0, weights: str | None = None) -> nn.Sequential:
    """The small 2D CNN (`small_cnn.cnn2d_small`) inflated: time_kernel x 3 x 3 filters, pooling that keeps
    time whole, global pooling over time too; `body`, `dropout`, head `fc`. Unlike `cnn3d_small` (which also
    halves time at every block) it starts from 2D weights: `weights`, a local `cnn2d_small` state-dict file
    (trained on frames), or random ones."""
    net2d = SmallCNN(dims=2, in_channels=in_channels, num_classes=num_classes, widths=widths, dropout=dropout)
    if weights is not None:
        net2d.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    body = inflate(net2d.body, time_kernel=time_kernel, time_padding=time_padding)
    return nn.Sequential(OrderedDict(body=body, dropout=net2d.dropout, fc=net2d.fc))
