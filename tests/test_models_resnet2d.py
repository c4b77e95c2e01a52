"""2D ResNets: torchvision's sizes at width 1, one call per ReLU (guided-backprop safe), pooled features, learns."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torchvision
from helpers import toy_clips, train_losses

import medvid_core.models.resnet2d  # noqa: F401  (registers the family)
from medvid_core.models import count_parameters, get_model


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet152"])
def test_width_one_is_torchvisions_resnet_with_the_same_head(name):
    with torch.device("meta"):
        ours = get_model(name, num_classes=2)
        theirs = getattr(torchvision.models, name)(weights=None, num_classes=2)
    assert count_parameters(ours) == count_parameters(theirs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


def test_resnet152_parameter_count():
    with torch.device("meta"):
        assert count_parameters(get_model("resnet152", num_classes=2)) == 58_147_906


def test_same_output_as_torchvision_with_the_same_weights(one_thread):
    torch.manual_seed(0)
    theirs = torchvision.models.resnet18(weights=None, num_classes=2).eval()
    ours = get_model("resnet18", num_classes=2).eval()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_every_relu_module_called_once_and_not_inplace(name, one_thread):
    model = get_model(name, width=0.125).eval()
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert not any(r.inplace for r in relus)
    calls = {id(r): 0 for r in relus}
    hooks = [r.register_forward_hook(lambda m, i, o: calls.__setitem__(id(m), calls[id(m)] + 1)) for r in relus]
    model(torch.randn(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert set(calls.values()) == {1}


def test_shapes_and_pooled_features(one_thread):
    model = get_model("resnet152", num_classes=2, in_channels=1, width=0.125).eval()
    x = torch.randn(2, 1, 64, 64)
    assert model(x).shape == (2, 2)
    assert model.forward_features(x).shape == (2, model.num_features) == (2, 256)
    assert isinstance(model.get_submodule("fc"), nn.Linear)


def test_tiny_run_learns(one_thread):
    torch.manual_seed(0)
    clips, labels = toy_clips(frames=1)
    model = get_model("resnet18", num_classes=2, in_channels=1, width=0.25).train()
    losses = train_losses(model, clips[:, :, 0], labels, steps=10)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses
