"""ViPTT-Net (Zunair, Rahman & Mohammed, CLEF 2021): TB type from chest CT with a CNN+LSTM pretrained on videos.

The study's room: the paper's published numbers (Tables 1-2), reading the action videos (first `depth`
frames, gray, resized; shorter clips dropped and reported) and the CT cohort (HU window, SIZ), the
pretraining on videos with the frozen VGG on cached features, the head swap and fine-tuning of every
layer, the four recipes of Table 1 (No PT, PT, PT+CW, PT+CW+AUG), the metrics (Cohen's kappa, accuracy,
per-class F1, confusion matrix) and the study's figures. Keyword names of the public functions are the
notebook's parameter names.

The preprocessed clips (a CT after SIZ, float16; an action clip's first `depth` frames, uint8) are decoded once,
by `n_jobs` processes, into `DiskArrays` stores under ``data_dir()/viptt_net/clips/``, one folder per key (the
source listing, the preprocessing parameters, `CACHE_VERSION`), and read back one clip at a time by the
datasets (`LazyClips`, `StoreMapping`): a run's memory holds the index and a batch, not the cohort (the paper's
1,338 scans at 70x224x224 float16 are 9 GB, its 1,366 clips 4.6 GB). A second run with the same data and
parameters decodes nothing.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset, TensorDataset

import medvid_core.models.cnn_rnn  # noqa: F401  (registers viptt_net)

from ..data import worker_options
from ..findings import finding
from ..io.imageclef_tbt import TB_TYPES, read_tbt_labels
from ..io.index import listing_key
from ..io.nifti import load_volume
from ..io.video import read_video
from ..losses import class_weights
from ..metrics import Measure, bootstrap_measure, kappa_score
from ..models import get_model
from ..models.cnn_rnn import CNNRNN, precompute_features
from ..paths import data_dir
from ..plots import finish
from ..splits import stratified_split
from ..store import DiskArrays
from ..synth import action_video, chest_ct
from ..timing import timed
from ..train import evaluate, fit, load_checkpoint, resolve_device, save_checkpoint, seed_everything
from ..transforms import RandomVolumeRotation, hu_to_unit, spline_zoom

# --------------------------------------------------------------------------- the paper's numbers

SHORT = ("Infiltrative", "Focal", "Tuberculoma", "Miliary", "FibC")  # the paper's column names
# Table 1: validation split (184 scans): kappa and per-class F1.
TABLE1 = pd.DataFrame(
    [("No PT", 0.17, 0.61, 0.46, 0.00, 0.20, 0.14),
     ("PT", 0.35, 0.68, 0.56, 0.09, 0.40, 0.48),
     ("PT+CW", 0.30, 0.59, 0.41, 0.37, 0.33, 0.65),
     ("PT+CW+AUG", 0.33, 0.59, 0.47, 0.27, 0.54, 0.61)],
    columns=["method", "kappa", *SHORT]).set_index("method")
#: where the findings that a laptop run does not show can be seen (named by the notebook's findings cell)
LONGER_RUNS = ("With 40 test scans a kappa is uncertain by about 0.3 either way, so one run cannot order the recipes; "
               "the seeds table in the README shows how the differences move. The paper's protocol "
               "(`params/viptt_net/paper.yaml`: 70x224x224, the challenge-sized cohort with 421 test scans) needs a GPU, "
               "and ImageNet weights (`weights=...`) for the pretraining to mean what it meant in the paper.")
# Table 2: the challenge's test set (421 scans): kappa and accuracy (%).
TABLE2 = pd.DataFrame([("PT", 0.13, 42.30), ("PT+CW", 0.14, 38.50), ("PT+CW+AUG", 0.20, 42.30)],
                      columns=["method", "kappa", "accuracy"]).set_index("method")

# The recipes of Table 1: pretraining on videos, class-weighted loss, rotation augmentation.
METHODS = {
    "No PT": dict(pretrained=False, weighted=False, augment=False),
    "PT": dict(pretrained=True, weighted=False, augment=False),
    "PT+CW": dict(pretrained=True, weighted=True, augment=False),
    "PT+CW+AUG": dict(pretrained=True, weighted=True, augment=True),
}
PAPER_ACTIONS = action_video.ACTIONS  # the ten UCF50 classes the authors pretrained on
ROTATION_ANGLES = (-20, -10, -5, 0, 5, 10, 20)  # the AUG recipe's draw, degrees (0 included: unrotated volumes too)


# --------------------------------------------------------------------------- metrics


def tbt_scores(outputs, targets, *, num_classes: int = 5) -> dict:
    """Cohen's kappa (scikit-learn's), accuracy, per-class F1 and the confusion matrix of logits vs labels.

    The kappa is NaN, not 0, where it is undefined (one class in both the labels and the predictions:
    expected agreement 1), and scikit-learn warns: a table shows it as NaN rather than as chance level."""
    pred = torch.as_tensor(outputs).argmax(1).numpy()
    true = torch.as_tensor(targets).numpy()
    labels = list(range(num_classes))
    return {"kappa": float(cohen_kappa_score(true, pred, labels=labels)), "accuracy": float((pred == true).mean()),
            "f1": f1_score(true, pred, labels=labels, average=None, zero_division=0).tolist(),
            "confusion": confusion_matrix(true, pred, labels=labels).tolist()}


def epoch_metrics(outputs, targets) -> dict:
    """What the trainer records per epoch (floats only): kappa and accuracy."""
    s = tbt_scores(outputs, targets, num_classes=outputs.shape[1])
    return {"kappa": s["kappa"], "accuracy": s["accuracy"]}


class TrainWeightedCE(nn.Module):
    """Cross-entropy weighted by class during training only, as Keras' `class_weight` does: the trainer
    evaluates under `torch.no_grad()`, where this loss is the plain one, so the validation loss that
    early stopping watches is the same for weighted and unweighted runs."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight)

    def forward(self, outputs, targets):
        weight = self.weight.to(outputs.device) if torch.is_grad_enabled() else None
        return F.cross_entropy(outputs, targets, weight=weight)


