"""Recurrent attention CNN (RA-CNN; Fu, Zheng & Mei, "Look Closer to See Better", CVPR 2017).

A classifier looks at the image, an attention-proposal subnetwork (APN) reads its last conv features and
proposes a square, the square is cut out and enlarged to the input size, and a second classifier looks at
that; once more for a third scale. Each scale has its own classifier (no weights shared between scales),
every scale's logits are reported, and the prediction combines them (here: the mean of the logits).

The square is (tx, ty, tl): centre and half side, in units of the *previous* scale's crop, so the squares
nest. The APN's raw outputs pass through sigmoids that keep every square inside its parent: the side lies
in [`min_side`, 1] of the parent's (Fu et al. keep it at least a third), the centre at least half a side
from every edge. An APN whose last layer is zero proposes `init_side` of the parent, centred: Fu et al.
pretrain their APN towards the most active square of that size; the fixed centred start is ours, so how far
the squares move from it is what the APN learnt.

Cropping is differentiable in (tx, ty, tl), as the ranking loss needs: the square is sampled from the
input with an affine grid (`F.grid_sample`, bilinear: the crop and the zoom in one step, from the
full-resolution input rather than from the previous zoom), and multiplied by Fu et al.'s boxcar mask
``M = [h(x - x0) - h(x - x1)] [h(y - y0) - h(y - y1)]``, ``h(z) = sigmoid(k z)`` with k in units of the
output's pixels. Scale 1 is the input resized (antialiased) to `input_size`.

Training alternates (Fu et al.): the classifiers with the APNs fixed (cross-entropy at every scale), then
the APNs with the classifiers fixed, on the pairwise ranking loss (`losses.scale_ranking_loss`: the
true class's probability should grow from each scale to the next by a margin). `classifier_parameters`
and `apn_parameters` split the weights for that.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import register_model
from .vgg import VGG


def square_from_raw(raw: torch.Tensor, *, min_side: float, init_side: float) -> torch.Tensor:
    """APN outputs (N, 3) -> squares (N, 3) as (tx, ty, tl) inside the unit square, whatever `raw` is.

    side = min_side + (1 - min_side) * sigmoid(raw_l + b), b chosen so raw 0 gives `init_side`;
    tx = tl + (1 - 2 tl) * sigmoid(raw_x) (so tx - tl >= 0 and tx + tl <= 1), and ty alike."""
    if not min_side <= init_side < 1:
        raise ValueError(f"need min_side <= init_side < 1, got {min_side} and {init_side}")
    frac = (init_side - min_side) / (1 - min_side)
    offset = math.log(frac / (1 - frac)) if frac > 0 else -30.0  # sigmoid(-30) ~ 1e-13: the smallest side
    side = min_side + (1 - min_side) * torch.sigmoid(raw[:, 2] + offset)
    tl = side / 2
    tx = tl + (1 - side) * torch.sigmoid(raw[:, 0])
    ty = tl + (1 - side) * torch.sigmoid(raw[:, 1])
    return torch.stack([tx, ty, tl], dim=1)


def nest(parent: torch.Tensor, child: torch.Tensor) -> torch.Tensor:
    """A square given inside `parent` (both (N, 3) as (tx, ty, tl)) in the parent's own coordinates."""
    px, py, pl = parent.unbind(1)
    cx, cy, cl = child.unbind(1)
    side = 2 * pl
    return torch.stack([px - pl + cx * side, py - pl + cy * side, cl * side], dim=1)


def boxcar_mask(coords: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, sharpness) -> torch.Tensor:
    """Fu et al.'s soft 1D window: h(x - lo) - h(x - hi), h(z) = sigmoid(sharpness * z)."""
    return torch.sigmoid(sharpness * (coords - lo)) - torch.sigmoid(sharpness * (coords - hi))


def zoom_square(images: torch.Tensor, squares: torch.Tensor, size: int, *, sharpness: float = 10.0) -> torch.Tensor:
    """Cut each square (tx, ty, tl in the unit image, (N, 3)) out of `images` (N, C, H, W) at `size` x
    `size`: bilinear sampling on an affine grid, times the boxcar mask; differentiable in the squares.
    `sharpness` is the mask's k per output pixel."""
    n = images.shape[0]
    tx, ty, tl = squares.unbind(1)
    zero = torch.zeros_like(tx)
    # affine_grid works in [-1, 1]: the square's half side tl becomes the scale 2 tl, its centre 2 t - 1
    theta = torch.stack([torch.stack([2 * tl, zero, 2 * tx - 1], 1), torch.stack([zero, 2 * tl, 2 * ty - 1], 1)], 1)
    grid = F.affine_grid(theta, [n, images.shape[1], size, size], align_corners=False)
    crop = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    u = (grid + 1) / 2  # sample positions in the unit image, (N, size, size, 2) as (x, y)
    k = sharpness * size / (2 * tl).clamp_min(1e-6)  # k per output pixel -> per unit of the image
    k, tx, ty, tl = (t[:, None, None] for t in (k, tx, ty, tl))
    mask = boxcar_mask(u[..., 0], tx - tl, tx + tl, k) * boxcar_mask(u[..., 1], ty - tl, ty + tl, k)
    return crop * mask[:, None]


