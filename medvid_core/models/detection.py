"""Faster R-CNN box detectors (Ren et al., NeurIPS 2015) on a ResNet + FPN backbone (Lin et al., CVPR 2017),
with a width knob, any number of input channels and anchors for small images.

torchvision's own builders (`fasterrcnn_resnet50_fpn`, `fasterrcnn_mobilenet_v3_large_fpn`) fix a
full-width three-channel backbone, 800-pixel inputs and anchors from 32 pixels up. A marker letter 10-40
pixels wide on a 256-pixel radiograph needs anchors from 16 pixels, and a CPU a narrower network. So the
backbone here is `resnet2d.ResNet2d` (torchvision's ResNet with `width` and `in_channels`, same layer
names) inside torchvision's `BackboneWithFPN`, and the detector is torchvision's `FasterRCNN` as it is:
in training it takes a list of (C, H, W) images in [0, 1] and a list of targets (``boxes`` (N, 4) as
x0, y0, x1, y1 in pixels, ``labels`` (N,) from 1; 0 is the background) and returns its loss dict; in eval
mode it returns one dict (boxes, labels, scores) per image.

`weights`: a local torchvision ResNet state dict (ImageNet classification) for the backbone, its RGB
first convolution summed to one channel when `in_channels` is 1 and its `fc` head left out; nothing is
downloaded. The detection heads always start at random.
"""
from __future__ import annotations

import torch
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.rpn import RPNHead

from . import register_model
from .heads import load_without_head
from .resnet2d import BasicBlock, Bottleneck, ResNet2d

RETURN_LAYERS = {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}  # strides 4, 8, 16, 32 (+ a pooled 64)


def faster_rcnn(block: type, layers: list[int], *, num_classes: int, in_channels: int, width: float,
                fpn_channels: int, representation_size: int, min_size: int, max_size: int,
                anchor_sizes: tuple[int, ...], weights: str = "") -> FasterRCNN:
    """torchvision's FasterRCNN on a `width`-scaled ResNet (`block`, `layers`) with an FPN of `fpn_channels`,
    one anchor size per pyramid level (`anchor_sizes`, five: strides 4 to 64) at aspect ratios 1:2, 1:1, 2:1,
    and a two-layer box head of `representation_size`. Images are resized to `min_size` on their short side
    (at most `max_size` on the long one), as torchvision's transform does."""
    if len(anchor_sizes) != len(RETURN_LAYERS) + 1:
        raise ValueError(f"anchor_sizes: one size per pyramid level ({len(RETURN_LAYERS) + 1}), got {anchor_sizes}")
    body = ResNet2d(block, layers, num_classes=1000, in_channels=in_channels, width=width)
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if in_channels == 1 and state["conv1.weight"].shape[1] == 3:
            state["conv1.weight"] = state["conv1.weight"].sum(dim=1, keepdim=True)
        load_without_head(body, state, "fc", source=weights)
    stages = [body.layer1, body.layer2, body.layer3, body.layer4]
    in_channels_list = [stage[-1].conv3.out_channels if block is Bottleneck else stage[-1].conv2.out_channels
                        for stage in stages]
    backbone = BackboneWithFPN(body, RETURN_LAYERS, in_channels_list, fpn_channels)
    anchors = AnchorGenerator(tuple((s,) for s in anchor_sizes), ((0.5, 1.0, 2.0),) * len(anchor_sizes))
    return FasterRCNN(
        backbone, min_size=min_size, max_size=max_size,
        image_mean=[0.5] * in_channels, image_std=[0.25] * in_channels,  # [0, 1] images to about [-2, 2]
        rpn_anchor_generator=anchors, rpn_head=RPNHead(fpn_channels, 3),
        rpn_pre_nms_top_n_train=1000, rpn_post_nms_top_n_train=500,  # torchvision: 2000/2000, for 800-px images
        rpn_pre_nms_top_n_test=500, rpn_post_nms_top_n_test=100,  # torchvision: 1000/1000; a few objects per image
        box_batch_size_per_image=64,  # torchvision: 512 RoIs per image; a few objects need fewer (RoIAlign's CPU cost)
        box_head=TwoMLPHead(fpn_channels * 7 * 7, representation_size),
        box_predictor=FastRCNNPredictor(representation_size, num_classes))


@register_model
def fasterrcnn_resnet18_fpn(
        *, num_classes: int = 3,  # background + two classes (flag, implant)
        in_channels: int = 1,  # grayscale radiographs
        width: float = 0.25,  # a quarter of ResNet-18's channels: trains in about a minute on a laptop CPU
        fpn_channels: int = 64,  # torchvision: 256; enough for two classes of small objects
        representation_size: int = 256,  # torchvision: 1024; its 12.8M-weight first box layer dominates a CPU step
        min_size: int = 256,  # short side after resizing: about the small synthetic archive's own images
        max_size: int = 320,  # long side cap: keeps a wide shoulder view near the same cost
        anchor_sizes: tuple[int, ...] = (16, 32, 64, 128, 256),  # from 16 pixels: the smallest markers
        weights: str = "",  # a local torchvision ResNet-18 state dict; "" = random init (no download here)
) -> FasterRCNN:
    """Faster R-CNN on ResNet-18-FPN, sized for a CPU."""
    return faster_rcnn(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, in_channels=in_channels, width=width,
                       fpn_channels=fpn_channels, representation_size=representation_size, min_size=min_size,
                       max_size=max_size, anchor_sizes=anchor_sizes, weights=weights)


@register_model
def fasterrcnn_resnet50_fpn(
        *, num_classes: int = 3,  # background + two classes (flag, implant)
        in_channels: int = 1,  # grayscale radiographs
        width: float = 1.0,  # torchvision's ResNet-50, the backbone of Huschauer's flag detector
        fpn_channels: int = 256,  # torchvision's FPN
        representation_size: int = 1024,  # torchvision's box head
        min_size: int = 512,  # the largest image side of MURA-v1.1: no radiograph is shrunk
        max_size: int = 512,  # the same cap
        anchor_sizes: tuple[int, ...] = (16, 32, 64, 128, 256),  # from 16 pixels: the smallest markers
        weights: str = "",  # a local torchvision ResNet-50 state dict; "" = random init (no download here)
) -> FasterRCNN:
    """Faster R-CNN on ResNet-50-FPN at torchvision's sizes."""
    return faster_rcnn(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, in_channels=in_channels, width=width,
                       fpn_channels=fpn_channels, representation_size=representation_size, min_size=min_size,
                       max_size=max_size, anchor_sizes=anchor_sizes, weights=weights)
