"""Early fusion of several views of one case: the views meet in the first convolution of a 2D network.

Huschauer (ZHAW, Sec. IV-E, Fig. 7) fed all radiographs of a study to one VGG19 at once: its first layer
takes six views, everything after it is one network for the whole study. A first convolution over the
views stacked as input channels *is* that design: its output is the sum over views of one kernel per view
(``conv(cat(v_1..v_V), W) = sum_i conv(v_i, W[:, i])``), so each view has its own first-layer weights and
the fused result goes through a single shared network. No layer after the first is repeated per view.

`EarlyFusionVGG` is our `VGG` (torchvision's recipe and attribute names) whose first conv takes
``num_views * in_channels`` channels; the rest is exactly `vgg19`'s. It takes the views as the frames of
a clip, (B, C, V, H, W) (the multi-view convention of `multiview.py`), or already stacked, (B, V * C, H, W),
channel ``v * C + c`` being channel c of view v. How a case with fewer or more views than `num_views` is
filled or thinned is the data's business, not the model's.
"""
from __future__ import annotations

import torch

from . import register_model
from .vgg import VGG


class EarlyFusionVGG(VGG):
    """VGG-`depth` whose first convolution sees `num_views` views of `in_channels` channels each."""

    def __init__(self, *, num_views: int, depth: int = 19, num_classes: int = 2, in_channels: int = 1,
                 width: float = 1.0, batch_norm: bool = False, dropout: float = 0.5):
        super().__init__(depth=depth, num_classes=num_classes, in_channels=num_views * in_channels, width=width,
                         batch_norm=batch_norm, dropout=dropout)
        self.num_views, self.view_channels = num_views, in_channels

    @property
    def first_conv(self) -> torch.nn.Conv2d:
        """The only layer with weights per view: ``weight[:, v * C:(v + 1) * C]`` belongs to view v."""
        return self.features[0]

    def stack_views(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, V, H, W) views -> (B, V * C, H, W), view-major; a stacked 4D input is checked and kept."""
        expected = self.num_views * self.view_channels
        if x.ndim == 5:
            b, c, v, h, w = x.shape
            if (c, v) != (self.view_channels, self.num_views):
                raise ValueError(f"EarlyFusionVGG expects (B, {self.view_channels}, {self.num_views}, H, W) views, "
                                 f"got shape {tuple(x.shape)}")
            return x.transpose(1, 2).reshape(b, v * c, h, w)
        if x.ndim != 4 or x.shape[1] != expected:
            raise ValueError(f"EarlyFusionVGG expects (B, C, V, H, W) views or (B, {expected}, H, W) stacked, "
                             f"got shape {tuple(x.shape)}")
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward_features(self.stack_views(x))


@register_model
def vgg19_early_fusion(*, num_views: int = 6,  # Fig. 7's input: six views of a study
                       num_classes: int = 2,  # normal / abnormal
                       in_channels: int = 1,  # a radiograph is gray
                       width: float = 1.0,  # torchvision's VGG19 channel counts
                       batch_norm: bool = False,  # as the paper's (pretrained) VGG19
                       dropout: float = 0.5) -> EarlyFusionVGG:  # torchvision VGG's
    """VGG19 over `num_views` stacked views (6: Huschauer's Fig. 7), one gray channel each (radiographs)."""
    return EarlyFusionVGG(num_views=num_views, depth=19, num_classes=num_classes, in_channels=in_channels,
                          width=width, batch_norm=batch_norm, dropout=dropout)
