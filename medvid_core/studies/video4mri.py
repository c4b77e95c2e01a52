"""Video4MRI (Zhang et al. 2023): brain-MRI classification with video models against 3D-ResNets.

The study's room: its brain-MRI preprocessing, cohort loading and split, one trained model per table
row (`run_trial`), the tables (`run_table`), the paper's published numbers with side-by-side tables,
the augmentation recipes of Table 3, and the study's own figures (Fig. 1, Fig. 2, confidence against
ground-truth atrophy). The keyword names of `get_cohort` and `run_trial` are the notebook's parameter
names, so the notebook says each parameter once (its `parameters` cell) and passes them on with
`medvid_core.params.pick`.
"""
from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..data import FrameStore, VolumeDataset, read_manifest, subject_split, subsample_subjects, worker_options
from ..findings import finding
from ..io.index import listing_key
from ..io.nifti import load_volume
from ..metrics import Measure, accuracy, bootstrap_accuracy, bootstrap_measure, efficiency
from ..models import get_model
from ..paths import data_dir
from ..plots import finish
from ..sampling import volume_to_frames
from ..synth.brain_mri import PRESETS, ensure_cohort
from ..train import evaluate, fit, seed_everything
from ..transforms import BatchMix, VideoAugment

# --------------------------------------------------------------------------- the paper's numbers

# Table 2: bootstrapped test accuracy (95% CI half-width) per dataset, training s/epoch,
# trainable params (M), inference ms/sample -- on one V100, K=32, 224x224.
#: where the findings that a laptop run does not show can be seen (named by the notebook's findings cell)
LONGER_RUNS = ("With 36 test scans one scan moves accuracy by 0.03 and the models' intervals overlap. Longer runs "
               "train more: `params/video4mri/longer.yaml` (64x64 frames, 12 epochs, about 11 minutes on 2 cores), "
               "`paper_laptop.yaml` (all seven models on four Table-1-shaped cohorts) and `paper.yaml` on a GPU.")
TABLE2 = pd.DataFrame(
    [
        ("resnet3d_18", 0.809, 0.122, 0.622, 0.101, 0.752, 0.143, 0.647, 0.062, 36, 33.16, 38.4),
        ("resnet3d_50", 0.821, 0.118, 0.581, 0.108, 0.758, 0.126, 0.657, 0.062, 43, 46.16, 61.5),
        ("tsn_r18", 0.828, 0.108, 0.739, 0.083, 0.725, 0.133, 0.716, 0.056, 19, 11.19, 28.9),
        ("tsn_r50", 0.840, 0.111, 0.736, 0.078, 0.777, 0.109, 0.689, 0.060, 24, 23.56, 59.6),
        ("tsm_r18", 0.849, 0.103, 0.738, 0.094, 0.753, 0.131, 0.752, 0.054, 20, 11.19, 28.9),
        ("tsm_r50", 0.866, 0.102, 0.732, 0.089, 0.794, 0.106, 0.718, 0.057, 26, 23.56, 59.6),
        ("slowfast_r50", 0.868, 0.107, 0.737, 0.095, 0.809, 0.101, 0.730, 0.050, 38, 33.61, 87.9),
    ],
    columns=["model", "ppmi", "ppmi_ci", "adni", "adni_ci", "oasis1", "oasis1_ci", "oasis2", "oasis2_ci",
             "train_s", "params_m", "inference_ms"],
).set_index("model")

# Table 3: augmentation ablation of TSM-R50 on PPMI and ADNI (accuracy, CI half-width).
TABLE3 = pd.DataFrame(
    [
        ("none", 0.793, 0.121, 0.630, 0.092),
        ("rotate", 0.832, 0.106, 0.659, 0.096),
        ("mixup/cutmix", 0.810, 0.117, 0.730, 0.092),
        ("rotate+mixup", 0.813, 0.110, 0.516, 0.106),
        ("rotate+cutmix", 0.853, 0.114, 0.732, 0.089),
        ("rotate+mixup/cutmix", 0.866, 0.102, 0.708, 0.087),
    ],
    columns=["augmentation", "ppmi", "ppmi_ci", "adni", "adni_ci"],
).set_index("augmentation")

