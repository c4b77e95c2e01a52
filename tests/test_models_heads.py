"""One head swap and one head-less weight load for every model, by dotted submodule path."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import medvid_core.models.vgg  # noqa: F401  (registers vgg11)
from medvid_core.models import get_model
from medvid_core.models.cnn4 import ParallelHeads
from medvid_core.models.heads import load_without_head, replace_head


def _vgg(**kw):
    return get_model("vgg11", num_classes=3, in_channels=1, width=0.0625, **kw)


def test_replace_head_at_a_dotted_path_keeps_every_other_weight():
    model = _vgg()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert replace_head(model, "classifier.6", 5) is model
    assert isinstance(model.classifier[6], nn.Linear) and model.classifier[6].out_features == 5
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 5)
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items() if not k.startswith("classifier.6."))


def test_replace_head_builds_the_given_head_and_refuses_non_linears():
    model = replace_head(_vgg(), "classifier.6", 4, head=ParallelHeads)
    assert isinstance(model.get_submodule("classifier.6"), ParallelHeads)
    with pytest.raises(ValueError, match="classifier.5 is a Dropout, not a Linear"):
        replace_head(model, "classifier.5", 2)
    with pytest.raises(ValueError, match="no submodule 'head'"):
        replace_head(model, "head", 2)


def test_replace_head_is_the_cnn_rnn_method_too():
    from medvid_core.models.cnn_rnn import CNNRNN

    torch.manual_seed(0)
    model = CNNRNN(nn.Conv2d(1, 4, 3), feature_dim=4, num_classes=10, hidden=4, fc_hidden=6)
    torch.manual_seed(1)
    model.replace_head(5)
    torch.manual_seed(1)
    assert torch.equal(model.fc.weight, nn.Linear(6, 5).weight)  # the same fresh Linear as before the refactor


def test_load_without_head_loads_everything_but_the_head(tmp_path):
    source = _vgg()
    state = source.state_dict()
    state["classifier.6.weight"] = torch.zeros(1000, state["classifier.6.weight"].shape[1])  # an ImageNet head
    state["classifier.6.bias"] = torch.zeros(1000)
    target = _vgg()
    head_before = target.classifier[6].weight.clone()
    load_without_head(target, state, "classifier.6", source=tmp_path / "vgg.pth")
    assert torch.equal(target.features[0].weight, source.features[0].weight)
    assert torch.equal(target.classifier[6].weight, head_before)  # the head keeps its fresh init


def test_load_without_head_refuses_other_missing_or_extra_keys():
    state = _vgg().state_dict()
    renamed = {k.replace("features.0.", "stem.0."): v for k, v in state.items()}
    with pytest.raises(ValueError, match=r"w\.pth: only the head 'classifier\.6' may be missing; missing "
                                         r"features\.0\.bias, features\.0\.weight; unexpected stem\.0\.bias"):
        load_without_head(_vgg(), renamed, "classifier.6", source="w.pth")
    wrong_width = get_model("vgg11", num_classes=3, in_channels=1, width=0.125).state_dict()
    with pytest.raises(ValueError, match=r"^w\.pth: does not fit VGG: .*size mismatch"):
        load_without_head(_vgg(), wrong_width, "classifier.6", source="w.pth")
    with pytest.raises(ValueError, match="has no head 'fc'"):
        load_without_head(_vgg(), state, "fc", source="w.pth")
