"""Model registry: every model the params can name, built by `get_model(name, **kwargs)`.

Each family lives in its own file and registers its named constructors with
`@register_model`. Conventions every registered model follows:

* video/volume models take a clip shaped (batch, channels, frames, height, width) -- a volume's slices
  are the frames; 2D image models (vgg, resnet2d, cnn4) take (batch, channels, height, width);
* the final classifier is a named submodule (`fc` for most), which the trainer's `head=` addresses;
* weights are initialised at random and trained from scratch: nothing is downloaded; constructors that
  can start from pretrained weights take a local file path.
"""
from __future__ import annotations

import inspect
from typing import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a constructor under its function name (the name params use).

    Its keyword arguments must be spelled out: a `**kwargs` constructor would pass a misspelt or unknown
    params key on to code that may accept it silently (MONAI's ResNet takes `pretrained` and downloads)."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values()):
        raise TypeError(f"model {fn.__name__!r}: list its keyword arguments instead of taking **kwargs")
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_MODELS)


def get_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model, e.g. ``get_model("tsm_r18", num_classes=2)``."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose from: {', '.join(list_models())}")
    accepted = inspect.signature(_MODELS[name]).parameters
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise TypeError(f"model {name!r} got unknown keyword argument(s) {', '.join(unknown)}; "
                        f"it takes: {', '.join(accepted)}")
    return _MODELS[name](**kwargs)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (the size figure efficiency tables report, usually in millions)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# importing the family files fills the registry
from . import (  # noqa: E402,F401
    cnn4, cnn_rnn, frame_average, inflate, multiview, resnet2d, resnet3d, slowfast, small_cnn, tsn, two_stream, vgg,
)
from . import detection, early_fusion, racnn  # noqa: E402,F401
from . import r2plus1d  # noqa: E402,F401  (R(2+1)D: torchvision's and a laptop-width one)
