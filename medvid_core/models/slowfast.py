"""SlowFast-R50 (Feichtenhofer et al., ICCV 2019), the two-pathway 3D CNN of Video4MRI's Table 2.

One clip of T slices feeds two ResNet-50s. The fast path sees all T slices but is thin
(1/beta of the channels); the slow path sees every alpha-th slice at full width. Only the
fast path and the slow path's last two stages convolve along time, so the slow path spends
its capacity on in-slice anatomy and the fast path on how it changes from slice to slice.
After the stem and after res2-res4 a time-strided convolution (stride alpha) carries the
fast features over to the slow path's time grid, where they are concatenated on as extra
channels. Both paths are average-pooled globally, so any T, height and width work.

Alignment for any T: the slow path takes frames 0, alpha, 2*alpha, ... (ceil(T / alpha) of
them) and the lateral convolution has an odd kernel padded by kernel // 2, so its output i
is centred on frame i * alpha and it yields exactly ceil(T / alpha) steps as well.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from . import register_model


def _conv_bn(c_in: int, c_out: int, kernel: tuple[int, int, int], *,
             stride: tuple[int, int, int] = (1, 1, 1), relu: bool = True) -> nn.Sequential:
    """Conv3d (no bias, 'same' padding) + BatchNorm, optionally ReLU: the unit everything is made of."""
    padding = tuple(k // 2 for k in kernel)
    layers = [nn.Conv3d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
              nn.BatchNorm3d(c_out)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """ResNet bottleneck: a (kt x 1 x 1) -> b (1 x 3 x 3, spatial stride) -> c (1 x 1 x 1), plus shortcut.

    Time is only mixed in conv a (kt = 3) or not at all (kt = 1); the spatial stride sits on
    conv b. Every stage keeps the temporal length, so the two paths stay aligned throughout.
    """

    def __init__(self, c_in: int, c_inner: int, c_out: int, *, temporal_kernel: int, stride: int):
        super().__init__()
        self.a = _conv_bn(c_in, c_inner, (temporal_kernel, 1, 1))
        self.b = _conv_bn(c_inner, c_inner, (1, 3, 3), stride=(1, stride, stride))
        self.c = _conv_bn(c_inner, c_out, (1, 1, 1), relu=False)
        self.shortcut = (nn.Identity() if c_in == c_out and stride == 1
                         else _conv_bn(c_in, c_out, (1, 1, 1), stride=(1, stride, stride), relu=False))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.c(self.b(self.a(x))) + self.shortcut(x))


def _stage(depth: int, c_in: int, c_inner: int, *, temporal_kernel: int, stride: int) -> nn.Sequential:
    """`depth` bottlenecks with 4x expansion; only the first one changes width and resolution."""
    c_out = 4 * c_inner
    return nn.Sequential(*(Bottleneck(c_in if i == 0 else c_out, c_inner, c_out,
                                      temporal_kernel=temporal_kernel, stride=stride if i == 0 else 1)
                           for i in range(depth)))


def _stem(c_in: int, c_out: int, *, temporal_kernel: int) -> nn.Sequential:
    """(kt x 7 x 7) conv with spatial stride 2, then a 1 x 3 x 3 max pool: H, W shrink 4x, T is kept."""
    return nn.Sequential(_conv_bn(c_in, c_out, (temporal_kernel, 7, 7), stride=(1, 2, 2)),
                         nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))


class SlowFast(nn.Module):
    """Generic SlowFast ResNet; `slowfast_r50` fixes the Video4MRI configuration.

    `slow_temporal` says which slow stages use a 3-frame conv a (the fast path always does);
    `fusion_kernel` must be odd so that lateral outputs and slow frames line up (see module doc).
    `zero_init_residual` zeroes the last BN gamma of every bottleneck (as PySlowFast and
    pytorchvideo do), so each block starts as its shortcut. `forward_features` returns the
    intermediates a test or a probe may want to inspect.
    """

    def __init__(self, *, depths: tuple[int, ...] = (3, 4, 6, 3), alpha: int = 8, beta_inv: int = 8,
                 fusion_kernel: int = 5, fusion_ratio: int = 2,
                 slow_temporal: tuple[bool, ...] = (False, False, True, True), slow_width: int = 64,
                 num_classes: int = 2, in_channels: int = 1, dropout: float = 0.4,
                 zero_init_residual: bool = True):
        super().__init__()
        if fusion_kernel % 2 == 0:
            raise ValueError(f"fusion_kernel must be odd to align with the slow frames, got {fusion_kernel}")
        self.alpha = alpha
        fast_width = slow_width // beta_inv

        def lateral(c_fast: int) -> nn.Sequential:  # conv + BN + ReLU, as in PySlowFast and pytorchvideo
            return _conv_bn(c_fast, fusion_ratio * c_fast, (fusion_kernel, 1, 1), stride=(alpha, 1, 1))

        self.slow_stem = _stem(in_channels, slow_width, temporal_kernel=1)  # 1 x 7 x 7: no mixing of slices
        self.fast_stem = _stem(in_channels, fast_width, temporal_kernel=5)  # 5 x 7 x 7
        self.laterals = nn.ModuleList([lateral(fast_width)])  # after the stem, then after res2..res4
        self.slow_stages, self.fast_stages = nn.ModuleList(), nn.ModuleList()
        c_slow, c_fast = slow_width, fast_width
        for i, depth in enumerate(depths):
            stride = 1 if i == 0 else 2
            self.slow_stages.append(_stage(depth, c_slow + fusion_ratio * c_fast, slow_width * 2 ** i,
                                           temporal_kernel=3 if slow_temporal[i] else 1, stride=stride))
            self.fast_stages.append(_stage(depth, c_fast, fast_width * 2 ** i,
                                           temporal_kernel=3, stride=stride))
            c_slow, c_fast = 4 * slow_width * 2 ** i, 4 * fast_width * 2 ** i
            if i < len(depths) - 1:  # no fusion after the last stage: the head concatenates instead
                self.laterals.append(lateral(c_fast))
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c_slow + c_fast, num_classes)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.c[1].weight)

    def slow_frames(self, t: int) -> int:
        """How many frames the slow path sees for a clip of `t` frames."""
        return math.ceil(t / self.alpha)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run both paths; returns slow_input, lateral0..lateral3 (stem, res2, res3, res4), slow, fast."""
        feats = {"slow_input": x[:, :, :: self.alpha]}
        slow, fast = self.slow_stem(feats["slow_input"]), self.fast_stem(x)
        for i, (slow_stage, fast_stage) in enumerate(zip(self.slow_stages, self.fast_stages)):
            lat = self.laterals[i](fast)
            feats[f"lateral{i}"] = lat
            slow = slow_stage(torch.cat([slow, lat], dim=1))
            fast = fast_stage(fast)
        feats["slow"], feats["fast"] = slow, fast
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.forward_features(x)
        pooled = torch.cat([self.pool(feats["slow"]).flatten(1), self.pool(feats["fast"]).flatten(1)], dim=1)
        return self.fc(self.dropout(pooled))


@register_model
def slowfast_r50(*, num_classes: int = 2, in_channels: int = 1, dropout: float = 0.4, fusion_ratio: int = 2,
                 slow_temporal: tuple[bool, ...] = (False, False, True, True), slow_width: int = 64,
                 zero_init_residual: bool = True) -> SlowFast:
    """Video4MRI setting: alpha = 8 (4 slow frames of 32), beta = 1/8, 5 x 1 x 1 laterals, stages 3-4-6-3."""
    return SlowFast(depths=(3, 4, 6, 3), alpha=8, beta_inv=8, fusion_kernel=5, fusion_ratio=fusion_ratio,
                    slow_temporal=slow_temporal, slow_width=slow_width, num_classes=num_classes,
                    in_channels=in_channels, dropout=dropout, zero_init_residual=zero_init_residual)
