"""The one trainer: plain functions, no callback framework.

`fit` = AdamW, cross-entropy (soft targets when mixing), linear warm-up then one cosine
cycle to zero (stepped per batch), weight decay on the classifier `fc` alone, optional
batch mixing during the first `mix_fraction` of epochs -- Video4MRI's recipe.
"""
from __future__ import annotations

import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm  # plain tqdm: tqdm.auto never advances under papermill


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def make_optimizer(model: torch.nn.Module, *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW with weight decay on `model.fc` only (the paper decays the FC head, nothing else)."""
    head = {id(p) for p in model.fc.parameters()}
    groups = [
        {"params": [p for p in model.parameters() if id(p) in head], "weight_decay": weight_decay},
        {"params": [p for p in model.parameters() if id(p) not in head], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr)


def warmup_cosine(optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int):
    """Linear warm-up to the base lr, then a single cosine cycle down to zero."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_one_epoch(model, loader, optimizer, scheduler=None, *, mix=None, device="cpu") -> dict:
    """One pass over `loader`; returns mean loss, accuracy (vs the dominant target) and seconds."""
    model.train()
    start, total, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        x, target = mix(x, y) if mix is not None else (x, y)  # soft targets when mixing
        logits = model(x)
        loss = F.cross_entropy(logits, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        hard = target.argmax(1) if target.ndim == 2 else target
        total += len(y)
        loss_sum += loss.item() * len(y)
        correct += (logits.argmax(1) == hard).sum().item()
    return {"loss": loss_sum / total, "accuracy": correct / total, "seconds": time.perf_counter() - start}


@torch.no_grad()
def evaluate(model, loader, *, device="cpu") -> dict:
    """Loss, accuracy, and per-sample targets / predictions / probabilities."""
    model.eval()
    targets, probs, loss_sum = [], [], 0.0
    for x, y in loader:
        logits = model(x.to(device))
        loss_sum += F.cross_entropy(logits, y.to(device), reduction="sum").item()
        probs.append(logits.softmax(1).cpu())
        targets.append(y)
    probs, targets = torch.cat(probs).numpy(), torch.cat(targets).numpy()
    preds = probs.argmax(1)
    return {"loss": loss_sum / len(targets), "accuracy": float((preds == targets).mean()),
            "targets": targets, "predictions": preds, "probabilities": probs}


def fit(model, train_loader, *, epochs: int, lr: float, warmup_epochs: int = 0, weight_decay: float = 0.0,
        mix=None, mix_fraction: float = 0.8, bn_loader=None, eval_loader=None, device="cpu",
        checkpoint: str | Path | None = None, desc: str = "train") -> list[dict]:
    """Train for `epochs`; return the history (one dict per epoch).

    `mix` (a `BatchMix`) is used for the first `mix_fraction` of epochs. `bn_loader` (the
    training clips as the test sees them) recomputes BatchNorm statistics after the last epoch
    ("precise BN", as PySlowFast does): with few, fast-moving steps the running averages lag
    the weights and a short run otherwise tests with stale statistics. With `eval_loader`, the
    test loss/accuracy is recorded each epoch (never used to pick a model: the paper reports
    the last epoch). `checkpoint` saves a plain dict at the end.
    """
    model.to(device)
    optimizer = make_optimizer(model, lr=lr, weight_decay=weight_decay)
    steps = len(train_loader)
    scheduler = warmup_cosine(optimizer, warmup_steps=warmup_epochs * steps, total_steps=epochs * steps)
    history = []
    bar = tqdm(range(1, epochs + 1), desc=desc, unit="epoch", mininterval=1.0)
    for epoch in bar:
        use_mix = mix if epoch <= round(mix_fraction * epochs) else None
        row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
        row.update({f"train_{k}": v for k, v in train_one_epoch(model, train_loader, optimizer, scheduler,
                                                                mix=use_mix, device=device).items()})
        if eval_loader is not None:
            ev = evaluate(model, eval_loader, device=device)
            row.update(test_loss=ev["loss"], test_accuracy=ev["accuracy"])
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{row.get('test_accuracy', row['train_accuracy']):.2f}")
    if bn_loader is not None:
        torch.optim.swa_utils.update_bn(((x.to(device), y) for x, y in bn_loader), model)
    if checkpoint is not None:
        save_checkpoint(checkpoint, model=model, optimizer=optimizer, epoch=epochs, history=history)
    return history


def save_checkpoint(path: str | Path, *, model, optimizer=None, epoch: int = 0, history=None) -> None:
    """A plain dict: state dicts, epoch and history (readable without medvid)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None,
                "epoch": epoch, "history": history or []}, path)


def load_checkpoint(path: str | Path, *, model, optimizer=None) -> dict:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(ckpt["model"])
    if optimizer is not None and ckpt["optimizer"] is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    return ckpt
