"""2D ResNets (He et al., CVPR 2016) for images, with a width knob and attribution-safe blocks.

Built on torchvision's `ResNet` (its `_make_layer`, stem, pooling and init) and its `BasicBlock` /
`Bottleneck`. torchvision's blocks call one `self.relu` two or three times per forward, which
breaks captum's GuidedBackprop hooks (they expect one call per module); the blocks here are
subclasses with one non-inplace `nn.ReLU` per call (`relu1`, `relu2`, `relu3`), same parameters,
same state-dict keys. At ``width=1.0`` the parameter count equals torchvision's model with the same
head, so a local torchvision state dict loads (no download here).

`width` multiplies the stem and the four stages' channel counts (64, 128, 256, 512).
The head is ``fc``; `forward_features` gives the pooled features (e.g. for an SVM).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.models import resnet as tv

from . import register_model


class BasicBlock(tv.BasicBlock):
    """torchvision's BasicBlock with a separate ReLU for each of its two activations."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.relu
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + identity)


class Bottleneck(tv.Bottleneck):
    """torchvision's Bottleneck with a separate ReLU for each of its three activations."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.relu
        self.relu1, self.relu2, self.relu3 = nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + identity)


class ResNet2d(tv.ResNet):
    """torchvision's ResNet with `in_channels`, `width` and pooled-feature access."""

    def __init__(self, block: type, layers: list[int], *, num_classes: int = 2, in_channels: int = 3,
                 width: float = 1.0, dropout: float = 0.0):
        nn.Module.__init__(self)
        planes = [max(1, int(round(p * width))) for p in (64, 128, 256, 512)]
        # the attributes torchvision's _make_layer reads
        self._norm_layer, self.dilation, self.groups, self.base_width = nn.BatchNorm2d, 1, 1, 64
        self.inplanes = planes[0]
        self.conv1 = nn.Conv2d(in_channels, planes[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU()  # the stem's only activation: called once
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = planes[3] * block.expansion
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.num_features, num_classes)
        for m in self.modules():  # torchvision's init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled features before the head, shape (N, num_features)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.forward_features(x)))


@register_model
def resnet18(*, num_classes: int = 2, in_channels: int = 3, width: float = 1.0, dropout: float = 0.0) -> ResNet2d:
    return ResNet2d(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, in_channels=in_channels, width=width,
                    dropout=dropout)


@register_model
def resnet50(*, num_classes: int = 2, in_channels: int = 3, width: float = 1.0, dropout: float = 0.0) -> ResNet2d:
    return ResNet2d(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, in_channels=in_channels, width=width,
                    dropout=dropout)


@register_model
def resnet152(*, num_classes: int = 2, in_channels: int = 3, width: float = 1.0, dropout: float = 0.0) -> ResNet2d:
    """ResNet-152: Bottleneck blocks [3, 8, 36, 3]."""
    return ResNet2d(Bottleneck, [3, 8, 36, 3], num_classes=num_classes, in_channels=in_channels, width=width,
                    dropout=dropout)
