"""The one trainer: plain functions, no callback framework.

Every study's recipe is a set of keyword arguments to `fit`:

* the loss is passed in as `loss_fn(outputs, targets)` (cross-entropy by default; soft targets work
  for mixing; `nn.CrossEntropyLoss(weight=...)`, `nn.BCEWithLogitsLoss()`, an ignore-index loss...),
  and `forward(model, inputs)` replaces `model(inputs)` where one step needs several passes;
* metrics stay out of the loop: `metric_fn(outputs, targets)` sees a whole epoch's outputs;
* AdamW or SGD with momentum; weight decay on the head the caller names, or everywhere;
* a linear warm-up + one cosine cycle (per step), reduce-on-plateau (per epoch) or a constant lr;
* batch mixing (CutMix / MixUp) for the first fraction of epochs, and "precise BN" at the end;
* early stopping on a monitored history value, restoring the best epoch's weights;
* a checkpoint every epoch and `resume` from one, reaching the same weights as an uninterrupted run.

The defaults are plain method defaults, each with its reason beside it in `fit`'s signature: cross-entropy,
AdamW without weight decay, one cosine decay without warm-up, a mixer (if given) in every epoch, no early
stopping. A study passes its paper's recipe explicitly (its room, or its `params/<study>/paper.yaml`).
"""
from __future__ import annotations

import copy
import math
import os
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm  # plain tqdm: tqdm.auto never advances under papermill

from .timing import timed

