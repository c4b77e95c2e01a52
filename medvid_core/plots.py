"""The figures the notebooks show. Each returns the matplotlib Figure and saves it when `path` is given."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .io.nifti import load_volume
from .sampling import SegmentSampler, volume_to_frames


def _finish(fig, path: str | Path | None):
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def slice_montage(rows: pd.DataFrame, *, n_slices: int = 6, path=None):
    """One row of evenly spaced slices per scan (e.g. an NC and a patient), atrophy map in red."""
    fig, axes = plt.subplots(len(rows), n_slices, figsize=(2 * n_slices, 2.2 * len(rows)), squeeze=False)
    for ax_row, (_, r) in zip(axes, rows.iterrows()):
        frames = volume_to_frames(load_volume(r["file"])[0], r["view"])
        mask = None
        if isinstance(r.get("mask_path"), str):  # synthetic cohorts keep ground truth beside the scan
            mask = volume_to_frames(load_volume(_beside(r))[0], r["view"])
        idx = np.linspace(0.2, 0.8, n_slices) * (len(frames) - 1)
        for ax, i in zip(ax_row, idx.astype(int)):
            ax.imshow(frames[i], cmap="gray")
            if mask is not None and mask[i].any():
                ax.contour(mask[i], levels=[0.5], colors="red", linewidths=0.6)
            ax.set_axis_off()
        ax_row[0].set_title(f"{r['label']} {r['subject']} slice {idx[0]:.0f}", fontsize=9, loc="left")
    return _finish(fig, path)


def _beside(row) -> Path:
    """The ground-truth mask file next to a scan: manifest paths are relative to the same root."""
    root = Path(row["file"])
    for _ in Path(row["path"]).parts:
        root = root.parent
    return root / row["mask_path"]


def sampler_strip(n_frames: int, num_segments: int, *, draws: int = 3, seed: int = 0, path=None):
    """Which slice indices TSN sampling picks: random per segment in training, middle in testing."""
    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(10, 0.6 * (draws + 2)))
    edges = np.linspace(0, n_frames, num_segments + 1)
    for e in edges:
        ax.axvline(e - 0.5, color="0.85", lw=1)
    for d in range(draws):
        ax.scatter(SegmentSampler(num_segments, train=True)(n_frames, rng), [d] * num_segments, marker="|", s=200)
    ax.scatter(SegmentSampler(num_segments, train=False)(n_frames), [draws] * num_segments, marker="|", s=200, c="k")
    ax.set_yticks(range(draws + 1), [f"train draw {d + 1}" for d in range(draws)] + ["test (middle)"])
    ax.set_xlim(-1, n_frames)
    ax.set_xlabel(f"slice index (of {n_frames}); grey lines: the {num_segments} segments")
    return _finish(fig, path)


def clip_frames(clip, *, title: str = "", path=None):
    """The K frames of one clip (C=1, K, H, W) side by side."""
    frames = np.asarray(clip)[0]
    fig, axes = plt.subplots(1, len(frames), figsize=(1.4 * len(frames), 1.7), squeeze=False)
    for k, (ax, f) in enumerate(zip(axes[0], frames)):
        ax.imshow(f, cmap="gray", vmin=0, vmax=1.2)
        ax.set_title(f"k={k}", fontsize=8)
        ax.set_axis_off()
    fig.suptitle(title, fontsize=9)
    return _finish(fig, path)


def training_curves(trials: dict, *, path=None):
    """Training loss and accuracy per epoch for each trial."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.2))
    for key, t in trials.items():
        h = pd.DataFrame(t.history)
        label = " / ".join(map(str, key)) if isinstance(key, tuple) else str(key)
        a.plot(h["epoch"], h["train_loss"], label=label)
        b.plot(h["epoch"], h["train_accuracy"], label=label)
    a.set(xlabel="epoch", ylabel="training loss (soft targets while mixing)")
    b.set(xlabel="epoch", ylabel="training accuracy")
    b.legend(fontsize=8)
    return _finish(fig, path)


def accuracy_vs_params(ours: pd.DataFrame, paper: pd.DataFrame, *, paper_column: str = "ppmi", path=None):
    """Video4MRI Fig. 1: accuracy vs trainable parameters, bubble area ~ inference time."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, r in ours.set_index("model").iterrows():
        ax.scatter(r["params_m"], r["accuracy"], s=8 * r["inference_ms"], alpha=0.5)
        ax.annotate(name, (r["params_m"], r["accuracy"]), fontsize=8, ha="center", va="bottom")
    ax.scatter(paper["params_m"], paper[paper_column], marker="x", c="k", label=f"paper ({paper_column})")
    ax.set(xlabel="trainable parameters (M)", ylabel="bootstrapped test accuracy",
           title="accuracy vs parameters (bubble area ~ inference ms/sample)")
    ax.legend(fontsize=8)
    return _finish(fig, path)


def accuracy_vs_k(table: pd.DataFrame, *, path=None):
    """Video4MRI Fig. 2: accuracy (95% CI) against the number of frames K, per model and cohort."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for (cohort, model), g in table.groupby(["cohort", "model"]):
        g = g.sort_values("num_segments")
        ax.errorbar(g["num_segments"], g["accuracy"], yerr=g["ci_half_width"], marker="o", capsize=3,
                    label=f"{model} / {cohort}")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="frames per clip K", ylabel="bootstrapped test accuracy")
    ax.legend(fontsize=8)
    return _finish(fig, path)


def confidence_vs_atrophy(trials: dict, test: pd.DataFrame, *, positive: str, path=None):
    """Each test scan: ground-truth atrophy (synthetic cohorts) against the model's P(disease)."""
    fig, axes = plt.subplots(1, len(trials), figsize=(4 * len(trials), 3), squeeze=False)
    for ax, (name, t) in zip(axes[0], trials.items()):
        ax.scatter(test["atrophy"], t.test["probabilities"][:, 1], c=test["target"], cmap="coolwarm", s=15)
        ax.axhline(0.5, color="0.7", lw=1)
        ax.set(title=name, xlabel="ground-truth atrophy (red: patient)", ylabel=f"P({positive})")
    return _finish(fig, path)
