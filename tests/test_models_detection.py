"""Faster R-CNN builders: registered, one input channel, losses in training and boxes in eval mode, the
paper's ResNet-50-FPN at torchvision's size, and a local backbone state dict loaded (RGB summed to gray)."""
from __future__ import annotations

import pytest
import torch
from torchvision.models import resnet18 as tv_resnet18
from torchvision.models.detection import fasterrcnn_resnet50_fpn as tv_fasterrcnn_resnet50_fpn

from medvid_core.models import count_parameters, get_model, list_models
from medvid_core.models import detection  # noqa: F401  (registers the builders)


def test_registered_and_refuses_unknown_keywords():
    assert {"fasterrcnn_resnet18_fpn", "fasterrcnn_resnet50_fpn"} <= set(list_models())
    with pytest.raises(TypeError, match="unknown keyword argument"):
        get_model("fasterrcnn_resnet18_fpn", pretrained=True)


def test_losses_in_training_boxes_in_eval(one_thread):
    torch.manual_seed(0)
    model = get_model("fasterrcnn_resnet18_fpn", width=0.125, min_size=96, max_size=128)
    images = [torch.rand(1, 96, 80), torch.rand(1, 110, 96)]
    targets = [{"boxes": torch.tensor([[5.0, 6.0, 30.0, 24.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]  # a negative image
    losses = model.train()(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    sum(losses.values()).backward()
    assert model.backbone.body.conv1.weight.grad.abs().sum() > 0  # the loss reaches the first layer
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2 and out[1]["boxes"].shape[1] == 4
    assert set(out[0]) == {"boxes", "labels", "scores"}
    assert model.backbone.body.conv1.in_channels == 1 and model.roi_heads.box_predictor.cls_score.out_features == 3


def test_paper_backbone_is_torchvisions_size():
    with torch.device("meta"):
        ours = get_model("fasterrcnn_resnet50_fpn", in_channels=3, num_classes=91)
        theirs = tv_fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    # same backbone, FPN, RPN and box head; ours trains every layer (random init: nothing to freeze)
    assert count_parameters(ours) == sum(p.numel() for p in theirs.parameters())


def test_local_backbone_weights_load_gray_or_say_what_does_not_fit(tmp_path):
    rgb = tv_resnet18(weights=None).state_dict()
    good = tmp_path / "resnet18.pth"
    torch.save(rgb, good)
    model = get_model("fasterrcnn_resnet18_fpn", width=1.0, weights=str(good))
    assert torch.equal(model.backbone.body.conv1.weight, rgb["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(model.backbone.body.layer4[1].bn2.running_var, rgb["layer4.1.bn2.running_var"])
    with pytest.raises(ValueError, match=r"resnet18\.pth: does not fit"):
        get_model("fasterrcnn_resnet18_fpn", width=0.25, weights=str(good))  # another width: shapes differ
