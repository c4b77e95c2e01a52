"""CNN4: binary and five-output heads, any input size, parallel heads that are independent, and it learns."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import medvid_core.models.cnn4  # noqa: F401  (registers cnn4)
import medvid_core.models.resnet2d  # noqa: F401
from medvid_core.models import get_model
from medvid_core.models.cnn4 import ParallelHeads
from medvid_core.models.heads import replace_head


@pytest.mark.parametrize("outputs,size", [(1, 64), (5, 72), (5, 40)])
def test_shapes(outputs, size):
    model = get_model("cnn4", num_outputs=outputs, width=8, hidden=16).eval()
    assert model(torch.randn(2, 3, size, size)).shape == (2, outputs)


def test_parallel_heads_are_independent():
    heads = ParallelHeads(4, 5)
    x = torch.randn(3, 4)
    out = heads(x)
    loss = out[:, 2].sum()
    loss.backward()
    grads = [h.weight.grad for h in heads.heads]
    assert grads[2] is not None and grads[2].abs().sum() > 0
    assert all(g is None or g.abs().sum() == 0 for i, g in enumerate(grads) if i != 2)


def test_replace_head_on_resnet():
    model = replace_head(get_model("resnet18", num_classes=2, width=0.125), "fc", 5, head=ParallelHeads).eval()
    assert isinstance(model.fc, ParallelHeads) and model(torch.randn(1, 3, 32, 32)).shape == (1, 5)
    with pytest.raises(ValueError, match="not a Linear"):
        replace_head(model, "layer1", 2)


def test_learns_a_bright_spot():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 24, 24) * 0.2
    y = (torch.arange(64) % 2).float()[:, None]
    x[y[:, 0] == 1, :, 8:12, 8:12] += 0.8
    model = get_model("cnn4", width=8, hidden=16, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(40):
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        opt.step()
    assert ((model(x) > 0).float() == y).float().mean() > 0.95