# --------------------------------------------------------------------------- data


CACHE_VERSION = 1  # bump when ct_to_clip or _read_clip change the bytes they return


def _resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames])


class LazyClips(Sequence):
    """Clips read one at a time from a `DiskArrays` store, in the order of `names` (store names): `clips[i]`
    is one (depth, H, W) array, `len(clips)`, and `shape`/`dtype` as the stacked array's would be. Holds
    the names only; safe in forked DataLoader workers (the store opens a descriptor per process)."""

    def __init__(self, store: DiskArrays, names: Sequence[str]):
        self.store, self.names = store, list(names)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return LazyClips(self.store, self.names[i])
        return self.store.get(self.names[i])

    @functools.cached_property
    def _first(self) -> np.ndarray:
        return self.store.get(self.names[0])

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self._first.shape) if self.names else (0,)

    @property
    def dtype(self) -> np.dtype:
        return self._first.dtype

    def __repr__(self) -> str:
        return f"LazyClips({len(self)} clips in {self.store.folder})"


class StoreMapping(Mapping):
    """A read-only mapping key -> array over a `DiskArrays` store (`where`: key -> store name), read on access."""

    def __init__(self, store: DiskArrays, where: dict[str, str]):
        self.store, self.where = store, dict(where)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.store.get(self.where[key])

    def __iter__(self):
        return iter(self.where)

    def __len__(self) -> int:
        return len(self.where)

    def take(self, keys) -> LazyClips:
        """The arrays of `keys`, in that order, as a lazy sequence (what a dataset indexes)."""
        return LazyClips(self.store, [self.where[k] for k in keys])

    def __repr__(self) -> str:
        return f"StoreMapping({len(self)} arrays in {self.store.folder})"


def _clip_store(kind: str, key: dict, paths: list[str], decode, n_jobs: int) -> DiskArrays:
    """The `DiskArrays` of `decode(path)` for `paths`, under data_dir()/viptt_net/clips/<kind>-<digest of key>.
    One folder per key: a run with other parameters builds its own and never replaces one that another
    process may be reading; delete the folder `clips/` to reclaim the space."""
    key = {"study": "viptt_net", "kind": kind, "version": CACHE_VERSION, "listing": listing_key(paths), **key}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    folder = data_dir() / "viptt_net" / "clips" / f"{kind}-{digest}"
    return DiskArrays.build(folder, key=key, names=paths, decode=decode, n_jobs=n_jobs, desc=f"decoding {kind}")


