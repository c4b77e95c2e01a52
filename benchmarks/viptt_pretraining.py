"""ViPTT-Net pretraining with cached frame features against recomputing the frozen VGG every step.

While the VGG (and the 1x1x1 stem) is frozen, its per-frame features are the same in every epoch, so
`precompute_features` runs it once per clip and the LSTM + head train on the features. This prints, in
one run: seconds per pretraining epoch both ways (same data order, same seed), the largest difference
between the two runs' losses (float tolerance), and ms per CT for ViPTT-Net inference at paper size
(70x224x224, paper width).

    .venv/bin/python benchmarks/viptt_pretraining.py            # defaults: 40 clips of 16x64x64, vgg_width 0.25
    .venv/bin/python benchmarks/viptt_pretraining.py --clips 20 --depth 70 --size 224 --vgg-width 1.0
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import medvid_core.models.cnn_rnn  # noqa: F401
from medvid_core.metrics import inference_ms
from medvid_core.models import get_model
from medvid_core.models.cnn_rnn import precompute_features
from medvid_core.synth.action_video import ACTIONS, render_clip
from medvid_core.timing import timed
from medvid_core.train import fit, seed_everything


def clips(n: int, depth: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n in-memory action clips, gray in [0, 1], shaped (n, 1, depth, size, size)."""
    labels = torch.arange(n) % len(ACTIONS)
    x = np.stack([render_clip(ACTIONS[k], seed=i, frames=depth, height=size, width=size).mean(-1) / 255
                  for i, k in enumerate(labels.tolist())])
    return torch.from_numpy(x).float()[:, None], labels


def pretrain(x, y, *, cached: bool, epochs: int, vgg_width: float, seed: int = 0):
    """Seconds per epoch (feature pass included in the cached run's total) and the loss history."""
    seed_everything(seed)
    model = get_model("viptt_net", num_classes=len(ACTIONS), width=vgg_width).freeze_encoder()
    with timed() as t:
        if cached:
            x, y = precompute_features(model, DataLoader(TensorDataset(x, y), batch_size=8))
    feature_s = t.wall
    loader = DataLoader(TensorDataset(x, y), batch_size=2, shuffle=True, generator=torch.Generator().manual_seed(seed))
    hist = fit(model, loader, epochs=epochs, lr=1e-3, optimizer="sgd", momentum=0.0, schedule="constant",
               head="fc", desc="cached" if cached else "recompute")
    return feature_s, [h["train_seconds"] for h in hist], [h["train_loss"] for h in hist]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--depth", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--vgg-width", type=float, default=0.25)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--no-inference", action="store_true", help="skip the paper-size inference timing")
    ap.add_argument("--repeats", type=int, default=3, help="timed inference calls (median), after 3 warm-up calls")
    a = ap.parse_args()
    print(f"torch threads: {torch.get_num_threads()}; {a.clips} clips of {a.depth}x{a.size}x{a.size}, "
          f"vgg_width {a.vgg_width}, batch 2, {a.epochs} epochs")
    x, y = clips(a.clips, a.depth, a.size)
    _, slow_s, slow_loss = pretrain(x, y, cached=False, epochs=a.epochs, vgg_width=a.vgg_width)
    feat_s, fast_s, fast_loss = pretrain(x, y, cached=True, epochs=a.epochs, vgg_width=a.vgg_width)
    slow, fast = float(np.mean(slow_s)), float(np.mean(fast_s))
    print(f"recompute VGG every step: {slow:.3f} s/epoch")
    print(f"cached features:          {fast:.3f} s/epoch (+ {feat_s:.3f} s once for the feature pass)")
    print(f"speed-up per epoch: {slow / fast:.1f}x; over {a.epochs} epochs incl. the feature pass: "
          f"{sum(slow_s) / (sum(fast_s) + feat_s):.1f}x")
    print(f"largest loss difference between the two runs: {max(abs(p - q) for p, q in zip(slow_loss, fast_loss)):.2e}")
    if not a.no_inference:
        model = get_model("viptt_net", num_classes=5, width=1.0)
        ms = inference_ms(model, (1, 70, 224, 224), repeats=a.repeats)
        print(f"ViPTT-Net inference at paper size (1, 70, 224, 224), vgg_width 1.0, batch 1: {ms:.0f} ms per CT")


if __name__ == "__main__":
    main()
