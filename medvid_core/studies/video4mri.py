"""One row of a results table: build a model, train it, test it, measure it.

Every table of the Video4MRI notebook (models x cohorts, augmentation ablation, K ablation)
is a list of `run_trial` calls with different keyword arguments; the keyword names are the
notebook's parameter names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

from .data import FrameStore, VolumeDataset, read_manifest, subject_split, subsample_subjects
from .metrics import bootstrap_accuracy, efficiency
from .models import get_model
from .paths import DATA_DIR
from .synth.brain_mri import PRESETS, ensure_cohort
from .train import evaluate, fit, seed_everything
from .transforms import BatchMix, VideoAugment


def load_cohort(*, cohort: str, data_root: str = "", classes: list[str] | None = None, seed: int = 0,
                cache_dir: str | Path = DATA_DIR / "video4mri") -> tuple[pd.DataFrame, list[str]]:
    """The manifest of a real cohort (`data_root`) or of a synthetic preset (generated on first use).

    Classes are NC first, then the disease label (the positive class).
    """
    if data_root:
        manifest = Path(data_root) / "manifest.csv"
        if not classes:
            labels = sorted(pd.read_csv(manifest)["label"].unique()) if manifest.exists() else []
            classes = ["NC"] + [c for c in labels if c != "NC"]
    else:
        manifest = ensure_cohort(Path(cache_dir) / f"{cohort}-seed{seed}", cohort, seed=seed)
        classes = classes or ["NC", PRESETS[cohort].disease]
    return read_manifest(manifest, classes=list(classes)), list(classes)


@dataclass
class Trial:
    """What one trained model gives: history, test predictions, bootstrap and efficiency."""

    name: str
    model: torch.nn.Module
    history: list[dict]
    test: dict
    bootstrap: dict
    efficiency: dict
    extra: dict = field(default_factory=dict)

    def row(self) -> dict:
        b = self.bootstrap
        return {"model": self.name, **self.extra, "accuracy": b["mean"], "ci_low": b["low"],
                "ci_high": b["high"], "ci_half_width": b["half_width"], **self.efficiency}


def run_trial(model: str, train_df: pd.DataFrame, test_df: pd.DataFrame, *, store: FrameStore,
              num_classes: int = 2, num_segments: int = 8, batch_size: int = 8, epochs: int = 10,
              lr: float = 1e-3, warmup_epochs: int = 1, weight_decay: float = 1e-4, dropout: float = 0.4,
              rotate_degrees: float = 15.0, cutmix_p: float = 0.6, mixup_p: float = 0.4,
              mix_fraction: float = 0.8, bootstrap_frac: float = 0.4, n_bootstrap: int = 100,
              seed: int = 0, device: str = "cpu", **extra) -> Trial:
    """Train `model` (a registry name) from scratch on `train_df`, test on `test_df`.

    Extra keyword arguments (e.g. cohort="ppmi") are copied into the table row.
    """
    seed_everything(seed)
    augment = VideoAugment(rotate_degrees=rotate_degrees)
    train_set = VolumeDataset(train_df, store=store, num_segments=num_segments, train=True,
                              transform=augment, seed=seed)
    test_set = VolumeDataset(test_df, store=store, num_segments=num_segments, train=False)
    bn_set = VolumeDataset(train_df, store=store, num_segments=num_segments, train=False)
    gen = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=gen, drop_last=True)
    test_loader = DataLoader(test_set, batch_size=batch_size)
    net = get_model(model, num_classes=num_classes, dropout=dropout)
    mix = BatchMix(num_classes=num_classes, cutmix_p=cutmix_p, mixup_p=mixup_p) if cutmix_p + mixup_p > 0 else None
    history = fit(net, train_loader, epochs=epochs, lr=lr, warmup_epochs=warmup_epochs, weight_decay=weight_decay,
                  mix=mix, mix_fraction=mix_fraction, bn_loader=DataLoader(bn_set, batch_size=batch_size),
                  device=device,
                  desc=" ".join([model, *map(str, extra.values())]))
    test = evaluate(net, test_loader, device=device)
    boot = bootstrap_accuracy(test["targets"], test["predictions"], frac=bootstrap_frac, n_rounds=n_bootstrap,
                              seed=seed)
    eff = efficiency(net.cpu(), history, (1, num_segments, store.image_size, store.image_size))
    return Trial(model, net, history, test, boot, eff, extra)


@dataclass
class Cohort:
    """A loaded cohort, split by subject, with the frame store its trials share."""

    name: str
    classes: list[str]
    train: pd.DataFrame
    test: pd.DataFrame
    store: FrameStore


_COHORTS: dict[tuple, Cohort] = {}
# columns of a results table, so that an empty one (models=[]) still has them
TABLE_COLUMNS = ["model", "cohort", "accuracy", "ci_low", "ci_high", "ci_half_width", "params_m",
                 "train_s_per_epoch", "inference_ms"]


def get_cohort(name: str, *, data_roots: dict[str, str] | None = None, seed: int = 0, test_size: float = 0.3,
               image_size: int = 64, cohort_scale: float = 1.0) -> Cohort:
    """Load (once per notebook run) and split cohort `name`: a real folder from `data_roots`, else synthetic.

    `cohort_scale` < 1 keeps that fraction of the subjects (stratified, all sessions of each)
    before the split: the same class ratio, view and sessions per subject at a laptop's size.
    """
    data_root = (data_roots or {}).get(name, "")
    key = (name, data_root, seed, test_size, image_size, cohort_scale)
    if key not in _COHORTS:
        df, classes = load_cohort(cohort=name, data_root=data_root, seed=seed)
        df = subsample_subjects(df, frac=cohort_scale, seed=seed)
        train, test = subject_split(df, test_size=test_size, seed=seed)
        _COHORTS[key] = Cohort(name, classes, train, test, FrameStore(image_size=image_size))
    return _COHORTS[key]


def run_table(models: list[str], cohorts: list[str], *, data_roots: dict[str, str] | None = None,
              test_size: float = 0.3, image_size: int = 64, cohort_scale: float = 1.0, seed: int = 0,
              **trial_kwargs) -> tuple[pd.DataFrame, dict]:
    """`run_trial` for every cohort x model; returns the table (one row each) and the trials."""
    trials = {}
    for name in cohorts if models else []:
        c = get_cohort(name, data_roots=data_roots, seed=seed, test_size=test_size, image_size=image_size,
                       cohort_scale=cohort_scale)
        for model in models:
            trials[name, model] = run_trial(model, c.train, c.test, store=c.store, num_classes=len(c.classes),
                                            seed=seed, cohort=name, **trial_kwargs)
    rows = [t.row() for t in trials.values()]
    return (pd.DataFrame(rows) if rows else pd.DataFrame(columns=TABLE_COLUMNS)), trials
