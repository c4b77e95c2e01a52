"""Multi-view 2D classification of a 3D candidate (Ciompi et al., Medical Image Analysis 2015).

Ciompi et al. classified lung nodules as peri-fissural or not from three orthogonal 2D views through the
nodule: a 2D network (for them, OverFeat features + a linear classifier) scores each view on its own,
and a *second-stage* classifier combines the per-view outputs into the nodule's label. `MultiView` is
that pipeline with one 2D network shared by the views: the views arrive as the frames of a clip
(B, C, V, H, W) (`medvid_core.transforms.orthogonal_views` cuts them), stage one gives per-view
logits, the second stage `fc` is linear on the per-view log-probabilities.

Trained in two stages, as in the paper: the view network on single views (each labelled with its
nodule's label), then `fc` alone on the frozen first stage's outputs. `forward` takes either clips of
views or (B, V * num_classes) precomputed per-view log-probabilities (see `view_log_probs`).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import register_model
from .small_cnn import SmallCNN


class MultiView(nn.Module):
    def __init__(self, view_net: nn.Module, *, num_views: int = 3, num_classes: int = 2):
        super().__init__()
        self.view_net, self.num_views, self.num_classes = view_net, num_views, num_classes
        self.fc = nn.Linear(num_views * num_classes, num_classes)  # the second stage

    def view_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, V, H, W) -> (B, V, num_classes): every view scored independently by the shared 2D net."""
        if x.ndim != 5 or x.shape[2] != self.num_views:
            raise ValueError(f"MultiView expects (B, C, {self.num_views}, H, W) views, got shape {tuple(x.shape)}")
        b, c, v, h, w = x.shape
        return self.view_net(x.transpose(1, 2).reshape(b * v, c, h, w)).view(b, v, -1)

    def view_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """The second stage's input: (B, V * num_classes) per-view log-probabilities."""
        return self.view_logits(x).log_softmax(-1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x if x.ndim == 2 else self.view_log_probs(x))


@register_model
def multiview_cnn2d_small(*, in_channels: int = 1, num_classes: int = 2, num_views: int = 3,
                          widths=(16, 32, 64), dropout: float = 0.0) -> MultiView:
    """Three orthogonal views through one small 2D CNN, then a linear second stage."""
    view_net = SmallCNN(dims=2, in_channels=in_channels, num_classes=num_classes, widths=widths, dropout=dropout)
    return MultiView(view_net, num_views=num_views, num_classes=num_classes)