SCHEDULES = ("warmup_cosine", "plateau", "constant")
OPTIMIZERS = ("adamw", "sgd")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_device(device: str = "auto") -> torch.device:
    """`"auto"` is CUDA when a GPU is visible, else the CPU; anything else (a name or a torch.device) goes to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def to_device(obj: Any, device) -> Any:
    """Move a tensor, or the tensors inside a tuple/list/dict, to `device`."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def _concat(parts: list) -> Any:
    """Concatenate a list of batches (tensors, tuples or dicts of tensors) along the batch axis."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    if isinstance(first, dict):
        return {k: _concat([p[k] for p in parts]) for k in first}
    if isinstance(first, (tuple, list)):
        return type(first)(_concat(list(col)) for col in zip(*parts))
    raise TypeError(f"cannot concatenate batches of {type(first).__name__}")


def _batch_size(targets: Any) -> int:
    if isinstance(targets, torch.Tensor):
        return len(targets)
    if isinstance(targets, dict):
        return _batch_size(next(iter(targets.values())))
    return _batch_size(targets[0])


def _detach(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _detach(v) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(_detach(v) for v in obj)
    return obj


def _call(model, inputs, forward: Callable | None):
    return model(inputs) if forward is None else forward(model, inputs)


# --------------------------------------------------------------------------- optimizer and schedule


def make_optimizer(model: torch.nn.Module, *, lr: float, weight_decay: float = 0.0, optimizer: str = "adamw",
                   momentum: float = 0.9, head: str | None = None) -> torch.optim.Optimizer:
    """AdamW or SGD (with `momentum`); weight decay on the submodule `head` alone, or on everything if None.

    `head` is an attribute path (`"fc"`, `"classifier.6"`, `"head"`): decaying the classifier head only
    regularises the layer that overfits first and leaves the features alone (as in Video4MRI's recipe).
    Two parameter groups always (decayed first), so the group order does not depend on `head`.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if head is None:
        decayed = {id(p) for p in model.parameters()}
    else:
        try:
            decayed = {id(p) for p in model.get_submodule(head).parameters()}
        except AttributeError:
            raise ValueError(f"head={head!r}: {type(model).__name__} has no submodule {head!r}; name the "
                             "classifier head, or head=None for weight decay on every parameter") from None
    groups = [
        {"params": [p for p in model.parameters() if id(p) in decayed], "weight_decay": weight_decay},
        {"params": [p for p in model.parameters() if id(p) not in decayed], "weight_decay": 0.0},
    ]
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    return torch.optim.AdamW(groups, lr=lr)


def warmup_cosine(optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int):
    """Linear warm-up to the base lr, then a single cosine cycle down to zero."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# --------------------------------------------------------------------------- one epoch, evaluation


def train_one_epoch(model, loader, optimizer, scheduler=None, *, loss_fn: Callable = F.cross_entropy,
                    forward: Callable | None = None, metric_fn: Callable | None = None, mix=None,
                    device="cpu") -> dict:
    """One pass over `loader`; returns the mean loss, seconds, and `metric_fn`'s values over the epoch.

    `scheduler` (if given) is stepped after every batch. `mix(x, y)` returns mixed inputs and soft targets.
    """
    device = resolve_device(device)
    model.train()
    clock, total, loss_sum = timed(), 0, 0.0
    outputs_seen, targets_seen = [], []
    for x, y in loader:
        x, y = to_device(x, device), to_device(y, device)
        x, target = mix(x, y) if mix is not None else (x, y)  # soft targets when mixing
        outputs = _call(model, x, forward)
        loss = loss_fn(outputs, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        n = _batch_size(y)
        total += n
        loss_sum += loss.item() * n
        if metric_fn is not None:
            outputs_seen.append(_detach(outputs))
            targets_seen.append(_detach(target))
    if total == 0:
        raise ValueError(f"the training loader gave no batch ({len(loader.dataset)} samples, batch size "
                         f"{loader.batch_size}, drop_last={loader.drop_last}): use a smaller batch size or more data")
    row = {"loss": loss_sum / total, "seconds": clock.stop().wall}
    if metric_fn is not None:
        row.update(metric_fn(_concat(outputs_seen), _concat(targets_seen)))
    return row


@torch.no_grad()
def evaluate(model, loader, *, loss_fn: Callable = F.cross_entropy, forward: Callable | None = None,
             metric_fn: Callable | None = None, device="cpu") -> dict:
    """Mean loss, the concatenated outputs and targets (on the CPU), and `metric_fn(outputs, targets)`."""
    device = resolve_device(device)
    model.eval()
    outputs, targets, loss_sum, total = [], [], 0.0, 0
    for x, y in loader:
        out = _call(model, to_device(x, device), forward)
        n = _batch_size(y)
        loss_sum += loss_fn(out, to_device(y, device)).item() * n
        total += n
        outputs.append(_detach(out))
        targets.append(_detach(y))
    if total == 0:
        raise ValueError("evaluate: the loader gave no batch")
    result = {"loss": loss_sum / total, "outputs": _concat(outputs), "targets": _concat(targets)}
    if metric_fn is not None:
        result.update(metric_fn(result["outputs"], result["targets"]))
    return result


# --------------------------------------------------------------------------- fit


class History(list):
    """One dict per epoch (epoch, lr, train_loss, train_seconds, train_<metric>, val_loss, val_<metric>).

    `best_epoch` is the epoch whose weights the model holds after early stopping (else the last).
    """

    best_epoch: int = 0


def _better(value: float, best: float | None, mode: str) -> bool:
    """A NaN (an undefined kappa, a diverged loss) never becomes nor stays the best epoch."""
    if math.isnan(value):
        return False
    return best is None or math.isnan(best) or (value < best if mode == "min" else value > best)


def fit(model, train_loader, *, epochs: int, lr: float,
        loss_fn: Callable = F.cross_entropy,  # single-label classification; takes soft (mixed) targets too
        forward: Callable | None = None,  # None: model(inputs)
        metric_fn: Callable | None = None,  # None: the loss alone is recorded
        optimizer: str = "adamw",  # Adam with decoupled weight decay: forgiving of the lr, nothing else to tune
        momentum: float = 0.9,  # SGD only: the usual heavy-ball value
        weight_decay: float = 0.0,  # off: a regulariser to tune per task, not a given
        head: str | None = None,  # where weight decay goes: None = every parameter, as torch's optimizers do
        schedule: str = "warmup_cosine",  # one cosine decay to zero over the run: no milestones to pick
        warmup_epochs: int = 0,  # no warm-up: worth it with large lrs or batches, not by default
        plateau_factor: float = 0.1,  # schedule="plateau": torch's ReduceLROnPlateau factor
        plateau_patience: int = 5,  # schedule="plateau": epochs without improvement before the lr drops
        val_loader=None, monitor: str = "val_loss", monitor_mode: str = "min",
        early_stopping: int = 0,  # off: runs the given epochs
        mix=None,  # a batch mixer such as BatchMix (CutMix / MixUp); None: no mixing
        mix_fraction: float = 1.0,  # with `mix`: mix in every epoch; less leaves the last epochs clean
        bn_loader=None, checkpoint_dir: str | Path | None = None, resume: str | Path | None = None, device="cpu",
        desc: str = "train") -> History:
    """Train for `epochs` (fewer if early stopping fires); return the history.

    `mix` (a `BatchMix`) is used for the first `mix_fraction` of epochs. With `val_loader`, the
    validation loss and metrics are recorded every epoch; `monitor` names the history value that
    reduce-on-plateau and early stopping watch (`monitor_mode` "min" or "max"). `early_stopping` > 0
    stops after that many epochs without improvement and restores the best epoch's weights.
    `bn_loader` (the training clips as the test sees them) recomputes BatchNorm statistics at the end
    ("precise BN", as PySlowFast does): a short run otherwise tests with running averages that lag the
    weights. `checkpoint_dir` keeps `last.pt` (a plain dict, loadable with `weights_only=True`) after every
    epoch; `resume` continues from such a file: same data order, same random draws, same final weights.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if monitor_mode not in ("min", "max"):
        raise ValueError(f"monitor_mode must be 'min' or 'max', got {monitor_mode!r}")
    watching = schedule == "plateau" or early_stopping > 0
    if watching and monitor.startswith("val_") and val_loader is None:
        raise ValueError(f"monitor={monitor!r} needs a val_loader (schedule={schedule!r}, "
                         f"early_stopping={early_stopping})")
    device = resolve_device(device)
    model.to(device)
    opt = make_optimizer(model, lr=lr, weight_decay=weight_decay, optimizer=optimizer, momentum=momentum, head=head)
    steps = len(train_loader)
    per_step = None
    if schedule == "warmup_cosine":
        per_step = warmup_cosine(opt, warmup_steps=warmup_epochs * steps, total_steps=epochs * steps)
    plateau = (torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=monitor_mode, factor=plateau_factor,
                                                          patience=plateau_patience)
               if schedule == "plateau" else None)
    history, best, best_state, bad_epochs, start_epoch = History(), None, None, 0, 0
    if resume is not None:
        state = torch.load(resume, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        for sched, key in ((per_step, "scheduler"), (plateau, "plateau")):
            if sched is not None and state.get(key) is not None:
                sched.load_state_dict(state[key])
        history.extend(state["history"])
        history.best_epoch = state.get("best_epoch", 0)
        best, best_state, bad_epochs = state.get("best"), state.get("best_state"), state.get("bad_epochs", 0)
        start_epoch = state["epoch"]
        _set_rng_state(state["rng"], train_loader)
    bar = tqdm(range(start_epoch + 1, epochs + 1), desc=desc, unit="epoch", mininterval=1.0)
    for epoch in bar:
        use_mix = mix if epoch <= round(mix_fraction * epochs) else None
        row = {"epoch": epoch, "lr": opt.param_groups[0]["lr"]}
        row.update({f"train_{k}": v for k, v in train_one_epoch(
            model, train_loader, opt, per_step, loss_fn=loss_fn, forward=forward, metric_fn=metric_fn,
            mix=use_mix, device=device).items()})
        if val_loader is not None:
            ev = evaluate(model, val_loader, loss_fn=loss_fn, forward=forward, metric_fn=metric_fn, device=device)
            row.update({f"val_{k}": v for k, v in ev.items() if k not in ("outputs", "targets")})
        history.append(row)
        stop = False
        if watching:
            if monitor not in row:
                raise ValueError(f"monitor={monitor!r} is not in the history (have: {', '.join(row)})")
            value = float(row[monitor])
            if plateau is not None:
                plateau.step(value)
            if _better(value, best, monitor_mode):
                best, bad_epochs, history.best_epoch = value, 0, epoch
                if early_stopping > 0:
                    best_state = copy.deepcopy(model.state_dict())
            else:
                bad_epochs += 1
                stop = early_stopping > 0 and bad_epochs >= early_stopping
        else:
            history.best_epoch = epoch
        if checkpoint_dir is not None:
            _save_atomic(Path(checkpoint_dir) / "last.pt", {
                "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": per_step.state_dict() if per_step is not None else None,
                "plateau": plateau.state_dict() if plateau is not None else None,
                "epoch": epoch, "history": list(history), "best_epoch": history.best_epoch, "best": best,
                "best_state": best_state, "bad_epochs": bad_epochs, "rng": _rng_state(train_loader)})
        shown = {k: v for k, v in row.items() if k not in ("epoch", "lr", "train_seconds")}
        bar.set_postfix({k: f"{v:.3f}" for k, v in list(shown.items())[:3]})
        if stop:
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    if bn_loader is not None:
        torch.optim.swa_utils.update_bn(((to_device(x, device), y) for x, y in bn_loader), model)
    return history


# --------------------------------------------------------------------------- checkpoints and RNG state


def _rng_state(loader) -> dict:
    """Every random stream a resumed epoch draws from, as plain values (weights_only-loadable)."""
    legacy = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [legacy[0], legacy[1].tolist(), *legacy[2:]],
             "torch": torch.get_rng_state()}
    if getattr(loader, "generator", None) is not None:
        state["loader"] = loader.generator.get_state()
    rng = getattr(loader.dataset, "rng", None)  # datasets that draw from their own numpy Generator
    if isinstance(rng, np.random.Generator):
        state["dataset"] = rng.bit_generator.state
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, loader) -> None:
    random.setstate(state["python"])
    name, key, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "loader" in state and getattr(loader, "generator", None) is not None:
        loader.generator.set_state(state["loader"])
    if "dataset" in state and isinstance(getattr(loader.dataset, "rng", None), np.random.Generator):
        loader.dataset.rng.bit_generator.state = state["dataset"]
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_atomic(path: Path, obj: dict) -> None:
    """Write to a temporary file, then rename: a run killed mid-save never leaves a half checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_checkpoint(path: str | Path, *, model, optimizer=None, epoch: int = 0, history=None) -> None:
    """A plain dict: state dicts, epoch and history (readable without medvid)."""
    _save_atomic(Path(path), {"model": model.state_dict(),
                              "optimizer": optimizer.state_dict() if optimizer else None,
                              "epoch": epoch, "history": list(history or [])})


def load_checkpoint(path: str | Path, *, model, optimizer=None) -> dict:
    """Load weights (and optimizer state) saved by `save_checkpoint` or `fit`; never unpickles code."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(ckpt["model"])
    if optimizer is not None and ckpt.get("optimizer") is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    return ckpt
