"""3D-ResNet-18/50 from MONAI: the 3D-CNN baseline of Video4MRI's Table 2.

MONAI's ResNet uses 3D kernels in every stage and Kaiming-normal initialisation; with
one input channel and a 2-class head it has the 33.16 M / 46.16 M trainable parameters
the paper lists. The slices of the clip are its depth axis.
"""
from __future__ import annotations

import torch.nn as nn
from monai.networks.nets import resnet18, resnet50

from . import register_model


def _resnet3d(builder, *, num_classes: int, in_channels: int, dropout: float) -> nn.Module:
    # no `pretrained`: MONAI would download MedicalNet weights
    net = builder(spatial_dims=3, n_input_channels=in_channels, num_classes=num_classes)
    net.fc = nn.Sequential(nn.Dropout(dropout), net.fc)  # same head recipe as TSN/TSM; adds no params
    return net


@register_model
def resnet3d_18(*, num_classes: int = 2, in_channels: int = 1, dropout: float = 0.4) -> nn.Module:
    return _resnet3d(resnet18, num_classes=num_classes, in_channels=in_channels, dropout=dropout)


@register_model
def resnet3d_50(*, num_classes: int = 2, in_channels: int = 1, dropout: float = 0.4) -> nn.Module:
    return _resnet3d(resnet50, num_classes=num_classes, in_channels=in_channels, dropout=dropout)