@dataclass
class Videos:
    """Preprocessed clips ((N, depth, H, W) uint8, read lazily), labels 0..9, the class names, and what was dropped."""

    clips: LazyClips
    labels: np.ndarray
    classes: list[str]
    files: list[str]
    dropped: pd.DataFrame


def _read_clip(path: str, depth: int, height: int, width: int):
    video = read_video(path)
    if len(video) < depth:
        return None, len(video)
    return _resize_frames(video[:depth], height, width), len(video)


_SHORT = re.compile(r"(\d+) frames, fewer than depth \d+$")  # ShortClip's reason in the store's skipped rows


class ShortClip(ValueError):
    """A clip with fewer frames than `depth`: dropped by the protocol, recorded in the store's skipped rows."""


def _video_clip(path: str, *, depth: int, height: int, width: int) -> np.ndarray:
    clip, frames = _read_clip(path, depth, height, width)
    if clip is None:
        raise ShortClip(f"{path}: {frames} frames, fewer than depth {depth}")
    return clip


def _refuse_skipped(store: DiskArrays, allowed=None) -> None:
    """Bad input as before the cache: the first source the decoder refused, as its one-line error naming the
    file (a reason matching `allowed` is the protocol's recorded skip instead)."""
    for name, reason in zip(store.skipped["name"], store.skipped["reason"]):
        if allowed is None or not allowed.search(reason):
            raise ValueError(f"{name}: {reason}")


def load_videos(*, video_preset: str = "small", video_root: str = "", video_classes: list[str] | None = None,
                depth: int = 70, height: int = 224, width: int = 224, seed: int = 0, n_jobs: int = 2) -> Videos:
    """The action clips as the authors read them: the first `depth` frames, gray, resized to height x width;
    clips shorter than `depth` are dropped (listed in `dropped`). `video_root` is a folder holding `UCF50/`
    (a real UCF50 works); empty means the synthetic tree of `video_preset`, generated on first use.
    The clips are decoded once into a store keyed on the .avi listing and depth/height/width, read lazily."""
    root = Path(video_root) if video_root else data_dir() / "viptt_net" / f"videos-{video_preset}-seed{seed}"
    if not video_root:
        action_video.ensure_action_videos(root, video_preset, seed=seed)
    classes = list(video_classes or PAPER_ACTIONS)
    files = [(str(p), k) for k, c in enumerate(classes) for p in sorted((root / "UCF50" / c).glob("*.avi"))]
    if not files:
        raise FileNotFoundError(f"{root / 'UCF50'}: no .avi files for classes {', '.join(classes)}")
    paths = [f for f, _ in files]
    store = _clip_store("videos", dict(depth=depth, height=height, width=width), paths,
                        functools.partial(_video_clip, depth=depth, height=height, width=width), n_jobs)
    _refuse_skipped(store, allowed=_SHORT)  # a clip that does not decode stops the run, naming the file
    short = {n: int(_SHORT.search(r).group(1)) for n, r in zip(store.skipped["name"], store.skipped["reason"])}
    keep = [i for i, p in enumerate(paths) if p in store]
    if not keep:
        raise ValueError(f"{root / 'UCF50'}: every clip has fewer than depth={depth} frames")
    dropped = pd.DataFrame([{"file": Path(p).name, "class": classes[k], "frames": short[p]}
                            for p, k in files if p in short], columns=["file", "class", "frames"])
    return Videos(clips=LazyClips(store, [paths[i] for i in keep]), labels=np.array([files[i][1] for i in keep]),
                  classes=classes, files=[files[i][0] for i in keep], dropped=dropped)


def ct_to_clip(path: str, *, depth: int, height: int, width: int, zoom_order: int = 1) -> np.ndarray:
    """One CT as the network sees it: axial slices (z, y, x) with anterior up, HU clipped to [-1000, 400]
    and scaled to [0, 1], then SIZ to (depth, height, width). float16, as the clip store keeps it."""
    vol, _ = load_volume(path)  # canonical RAS: x left->right, y posterior->anterior, z inferior->superior
    axial = vol.transpose(2, 1, 0)[:, ::-1, :]
    return spline_zoom(hu_to_unit(axial), depth=depth, height=height, width=width, order=zoom_order).astype(np.float16)


