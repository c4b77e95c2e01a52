"""CNN+RNN: a 2D network applied to every frame (slice), an LSTM over the frame features, a dense head.

`CNNRNN` is generic: any 2D `backbone` mapping (N, C, H, W) to (N, F, h, w) or (N, F) works. The clip
(B, C, T, H, W) goes through an optional `stem` (ViPTT-Net's 1x1x1 convolution from 1 to 3 channels),
then the backbone on each of the B*T frames ("time-distributed"), global average pooling to F per frame,
an LSTM whose last step summarises the sequence, Dense(fc_hidden, ReLU), and the class head `fc`.
`frame_norm=True` puts a BatchNorm over the F per-frame features before the LSTM (off by default): a
random-init encoder gives features so small (about 0.04 +- 0.03) that the LSTM cannot tell clips apart.

A (B, T, F) tensor given to `forward` is taken as precomputed frame features: while the frame encoder
(stem + backbone) is frozen its features never change, so `precompute_features` runs it once per clip
and training the LSTM and head on those features is exactly training the whole model with the encoder
frozen, at a fraction of the cost (benchmarks/viptt_pretraining.py measures it).

`replace_head(num_classes)` swaps the classifier only (ViPTT-Net: 10 action classes -> 5 TB types),
keeping the encoder, LSTM and dense weights.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from . import register_model
from .heads import replace_head
from .vgg import vgg_features


class CNNRNN(nn.Module):
    """(B, C, T, H, W) clips -> per-frame `backbone` features -> LSTM (last step) -> Dense+ReLU -> `fc`."""

    def __init__(self, backbone: nn.Module, *, feature_dim: int, num_classes: int, hidden: int = 256,
                 fc_hidden: int = 1024, stem: nn.Module | None = None, dropout: float = 0.0,
                 frame_norm: bool = False):
        super().__init__()
        self.stem = stem if stem is not None else nn.Identity()
        self.backbone = backbone
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = feature_dim
        self.frame_norm = nn.BatchNorm1d(feature_dim) if frame_norm else None
        self.rnn = nn.LSTM(feature_dim, hidden, batch_first=True)  # tanh cell, as Keras' LSTM
        self.hidden = nn.Sequential(nn.Linear(hidden, fc_hidden), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(fc_hidden, num_classes)

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, T, F): the stem on the clip, then the backbone on every frame."""
        if x.ndim != 5:
            raise ValueError(f"CNNRNN expects clips (B, C, T, H, W), got shape {tuple(x.shape)}")
        x = self.stem(x)
        b, c, t, h, w = x.shape
        f = self.backbone(x.transpose(1, 2).reshape(b * t, c, h, w))
        if f.ndim == 4:
            f = self.pool(f).flatten(1)
        return f.view(b, t, -1)

    def forward_features(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, F) frame features -> class logits (B, num_classes)."""
        if self.frame_norm is not None:
            features = self.frame_norm(features.transpose(1, 2)).transpose(1, 2)
        out, _ = self.rnn(features)
        return self.fc(self.dropout(self.hidden(out[:, -1])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:  # precomputed frame features
            return self.forward_features(x)
        return self.forward_features(self.frame_features(x))

    def encoder_parameters(self):
        """The parameters `precompute_features` assumes fixed: the stem's and the backbone's."""
        return [*self.stem.parameters(), *self.backbone.parameters()]

    def freeze_encoder(self, frozen: bool = True) -> "CNNRNN":
        """Stop (or restart) gradient updates of the stem and backbone."""
        for p in self.encoder_parameters():
            p.requires_grad_(not frozen)
        return self

    def replace_head(self, num_classes: int) -> "CNNRNN":
        """A fresh `fc` for `num_classes`; every other weight stays."""
        return replace_head(self, "fc", num_classes)


@torch.no_grad()
def precompute_features(model: CNNRNN, loader, *, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Run the (frozen) frame encoder once over `loader` of (clips, targets): returns (features (N, T, F)
    on the CPU, targets). The model is put in eval mode for the pass and restored afterwards."""
    was_training = model.training
    model.eval().to(device)
    feats, targets = [], []
    for x, y in loader:
        feats.append(model.frame_features(x.to(device)).cpu())
        targets.append(y)
    model.train(was_training)
    return torch.cat(feats), torch.cat(targets)


def load_vgg16_features(model: CNNRNN, path: str | Path) -> CNNRNN:
    """Load a local torchvision VGG-16 state dict (ImageNet weights, e.g. `vgg16-397923af.pth`, or
    `vgg16_bn-6c64b313.pth` into a `batch_norm` backbone) into the backbone: its `features.*` entries.
    Width 1.0 only (the channel counts must match)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    if not state:
        raise ValueError(f"{path}: no 'features.*' weights (not a torchvision VGG state dict)")
    try:
        model.backbone.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{path}: does not fit this backbone (width must be 1.0): "
                         f"{str(exc).splitlines()[0]}") from None
    return model


@register_model
def viptt_net(*, num_classes: int = 5, width: float = 1.0, hidden: int = 256, fc_hidden: int = 1024,
              weights: str | None = None, frame_norm: bool = False, batch_norm: bool = False) -> CNNRNN:
    """ViPTT-Net (Zunair et al., CLEF 2021): 1x1x1 conv 1->3 channels, VGG-16 conv stack on every slice
    (average-pooled to 512*width), LSTM(256), Dense(1024, ReLU), `num_classes` head.

    `weights`: a local torchvision VGG-16 state dict for the backbone (ImageNet; nothing is downloaded);
    None trains the backbone from random init. `frame_norm`: BatchNorm on the per-slice features before
    the LSTM (not in the paper; it lets a random-init VGG's tiny features reach the LSTM). `batch_norm`:
    VGG-16-BN's conv stack (torchvision's layout, so a local `vgg16_bn` state dict loads) instead of the
    paper's plain VGG-16; from random init the plain stack does not train on a laptop budget.
    """
    stem = nn.Conv3d(1, 3, kernel_size=1)
    with torch.no_grad():  # start by copying the gray slice to three channels, what an RGB backbone expects
        stem.weight.fill_(1.0)
        stem.bias.zero_()
    backbone = vgg_features(16, width=width, in_channels=3, batch_norm=batch_norm)
    model = CNNRNN(backbone, feature_dim=max(1, int(round(512 * width))), num_classes=num_classes, hidden=hidden,
                   fc_hidden=fc_hidden, stem=stem, frame_norm=frame_norm)
    if weights:
        load_vgg16_features(model, weights)
    return model