# How each Table 3 row maps onto `run_trial`'s keywords (crop + brightness stay on in all rows).
AUGMENTATIONS = {
    "none": dict(rotate_degrees=0.0, cutmix_p=0.0, mixup_p=0.0),
    "rotate": dict(rotate_degrees=15.0, cutmix_p=0.0, mixup_p=0.0),
    "mixup/cutmix": dict(rotate_degrees=0.0, cutmix_p=0.6, mixup_p=0.4),
    "rotate+mixup": dict(rotate_degrees=15.0, cutmix_p=0.0, mixup_p=1.0),
    "rotate+cutmix": dict(rotate_degrees=15.0, cutmix_p=1.0, mixup_p=0.0),
    "rotate+mixup/cutmix": dict(rotate_degrees=15.0, cutmix_p=0.6, mixup_p=0.4),
}

# Which synthetic preset stands in for which paper dataset.
DATASETS = {"small": "ppmi", "ppmi": "ppmi", "adni": "adni", "oasis1": "oasis1", "oasis2": "oasis2"}

# --------------------------------------------------------------------------- preprocessing and cohorts


def prepare_frames(file: str, view: str, image_size: int) -> torch.Tensor:
    """Volume file -> (frames, image_size, image_size) float16 in [0, ~1].

    Slices with no head in them are trimmed, each slice is padded to a square and resized
    (antialiased), intensities are scaled by the volume's 99.5th percentile. That is all:
    like Video4MRI, no skull stripping or registration.
    """
    volume, _ = load_volume(file)
    frames = volume_to_frames(volume, view)
    scale = np.percentile(frames, 99.5) or 1.0
    frames = frames / scale
    keep = np.flatnonzero(frames.reshape(len(frames), -1).max(1) > 0.1)
    frames = frames[keep[0] : keep[-1] + 1] if len(keep) else frames
    n, h, w = frames.shape
    side = max(h, w)
    pad = ((0, 0), ((side - h) // 2, side - h - (side - h) // 2), ((side - w) // 2, side - w - (side - w) // 2))
    t = torch.from_numpy(np.pad(frames, pad)).unsqueeze(1)
    t = F.interpolate(t, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return t[:, 0].clamp_(0, 2).to(torch.float16)


#: the version of `prepare_frames`' output, part of the frame cache's key: bump it when the preprocessing changes
FRAMES_VERSION = 1


def frame_store(image_size: int, items: list[tuple[str, str]] | None = None, *, n_jobs: int = 1) -> FrameStore:
    """A `FrameStore` with this study's preprocessing at `image_size`.

    With `items` (a cohort's (file, view) pairs) every scan is prepared once, by `n_jobs` processes, into
    ``data_dir()/video4mri/frames-<image_size>px-<listing>/`` (one flat file of float16 stacks and their
    index), keyed on the files' listing (names, sizes, modification times), the views, `image_size` and
    `FRAMES_VERSION`: the next run on the same cohort reads it back without decoding, a changed file or
    parameter rebuilds it, and the datasets read one scan at a time. Without `items`, an in-memory store
    that prepares each scan on first use.
    """
    prepare = partial(prepare_frames, image_size=image_size)
    if items is None:
        return FrameStore(prepare)
    items = sorted(dict.fromkeys((str(f), str(v)) for f, v in items))  # the cache's order: not the split's
    listing = listing_key([f for f, _ in items])
    views = hashlib.sha256("\n".join(v for _, v in items).encode()).hexdigest()
    key = {"study": "video4mri", "frames": FRAMES_VERSION, "image_size": image_size, "listing": listing,
           "views": views}
    cohort = hashlib.sha256((listing + views).encode()).hexdigest()[:16]
    folder = data_dir() / "video4mri" / f"frames-{image_size}px-{cohort}"
    return FrameStore.build(items, prepare, key=key, folder=folder, n_jobs=n_jobs,
                            desc=f"preparing {len(items)} scans at {image_size}px")


def load_cohort(*, cohort: str, data_root: str = "", classes: list[str] | None = None, seed: int = 0,
                cache_dir: str | Path = "") -> tuple[pd.DataFrame, list[str]]:
    """The manifest of a real cohort (`data_root`) or of a synthetic preset (generated on first use).

    Classes are NC first, then the disease label (the positive class).
    """
    if data_root:
        manifest = Path(data_root) / "manifest.csv"
        if not classes:
            labels = sorted(pd.read_csv(manifest)["label"].unique()) if manifest.exists() else []
            classes = ["NC"] + [c for c in labels if c != "NC"]
    else:
        manifest = ensure_cohort(Path(cache_dir or data_dir() / "video4mri") / f"{cohort}-seed{seed}", cohort, seed=seed)
        classes = classes or ["NC", PRESETS[cohort].disease]
    return read_manifest(manifest, classes=list(classes)), list(classes)


@dataclass
class Cohort:
    """A loaded cohort, split by subject, with the frame store its trials share (on disk: only the manifest
    and the store's index are in memory)."""

    name: str
    classes: list[str]
    train: pd.DataFrame
    test: pd.DataFrame
    store: FrameStore
    image_size: int


_COHORTS: dict[tuple, Cohort] = {}


def get_cohort(name: str, *, data_roots: dict[str, str] | None = None, seed: int = 0, test_size: float = 0.3,
               image_size: int = 64, cohort_scale: float = 1.0, n_jobs: int = 1) -> Cohort:
    """Load (once per notebook run) and split cohort `name`: a real folder from `data_roots`, else synthetic.

    `cohort_scale` < 1 keeps that fraction of the subjects (stratified, all sessions of each)
    before the split: the same class ratio, view and sessions per subject at a laptop's size.
    The scans kept are prepared once into an on-disk frame cache (`frame_store`, `n_jobs` processes;
    `n_jobs` changes no byte) that the next run reuses.
    """
    data_root = (data_roots or {}).get(name, "")
    key = (name, data_root, seed, test_size, image_size, cohort_scale)
    if key not in _COHORTS:
        df, classes = load_cohort(cohort=name, data_root=data_root, seed=seed)
        df = subsample_subjects(df, frac=cohort_scale, seed=seed)
        train, test = subject_split(df, test_size=test_size, seed=seed)
        store = frame_store(image_size, list(zip(df["file"], df["view"])), n_jobs=n_jobs)
        _COHORTS[key] = Cohort(name, classes, train, test, store, image_size)
    return _COHORTS[key]


# --------------------------------------------------------------------------- one table row


@dataclass
class Trial:
    """What one trained model gives: history, test predictions, bootstrap and efficiency."""

    name: str
    model: torch.nn.Module
    history: list[dict]
    test: dict
    bootstrap: dict
    efficiency: dict
    tags: dict = field(default_factory=dict)

    def row(self) -> dict:
        b = self.bootstrap
        return {"model": self.name, **self.tags, "accuracy": b["mean"], "ci_low": b["low"],
                "ci_high": b["high"], "ci_half_width": b["half_width"], **self.efficiency}


def run_trial(model: str, train_df: pd.DataFrame, test_df: pd.DataFrame, *, store: FrameStore, image_size: int,
              num_classes: int = 2, num_segments: int = 8, batch_size: int = 8, epochs: int = 10,
              lr: float = 1e-3, warmup_epochs: int = 1, weight_decay: float = 1e-4, dropout: float = 0.4,
              rotate_degrees: float = 15.0, cutmix_p: float = 0.6, mixup_p: float = 0.4,
              mix_fraction: float = 0.8, bootstrap_frac: float = 0.4, n_bootstrap: int = 100,
              num_workers: int = 0, seed: int = 0, device: str = "cpu", tags: dict | None = None) -> Trial:
    """Train `model` (a registry name) from scratch on `train_df`, test on `test_df`.

    The recipe is the paper's: cross-entropy, AdamW, warm-up + cosine, weight decay on the FC head,
    per-clip augmentation, CutMix/MixUp early on, precise BN. `tags` (e.g. {"cohort": "ppmi"}) become
    columns of the table row; any other unknown keyword is a TypeError, not a silent column.
    `num_workers` loading processes feed every loader (`worker_options`): 0 loads in this process, as
    before; n > 0 is deterministic for that n, with other random draws than 0.
    """
    seed_everything(seed)
    augment = VideoAugment(rotate_degrees=rotate_degrees)
    train_set = VolumeDataset(train_df, store=store, num_segments=num_segments, train=True,
                              transform=augment, seed=seed)
    if len(train_set) < batch_size:  # a small real cohort: one batch of what there is, said out loud
        print(f"note: {len(train_set)} training scans < batch_size {batch_size}: training with batches of "
              f"{len(train_set)} (add subjects or lower batch_size)")
        batch_size = max(1, len(train_set))
    test_set = VolumeDataset(test_df, store=store, num_segments=num_segments, train=False)
    bn_set = VolumeDataset(train_df, store=store, num_segments=num_segments, train=False)
    gen = torch.Generator().manual_seed(seed)
    loading = worker_options(num_workers)
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=gen, drop_last=True,
                              **loading)
    test_loader = DataLoader(test_set, batch_size=batch_size, **loading)
    net = get_model(model, num_classes=num_classes, dropout=dropout)
    mix = BatchMix(num_classes=num_classes, cutmix_p=cutmix_p, mixup_p=mixup_p) if cutmix_p + mixup_p > 0 else None
    history = fit(net, train_loader, epochs=epochs, lr=lr, optimizer="adamw", schedule="warmup_cosine",
                  warmup_epochs=warmup_epochs, weight_decay=weight_decay, head="fc", metric_fn=accuracy, mix=mix,
                  mix_fraction=mix_fraction, bn_loader=DataLoader(bn_set, batch_size=batch_size, **loading),
                  device=device, desc=" ".join([model, *map(str, (tags or {}).values())]))
    ev = evaluate(net, test_loader, device=device)
    probs = ev["outputs"].softmax(1).numpy()
    test = {"targets": ev["targets"].numpy(), "predictions": probs.argmax(1), "probabilities": probs,
            "loss": ev["loss"]}
    boot = bootstrap_accuracy(test["targets"], test["predictions"], frac=bootstrap_frac, n_rounds=n_bootstrap,
                              seed=seed)
    eff = efficiency(net.cpu(), [h["train_seconds"] for h in history], (1, num_segments, image_size, image_size))
    return Trial(model, net, history, test, boot, eff, dict(tags or {}))


# columns of a results table, so that an empty one (models=[]) still has them
TABLE_COLUMNS = ["model", "cohort", "accuracy", "ci_low", "ci_high", "ci_half_width", "params_m",
                 "train_s_per_epoch", "inference_ms", "threads"]


def _keywords(fn) -> set[str]:
    return {n for n, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY}


COHORT_KEYWORDS = _keywords(get_cohort)
TRIAL_KEYWORDS = _keywords(run_trial) - {"store", "image_size", "num_classes", "seed", "tags"}


def run_table(models: list[str], cohorts: list[str], *, tags: dict | None = None, **params) -> tuple[pd.DataFrame, dict]:
    """`run_trial` for every cohort x model; returns the table (one row each) and the trials.

    `params` are `get_cohort`'s and `run_trial`'s keywords (the notebook's parameters); a name that
    neither takes is a TypeError naming it, so a typo never trains on a default behind your back.
    """
    unknown = sorted(set(params) - COHORT_KEYWORDS - TRIAL_KEYWORDS)
    if unknown:
        raise TypeError(f"run_table: unknown parameter(s) {', '.join(unknown)}; "
                        f"known: {', '.join(sorted(COHORT_KEYWORDS | TRIAL_KEYWORDS))}")
    cohort_kw = {k: v for k, v in params.items() if k in COHORT_KEYWORDS}
    trial_kw = {k: v for k, v in params.items() if k in TRIAL_KEYWORDS}
    trials = {}
    for name in cohorts if models else []:
        c = get_cohort(name, **cohort_kw)
        for model in models:
            trials[name, model] = run_trial(model, c.train, c.test, store=c.store, image_size=c.image_size,
                                            num_classes=len(c.classes), seed=cohort_kw.get("seed", 0),
                                            tags={"cohort": name, **(tags or {})}, **trial_kw)
    rows = [t.row() for t in trials.values()]
    return (pd.DataFrame(rows) if rows else pd.DataFrame(columns=TABLE_COLUMNS)), trials


def _accuracy(targets, predictions) -> float:
    return float((np.asarray(targets) == np.asarray(predictions)).mean())


def measures(trials: dict) -> dict[str, Measure]:
    """Each trained model's accuracy on the whole test set with its 95% bootstrap interval over the test
    scans (1000 resamples of all of them, not the paper's 40% draws): what `medvid_core.reference.check`
    compares with the committed reference."""
    return {f"{cohort} {model} accuracy": bootstrap_measure(_accuracy, t.test["targets"], t.test["predictions"])
            for (cohort, model), t in trials.items()}


def findings(table: pd.DataFrame) -> list[dict]:
    """The paper's headline against this run (first cohort of `table`): the 2D video models match or beat
    the 3D-ResNet-18 with about a third of its parameters, and the temporal shift adds to TSN."""
    if not len(table):
        return []
    first = table[table.cohort == table.cohort.iloc[0]].set_index("model")
    out, paper = [], TABLE2["ppmi"]
    video = [m for m in ("tsm_r18", "tsn_r18") if m in first.index]
    if video and "resnet3d_18" in first.index:
        best = max(video, key=lambda m: first.loc[m, "accuracy"])
        gap = first.loc[best, "accuracy"] - first.loc["resnet3d_18", "accuracy"]
        out.append(finding("TSN/TSM-R18 match or beat the 3D-ResNet-18",
                           paper=f"PPMI: TSM {paper['tsm_r18']:.2f}, TSN {paper['tsn_r18']:.2f} vs 3D {paper['resnet3d_18']:.2f} "
                                 f"({max(paper['tsm_r18'], paper['tsn_r18']) - paper['resnet3d_18']:+.2f})",
                           ours=gap, unit="accuracy", holds=gap >= 0,
                           rule="best of TSN/TSM accuracy - 3D-ResNet accuracy >= 0"))
        ratio = first.loc[best, "params_m"] / first.loc["resnet3d_18", "params_m"]
        out.append(finding("... with about a third of the 3D-ResNet's parameters",
                           paper=f"{TABLE2.params_m['tsm_r18']:.2f} M vs {TABLE2.params_m['resnet3d_18']:.2f} M "
                                 f"({TABLE2.params_m['tsm_r18'] / TABLE2.params_m['resnet3d_18']:.2f}x)",
                           ours=ratio, unit="x", holds=ratio <= 0.5, rule="parameter ratio <= 0.5"))
    if {"tsm_r18", "tsn_r18"} <= set(first.index):
        gain = first.loc["tsm_r18", "accuracy"] - first.loc["tsn_r18", "accuracy"]
        out.append(finding("The temporal shift (TSM) adds accuracy over TSN",
                           paper=f"PPMI {paper['tsm_r18']:.2f} vs {paper['tsn_r18']:.2f} ({paper['tsm_r18'] - paper['tsn_r18']:+.2f})",
                           ours=gain, unit="accuracy", holds=gain > 0, rule="TSM - TSN accuracy > 0"))
    return out


# --------------------------------------------------------------------------- side-by-side tables


def _fmt(acc: float, half_width: float) -> str:
    return f"{acc:.2f} (±{half_width:.2f})"


def table2_side_by_side(ours: pd.DataFrame) -> pd.DataFrame:
    """Our accuracy (95% CI half-width) per cohort and model beside the paper's Table 2 value."""
    rows = []
    for _, r in ours.iterrows():
        ds = DATASETS.get(r["cohort"], r["cohort"])
        p = TABLE2.loc[r["model"]] if r["model"] in TABLE2.index else None
        rows.append({"cohort": r["cohort"], "model": r["model"], "ours": _fmt(r["accuracy"], r["ci_half_width"]),
                     "paper": _fmt(p[ds], p[f"{ds}_ci"]) if p is not None and ds in p else "n/a",
                     "params_m": round(r["params_m"], 2),
                     "paper_params_m": p["params_m"] if p is not None else float("nan")})
    return pd.DataFrame(rows)


def table3_side_by_side(ours: pd.DataFrame) -> pd.DataFrame:
    """Our augmentation ablation beside the paper's Table 3 (PPMI/ADNI columns)."""
    rows = []
    for _, r in ours.iterrows():
        ds = DATASETS.get(r["cohort"], r["cohort"])
        p = TABLE3.loc[r["augmentation"]]
        rows.append({"cohort": r["cohort"], "augmentation": r["augmentation"], "model": r["model"],
                     "ours": _fmt(r["accuracy"], r["ci_half_width"]),
                     "paper": _fmt(p[ds], p[f"{ds}_ci"]) if ds in ("ppmi", "adni") else "n/a"})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the study's figures


def accuracy_vs_params(ours: pd.DataFrame, paper: pd.DataFrame = TABLE2, *, paper_column: str = "ppmi", path=None):
    """Fig. 1: accuracy vs trainable parameters, bubble area ~ inference time."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, r in ours.set_index("model").iterrows():
        ax.scatter(r["params_m"], r["accuracy"], s=8 * r["inference_ms"], alpha=0.5)
        ax.annotate(name, (r["params_m"], r["accuracy"]), fontsize=8, ha="center", va="bottom")
    ax.scatter(paper["params_m"], paper[paper_column], marker="x", c="k", label=f"paper ({paper_column})")
    ax.set(xlabel="trainable parameters (M)", ylabel="bootstrapped test accuracy",
           title="accuracy vs parameters (bubble area ~ inference ms/sample)")
    ax.legend(fontsize=8)
    return finish(fig, path)


def accuracy_vs_k(table: pd.DataFrame, *, path=None):
    """Fig. 2: accuracy (95% CI) against the number of frames K, per model and cohort."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for (cohort, model), g in table.groupby(["cohort", "model"]):
        g = g.sort_values("num_segments")
        ax.errorbar(g["num_segments"], g["accuracy"], yerr=g["ci_half_width"], marker="o", capsize=3,
                    label=f"{model} / {cohort}")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="frames per clip K", ylabel="bootstrapped test accuracy")
    ax.legend(fontsize=8)
    return finish(fig, path)


def confidence_vs_atrophy(trials: dict, test: pd.DataFrame, *, positive: str, path=None):
    """Each test scan: ground-truth atrophy (synthetic cohorts) against the model's P(disease)."""
    fig, axes = plt.subplots(1, len(trials), figsize=(4 * len(trials), 3), squeeze=False)
    for ax, (name, t) in zip(axes[0], trials.items()):
        ax.scatter(test["atrophy"], t.test["probabilities"][:, 1], c=test["target"], cmap="coolwarm", s=15)
        ax.axhline(0.5, color="0.7", lw=1)
        ax.set(title=name, xlabel="ground-truth atrophy (red: patient)", ylabel=f"P({positive})")
    return finish(fig, path)