@dataclass
class Cohort:
    """The CT cohort after SIZ: train/val (stratified 80/20 of the training set) and the separate test set."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    clips: StoreMapping = field(repr=False)  # FileName -> (depth, H, W) float16, read from the store on access
    root: Path


def load_ct(*, ct_preset: str = "small", ct_root: str = "", depth: int = 70, height: int = 224, width: int = 224,
            zoom_order: int = 1, val_size: float = 0.2, seed: int = 0, n_jobs: int = 2) -> Cohort:
    """Read (or generate on first use) the ImageCLEF-TBT-shaped cohort and apply SIZ to every scan.

    `ct_root` holds `train_labels.csv`, `test_labels.csv`, `train/` and `test/` (the layout of
    `medvid_core.synth.chest_ct`; a real ImageCLEF folder arranged so works); empty means the synthetic
    `ct_preset`. The validation split is stratified by type, `val_size` of the training set. The SIZ'd
    clips are decoded once into a store keyed on the NIfTI listing and depth/height/width/zoom_order.
    """
    root = Path(ct_root) if ct_root else data_dir() / "viptt_net" / f"ct-{ct_preset}-seed{seed}"
    if not ct_root:
        chest_ct.ensure_cohort(root, ct_preset, seed=seed, n_jobs=n_jobs)
    train_all = read_tbt_labels(root / "train_labels.csv", images_dir=root / "train")
    test = read_tbt_labels(root / "test_labels.csv", images_dir=root / "test")
    train, val = train_test_split(train_all, test_size=val_size, stratify=train_all.label, random_state=seed)
    paths = [str(p) for p in list(train_all.path) + list(test.path)]
    store = _clip_store("ct", dict(depth=depth, height=height, width=width, zoom_order=zoom_order), paths,
                        functools.partial(ct_to_clip, depth=depth, height=height, width=width, zoom_order=zoom_order),
                        n_jobs)
    _refuse_skipped(store)  # the protocol skips no scan: a bad one stops the run, naming the file
    names = list(train_all.FileName) + list(test.FileName)
    return Cohort(train=train.reset_index(drop=True), val=val.reset_index(drop=True), test=test.reset_index(drop=True),
                  clips=StoreMapping(store, dict(zip(names, paths))), root=root)


class ClipDataset(Dataset):
    """(1, depth, H, W) float32 clips and integer labels; `transform` on the (depth, H, W) array first.
    `clips` is any sequence of arrays: a list, a stacked array, or a `LazyClips` read from disk per item."""

    def __init__(self, clips, labels, *, transform=None, scale: float = 1.0):
        self.clips, self.labels, self.transform, self.scale = clips, np.asarray(labels), transform, scale

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        clip = np.asarray(self.clips[i], dtype=np.float32) * self.scale
        if self.transform is not None:
            clip = self.transform(clip)
        return torch.from_numpy(np.ascontiguousarray(clip))[None], int(self.labels[i])


def ct_dataset(cohort: Cohort, split: str, *, augment: bool = False) -> ClipDataset:
    df = getattr(cohort, split)
    return ClipDataset(cohort.clips.take(df.FileName), df.label.to_numpy(),
                       transform=RandomVolumeRotation(angles=ROTATION_ANGLES) if augment else None)


# --------------------------------------------------------------------------- pretraining on videos


@dataclass
class Pretraining:
    model: CNNRNN
    history: list
    val: dict
    checkpoint: Path
    feature_seconds: float


def pretrain(videos: Videos, *, checkpoint: str | Path, vgg_width: float = 1.0, hidden: int = 256,
             fc_hidden: int = 1024, weights: str = "", frame_norm: bool = False, batch_norm: bool = False,
             optimizer: str = "sgd", lr: float = 1e-3, momentum: float = 0.0, batch_size: int = 2,
             pretrain_epochs: int = 100, plateau_patience: int = 5, early_stopping: int = 8, val_size: float = 0.2,
             seed: int = 0, device: str = "cpu", num_workers: int = 0) -> Pretraining:
    """ViPTT-Net on the action clips with the VGG frozen and no augmentation (the paper's pretraining).

    The frozen encoder's per-frame features are computed once per clip, then the LSTM and head train on
    them (`CNNRNN.forward` takes features): the same model, far fewer FLOPs. The weights are saved to
    `checkpoint` for the fine-tuning runs. The feature pass reads the clips from the store batch by batch
    (`num_workers` loading processes); only the features, (N, depth, feature_dim) float32, are held.
    The LSTM's loaders run over those in-memory features in this process.
    """
    device = resolve_device(device)  # "auto": CUDA when a GPU is visible, else the CPU
    seed_everything(seed)
    model = get_model("viptt_net", num_classes=len(videos.classes), width=vgg_width, hidden=hidden,
                      fc_hidden=fc_hidden, weights=weights or None, frame_norm=frame_norm,
                      batch_norm=batch_norm).freeze_encoder()
    # a class with one clip cannot be stratified: then unstratified, with a warning naming it
    idx_train, idx_val = stratified_split(np.arange(len(videos.labels)), videos.labels, test_size=val_size, seed=seed)
    clips = ClipDataset(videos.clips, videos.labels, scale=1 / 255)
    with timed() as feature_time:
        feats, labels = precompute_features(model, DataLoader(clips, batch_size=8, **worker_options(num_workers)),
                                            device=device)
    feature_seconds = feature_time.wall
    gen = torch.Generator().manual_seed(seed)
    train = DataLoader(TensorDataset(feats[idx_train], labels[idx_train]), batch_size=batch_size, shuffle=True,
                       generator=gen)
    val = DataLoader(TensorDataset(feats[idx_val], labels[idx_val]), batch_size=batch_size)
    history = fit(model, train, epochs=pretrain_epochs, lr=lr, optimizer=optimizer, momentum=momentum, head="fc",
                  schedule="plateau", plateau_patience=plateau_patience, val_loader=val, monitor="val_loss",
                  early_stopping=early_stopping, metric_fn=epoch_metrics, device=device, desc="pretrain")
    ev = evaluate(model, val, metric_fn=lambda o, t: tbt_scores(o, t, num_classes=len(videos.classes)), device=device)
    save_checkpoint(checkpoint, model=model, history=history)
    return Pretraining(model=model, history=history, val={k: ev[k] for k in ("kappa", "accuracy", "confusion")},
                       checkpoint=Path(checkpoint), feature_seconds=feature_seconds)


def pretrained_for_tb(checkpoint: str | Path, *, num_actions: int = 10, vgg_width: float = 1.0, hidden: int = 256,
                      fc_hidden: int = 1024, frame_norm: bool = False, batch_norm: bool = False) -> CNNRNN:
    """The pretrained network from its checkpoint with the 10-way head swapped for a 5-way one, all layers
    trainable again."""
    model = get_model("viptt_net", num_classes=num_actions, width=vgg_width, hidden=hidden, fc_hidden=fc_hidden,
                      frame_norm=frame_norm, batch_norm=batch_norm)
    load_checkpoint(checkpoint, model=model)
    return model.replace_head(len(TB_TYPES)).freeze_encoder(False)


# --------------------------------------------------------------------------- fine-tuning on CT


@dataclass
class Trial:
    method: str
    history: list
    val: dict
    test: dict


def finetune(cohort: Cohort, method: str, *, checkpoint: str | Path | None = None, vgg_width: float = 1.0,
             hidden: int = 256, fc_hidden: int = 1024, weights: str = "", frame_norm: bool = False,
             batch_norm: bool = False, optimizer: str = "sgd", lr: float = 1e-3, momentum: float = 0.0,
             batch_size: int = 2, epochs: int = 100, plateau_patience: int = 5, early_stopping: int = 8,
             monitor: str = "val_loss", seed: int = 0, device: str = "cpu", num_workers: int = 0) -> Trial:
    """One row of Table 1: train every layer on the CT training split with the recipe `method`; evaluate
    the restored best weights on the validation split (Table 1) and the test set (Table 2). The scans are
    read from the clip store by `num_workers` loading processes (0: in this process)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from: {', '.join(METHODS)}")
    recipe = METHODS[method]
    seed_everything(seed)
    if recipe["pretrained"]:
        if checkpoint is None:
            raise ValueError(f"method {method!r} needs the pretraining checkpoint")
        model = pretrained_for_tb(checkpoint, vgg_width=vgg_width, hidden=hidden, fc_hidden=fc_hidden,
                                  frame_norm=frame_norm, batch_norm=batch_norm)
    else:
        model = get_model("viptt_net", num_classes=len(TB_TYPES), width=vgg_width, hidden=hidden, fc_hidden=fc_hidden,
                          weights=weights or None, frame_norm=frame_norm, batch_norm=batch_norm)
    if recipe["weighted"]:
        loss_fn = TrainWeightedCE(class_weights(cohort.train.label, len(TB_TYPES)))
    else:
        loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    workers = worker_options(num_workers)
    train = DataLoader(ct_dataset(cohort, "train", augment=recipe["augment"]), batch_size=batch_size, shuffle=True,
                       generator=gen, **workers)
    val = DataLoader(ct_dataset(cohort, "val"), batch_size=batch_size, **workers)
    test = DataLoader(ct_dataset(cohort, "test"), batch_size=batch_size, **workers)
    history = fit(model, train, epochs=epochs, lr=lr, loss_fn=loss_fn, optimizer=optimizer, momentum=momentum,
                  head="fc", schedule="plateau", plateau_patience=plateau_patience, val_loader=val,
                  monitor=monitor, monitor_mode="min" if monitor.endswith("loss") else "max",
                  early_stopping=early_stopping, metric_fn=epoch_metrics, device=device, desc=method)
    scores = {}
    for name, loader in (("val", val), ("test", test)):
        ev = evaluate(model, loader, loss_fn=nn.CrossEntropyLoss(), metric_fn=tbt_scores, device=device)
        scores[name] = {k: ev[k] for k in ("loss", "kappa", "accuracy", "f1", "confusion")}
    return Trial(method=method, history=history, val=scores["val"], test=scores["test"])


def run_table(cohort: Cohort, methods: list[str], *, checkpoint=None, **kwargs) -> tuple[pd.DataFrame, dict]:
    """Every method of `methods` (Table 1 rows): one row per method with val kappa/F1 and test kappa/accuracy."""
    trials, rows = {}, []
    for method in methods:
        t = finetune(cohort, method, checkpoint=checkpoint, **kwargs)
        trials[method] = t
        rows.append({"method": method, "val_kappa": t.val["kappa"], "val_accuracy": t.val["accuracy"],
                     **{f"val_f1_{c}": f for c, f in zip(SHORT, t.val["f1"])},
                     "test_kappa": t.test["kappa"], "test_accuracy": t.test["accuracy"],
                     "best_epoch": t.history.best_epoch, "epochs_run": len(t.history)})
    return pd.DataFrame(rows), trials


def _pairs(confusion) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) labels, one pair per scan, from a confusion matrix (rows true, columns predicted)."""
    cm = np.asarray(confusion)
    true, pred = np.nonzero(cm)
    counts = cm[true, pred]
    return np.repeat(true, counts), np.repeat(pred, counts)


def measures(trials: dict) -> dict[str, Measure]:
    """Each method's validation and test kappa with its 95% bootstrap interval over the scans: what
    `medvid_core.reference.check` compares with the committed reference."""
    out = {}
    for method, t in trials.items():
        for split in ("val", "test"):
            out[f"{method} {split} kappa"] = bootstrap_measure(kappa_score, *_pairs(getattr(t, split)["confusion"]),
                                                               chance=0.0)
    return out


FINDINGS = (  # (claim, method, compared with): each step of Table 1 against the row before it
    ("Video pretraining raises kappa (PT vs No PT)", "PT", "No PT"),
    ("Class weights raise kappa (PT+CW vs PT)", "PT+CW", "PT"),
    ("Rotation augmentation raises kappa (PT+CW+AUG vs PT+CW)", "PT+CW+AUG", "PT+CW"),
)


def findings(table: pd.DataFrame) -> list[dict]:
    """Each recipe step of Table 1 against this run's test kappa (40 scans with the defaults; the paper's
    validation and test figures beside it): held when the difference has the paper's sign (> 0)."""
    t = table.set_index("method")
    out = []
    for claim, method, base in FINDINGS:
        if {method, base} <= set(t.index):
            gain = t.loc[method, "test_kappa"] - t.loc[base, "test_kappa"]
            val = TABLE1.kappa[method] - TABLE1.kappa[base]
            test = f", test {TABLE2.kappa[method] - TABLE2.kappa[base]:+.2f}" if base in TABLE2.index else ""
            out.append(finding(claim, paper=f"validation {val:+.2f}{test}", ours=gain, unit="test kappa",
                               holds=gain > 0, rule="test kappa difference > 0"))
    return out