class AttentionProposal(nn.Module):
    """Two fully connected layers on a scale's pooled conv features -> raw (tx, ty, tl) (Fu et al.'s APN).

    The last layer starts at zero: every image first gets the initial square."""

    def __init__(self, channels: int, *, grid: int = 4, hidden: int = 256):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(channels * grid * grid, hidden), nn.Tanh(),
                                nn.Linear(hidden, 3))
        nn.init.zeros_(self.fc[-1].weight)
        nn.init.zeros_(self.fc[-1].bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(features))


class RACNN(nn.Module):
    """Scales of (classifier, APN) pairs; forward(x) -> (logits (N, S, K), squares (N, S - 1, 3)).

    `backbones`: one classifier per scale, each with `features` (conv stack), `avgpool`, `classifier` and
    `out_channels` (our `VGG`). Squares are in the unit input image (nested, so each lies in the one
    before). `combine(logits)` is the prediction: the mean over scales."""

    def __init__(self, backbones: Sequence[nn.Module], *, input_size: int, min_side: float = 1 / 3,
                 init_side: float = 0.5, apn_grid: int = 4, apn_hidden: int = 256, sharpness: float = 10.0):
        super().__init__()
        if len(backbones) < 2:
            raise ValueError(f"RA-CNN needs at least two scales, got {len(backbones)}")
        square_from_raw(torch.zeros(1, 3), min_side=min_side, init_side=init_side)  # checks the range
        self.scales = nn.ModuleList(backbones)
        self.apns = nn.ModuleList(AttentionProposal(b.out_channels, grid=apn_grid, hidden=apn_hidden)
                                  for b in backbones[:-1])
        self.input_size, self.min_side, self.init_side, self.sharpness = input_size, min_side, init_side, sharpness

    def classifier_parameters(self):
        return self.scales.parameters()

    def apn_parameters(self):
        return self.apns.parameters()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        view = x if x.shape[-2:] == (self.input_size,) * 2 else F.interpolate(
            x, size=(self.input_size, self.input_size), mode="bilinear", antialias=True, align_corners=False)
        square = x.new_tensor([0.5, 0.5, 0.5]).expand(n, 3)  # scale 1 sees the whole image
        logits, squares = [], []
        for s, net in enumerate(self.scales):
            feats = net.features(view)
            logits.append(net.classifier(torch.flatten(net.avgpool(feats), 1)))
            if s == len(self.apns):
                break
            child = square_from_raw(self.apns[s](feats), min_side=self.min_side, init_side=self.init_side)
            square = nest(square, child)
            squares.append(square)
            view = zoom_square(x, square, self.input_size, sharpness=self.sharpness)
        return torch.stack(logits, 1), torch.stack(squares, 1)

    @staticmethod
    def combine(logits: torch.Tensor) -> torch.Tensor:
        """(N, S, K) per-scale logits -> (N, K): their mean."""
        return logits.mean(1)


@register_model
def racnn_vgg19(*, num_classes: int = 2, in_channels: int = 3, input_size: int = 448,  # Fu et al.'s 448 inputs
                scales: int = 3,  # Fu et al.: three scales
                width: float = 1.0,  # torchvision's VGG19 channel counts
                batch_norm: bool = False,  # Fu et al.'s VGG19 has none
                dropout: float = 0.5,  # torchvision VGG's
                min_side: float = 1 / 3,  # Fu et al.: a square at least a third of its parent's side
                init_side: float = 0.5,  # Fu et al.'s initial square: half the parent's side
                apn_grid: int = 4,  # the APN reads the conv features pooled to 4 x 4
                apn_hidden: int = 256,  # hidden units of the APN's two fully connected layers
                sharpness: float = 10.0) -> RACNN:  # boxcar mask slope per pixel: a near-hard edge
    """RA-CNN with a VGG19 classifier at every scale (Fu et al.'s backbone)."""
    nets = [VGG(depth=19, num_classes=num_classes, in_channels=in_channels, width=width, batch_norm=batch_norm,
                dropout=dropout) for _ in range(scales)]
    return RACNN(nets, input_size=input_size, min_side=min_side, init_side=init_side, apn_grid=apn_grid,
                 apn_hidden=apn_hidden, sharpness=sharpness)
