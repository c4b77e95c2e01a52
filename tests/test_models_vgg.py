"""VGG family: torchvision's sizes at width 1, shapes at small width, one call per ReLU, it learns."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torchvision
from helpers import toy_clips, train_losses

import medvid_core.models.vgg  # noqa: F401  (registers the family)
from medvid_core.models import count_parameters, get_model
from medvid_core.models.vgg import VGG, vgg_features


@pytest.mark.parametrize("name", ["vgg11", "vgg16", "vgg19"])
def test_width_one_is_torchvisions_vgg_with_the_same_head(name):
    with torch.device("meta"):  # no memory, no init cost: only the shapes matter
        ours = get_model(name, num_classes=2)
        theirs = getattr(torchvision.models, name)(weights=None, num_classes=2)
    assert count_parameters(ours) == count_parameters(theirs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


def test_vgg19_parameter_count_is_the_papers_network():
    with torch.device("meta"):
        assert count_parameters(get_model("vgg19", num_classes=2)) == 139_578_434


def test_shapes_at_small_width_and_gray_input(one_thread):
    model = get_model("vgg19", num_classes=3, in_channels=1, width=0.125).eval()
    x = torch.randn(2, 1, 64, 48)
    assert model(x).shape == (2, 3)
    assert model.forward_features(x).shape == (2, 512)
    assert model.classifier[6] is model.get_submodule("classifier.6")  # the trainer's head= path


def test_vgg_features_channels_and_stride():
    stack = vgg_features(16, width=0.25, in_channels=1)
    assert stack(torch.randn(1, 1, 64, 96)).shape == (1, 128, 2, 3)
    with pytest.raises(ValueError, match="depth"):
        vgg_features(15)


def test_every_relu_is_its_own_non_inplace_module_called_once():
    model = get_model("vgg16", width=0.125).eval()
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 13 + 2 and not any(r.inplace for r in relus)
    calls = {id(r): 0 for r in relus}
    hooks = [r.register_forward_hook(lambda m, i, o: calls.__setitem__(id(m), calls[id(m)] + 1)) for r in relus]
    model(torch.randn(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert set(calls.values()) == {1}


def test_tiny_run_learns(one_thread):
    torch.manual_seed(0)
    clips, labels = toy_clips(frames=1)
    images = clips[:, :, 0]
    model = VGG(depth=11, num_classes=2, in_channels=1, width=0.125, batch_norm=True, dropout=0.0).train()
    losses = train_losses(model, images, labels, steps=15)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses
