"""The model registry: every builder spells out its keyword arguments and refuses any other by name."""
from __future__ import annotations

import inspect

import pytest
import torch.nn as nn

from medvid_core.models import _MODELS, get_model, list_models, register_model


@pytest.mark.parametrize("name", list_models())
def test_every_builder_lists_its_keywords_and_refuses_unknown_ones(name):
    params = inspect.signature(_MODELS[name]).parameters.values()
    assert not any(p.kind is p.VAR_KEYWORD for p in params), f"{name} takes **kwargs"
    with pytest.raises(TypeError, match=rf"model '{name}' got unknown keyword argument\(s\) num_clases; it takes: "):
        get_model(name, num_clases=3)  # a typo of num_classes / num_outputs


def test_the_refusal_lists_what_it_takes():
    with pytest.raises(TypeError, match=r"it takes: num_classes, in_channels, dropout$"):
        get_model("resnet3d_18", pretrained=True)  # MONAI's builder would have taken it and downloaded


def test_a_kwargs_builder_cannot_register():
    def sloppy_net(**kwargs) -> nn.Module:
        return nn.Identity()

    with pytest.raises(TypeError, match="'sloppy_net': list its keyword arguments"):
        register_model(sloppy_net)
    assert "sloppy_net" not in list_models()
