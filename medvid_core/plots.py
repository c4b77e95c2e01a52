"""The figures the notebooks show. Each returns the matplotlib Figure and saves it when `path` is given."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .io.nifti import load_volume
from .sampling import SegmentSampler, volume_to_frames


def finish(fig, path: str | Path | None = None, *, dpi: int = 110, tight_bbox: bool = True, show: bool = False):
    """Lay out `fig`, save it to `path` if given, and return it: every figure function, here and in the
    studies, ends here.

    `dpi` and `tight_bbox` (``bbox_inches="tight"``) are the saved file's; a study keeps its own so its
    saved figures stay as they were. `show=True` shows the figure now and closes it, returning None (for
    a function whose notebook cell should display it once, not once more as the cell's value).
    """
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=dpi, **({"bbox_inches": "tight"} if tight_bbox else {}))
    if show:
        plt.show()
        plt.close(fig)
        return None
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
    return finish(fig, path)


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
    return finish(fig, path)


def clip_frames(clip, *, title: str = "", path=None):
    """The K frames of one clip (C=1, K, H, W) side by side."""
    frames = np.asarray(clip)[0]
    fig, axes = plt.subplots(1, len(frames), figsize=(1.4 * len(frames), 1.7), squeeze=False)
    for k, (ax, f) in enumerate(zip(axes[0], frames)):
        ax.imshow(f, cmap="gray", vmin=0, vmax=1.2)
        ax.set_title(f"k={k}", fontsize=8)
        ax.set_axis_off()
    fig.suptitle(title, fontsize=9)
    return finish(fig, path)


def training_curves(histories: dict, *, metrics: tuple[str, ...] = ("train_loss", "train_accuracy"), path=None):
    """One panel per history value in `metrics` (e.g. train_loss, val_auc), one line per run.

    `histories` maps a run's name (a string or a tuple, joined with " / ") to `fit`'s history.
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.2), squeeze=False)
    for key, history in histories.items():
        h = pd.DataFrame(history)
        label = " / ".join(map(str, key)) if isinstance(key, tuple) else str(key)
        for ax, m in zip(axes[0], metrics):
            if m in h:
                ax.plot(h["epoch"], h[m], label=label)
    for ax, m in zip(axes[0], metrics):
        ax.set(xlabel="epoch", ylabel=m.replace("_", " "))
    axes[0][-1].legend(fontsize=8)
    return finish(fig, path)
