"""R(2+1)D: a video ResNet whose 3x3x3 convolutions are split into a 1x3x3 spatial and a 3x1x1 temporal one
(Tran et al., CVPR 2018), the architecture EchoNet-Dynamic regresses ejection fraction with (Ouyang et al.,
Nature 2020).

`r2plus1d_18` is torchvision's network as it is (31.3 M parameters, random init; a local state-dict file
for pretrained weights). `r2plus1d_small` builds the same blocks (torchvision's `BasicBlock` and
`Conv2Plus1D`) at laptop width: the generic `R2Plus1D` takes the widths and blocks per stage. Both take
clips (batch, channels, frames, height, width) and end in `fc`.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.models.video import r2plus1d_18 as tv_r2plus1d_18
from torchvision.models.video.resnet import BasicBlock, Conv2Plus1D, VideoResNet

from . import register_model


class R2Plus1D(nn.Module):
    """torchvision's R(2+1)D layout (stem, four stages of (2+1)D basic blocks, global pool, `fc`) with the
    widths and the blocks per stage as arguments."""

    def __init__(self, *, in_channels: int, num_classes: int, widths=(64, 128, 256, 512), layers=(2, 2, 2, 2),
                 dropout: float = 0.0):
        super().__init__()
        stem_mid = max(8, (widths[0] * 45) // 64)  # torchvision's stem: 45 spatial filters for 64 outputs
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, stem_mid, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(stem_mid), nn.ReLU(inplace=True),
            nn.Conv3d(stem_mid, widths[0], (3, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(widths[0]), nn.ReLU(inplace=True))
        self.inplanes = widths[0]
        stages = [VideoResNet._make_layer(self, BasicBlock, Conv2Plus1D, w, n, stride=1 if i == 0 else 2)
                  for i, (w, n) in enumerate(zip(widths, layers))]
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(widths[-1], num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"R2Plus1D expects clips (B, C, T, H, W), got shape {tuple(x.shape)}")
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.fc(self.dropout(self.avgpool(x).flatten(1)))


@register_model
def r2plus1d_18(*, num_classes: int = 1, in_channels: int = 3, weights: str = "") -> nn.Module:
    """torchvision's R(2+1)D-18. `num_classes=1`: one regression output (EF); `weights`: a local state-dict
    file (e.g. torchvision's Kinetics-400 weights, downloaded beforehand), "" for random init."""
    net = tv_r2plus1d_18(weights=None)
    if weights:
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    if in_channels != 3:  # a new first convolution: grey clips need not be copied into three channels
        old = net.stem[0]
        net.stem[0] = nn.Conv3d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    return net


@register_model
def r2plus1d_small(*, num_classes: int = 1, in_channels: int = 1,
                   widths=(16, 32, 64, 96),  # an eighth to a fifth of R(2+1)D-18's: trains in seconds on a CPU
                   layers=(1, 1, 1, 1),  # one block per stage (R(2+1)D-10)
                   dropout: float = 0.0) -> R2Plus1D:
    """The (2+1)D ResNet at laptop width; one output by default (a regression such as EF)."""
    return R2Plus1D(in_channels=in_channels, num_classes=num_classes, widths=tuple(widths), layers=tuple(layers),
                    dropout=dropout)