# --------------------------------------------------------------------------- side-by-side tables


def table1_side_by_side(ours: pd.DataFrame) -> pd.DataFrame:
    """Kappa and per-class F1 on the validation split: ours | paper's, rounded to 2 decimals."""
    rows = []
    for r in ours.itertuples():
        row = {"method": r.method, "kappa": round(r.val_kappa, 2), "paper kappa": TABLE1.kappa.get(r.method)}
        for c in SHORT:
            row[f"F1 {c}"] = round(getattr(r, f"val_f1_{c}"), 2)
            row[f"paper {c}"] = TABLE1[c].get(r.method)
        rows.append(row)
    return pd.DataFrame(rows)


def table2_side_by_side(ours: pd.DataFrame) -> pd.DataFrame:
    """Kappa and accuracy (%) on the test set: ours | paper's (the paper has no No PT test row)."""
    return pd.DataFrame([{"method": r.method, "kappa": round(r.test_kappa, 2),
                          "paper kappa": TABLE2.kappa.get(r.method, np.nan),
                          "accuracy %": round(100 * r.test_accuracy, 1),
                          "paper accuracy %": TABLE2.accuracy.get(r.method, np.nan)} for r in ours.itertuples()])


# --------------------------------------------------------------------------- figures


def siz_figure(path_nifti: str, *, depth: int, height: int, width: int, zoom_order: int = 1, path=None):
    """A CT before and after SIZ: a coronal reformat (z stretched or squeezed to `depth`) and axial slices."""
    vol, spacing = load_volume(path_nifti)
    axial = hu_to_unit(vol.transpose(2, 1, 0)[:, ::-1, :])
    zoomed = spline_zoom(axial, depth=depth, height=height, width=width, order=zoom_order)
    fig, axes = plt.subplots(2, 5, figsize=(13, 5.4), gridspec_kw={"width_ratios": [1.6, 1, 1, 1, 1]})
    for row, (v, title) in enumerate(((axial, f"original {axial.shape}, slice {spacing[2]:.1f} mm"),
                                      (zoomed, f"after SIZ {zoomed.shape}"))):
        axes[row, 0].imshow(v[::-1, v.shape[1] // 2, :], cmap="gray", aspect="auto")
        axes[row, 0].set_title(f"coronal: {title}", fontsize=8)
        for ax, z in zip(axes[row, 1:], np.linspace(0.2, 0.8, 4)):
            k = int(z * (len(v) - 1))
            ax.imshow(v[k], cmap="gray")
            ax.set_title(f"slice {k}/{len(v)}", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    return finish(fig, path)


def video_vs_ct(clip: np.ndarray, ct: np.ndarray, *, action: str, tb_type: str, n: int = 8, path=None):
    """A frame strip of an action clip above a CT shown as a video of axial slices (both after preprocessing)."""
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.6))
    for row, (v, name) in enumerate(((clip, action), (ct, tb_type))):
        for ax, k in zip(axes[row], np.linspace(0, len(v) - 1, n).round().astype(int)):
            ax.imshow(v[k], cmap="gray")
            ax.set_title(f"{name[:12]} t={k}" if k == 0 else f"t={k}", fontsize=7)
            ax.axis("off")
    return finish(fig, path)


def confusion_figure(trials: dict, *, split: str = "test", path=None):
    """One confusion matrix per method (rows: truth, columns: prediction)."""
    fig, axes = plt.subplots(1, len(trials), figsize=(3.3 * len(trials), 3.2), squeeze=False)
    for ax, (name, t) in zip(axes[0], trials.items()):
        cm = np.array(getattr(t, split)["confusion"])
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, int(v), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(SHORT)), [s[:4] for s in SHORT], fontsize=7)
        ax.set_yticks(range(len(SHORT)), [s[:4] for s in SHORT], fontsize=7)
        ax.set_title(f"{name} ({split})", fontsize=9)
        ax.set(xlabel="predicted", ylabel="true")
    return finish(fig, path)
