"""MURA zoom (Huschauer, ZHAW): VGG19 on musculoskeletal radiographs, zooming by guided-backprop entropy.

The study's room: the archive (synthetic MURA-v1.1 or a real one), image datasets with and without the
paper's intensity rescaling, the VGG19 baseline and its study-level Cohen's kappa (Table I), the zoom
re-classification and zoom training with both losses (Fig. 2), Grad-CAM beside guided backprop (Fig. 3),
the ResNet-152 features + bagged polynomial SVMs per body part (Table II), and -- beyond the paper --
every attention map and zoom crop scored against the synthetic ground truth (abnormality and flag
boxes). The keyword names of the runners are the notebook's parameter names (`medvid_core.params.pick`).

Images are decoded once per (split, size, rescaling) into an on-disk cache (`image_store`, a
`medvid_core.store.DiskArrays` under ``data_dir()/mura_zoom/decoded/``) and read back one at a time: the
datasets (`RadiographSet`) hold the index (paths, labels), never the images, and the zoom and attention
maps read the full-resolution originals from a ragged cache of the validation split (`Radiographs`).
`n_jobs` processes decode; `num_workers` DataLoader workers load (0, the default, in the main process).
"""
from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle
from skimage.exposure import rescale_intensity
from sklearn.ensemble import BaggingClassifier
from sklearn.metrics import accuracy_score, cohen_kappa_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from torch.utils.data import DataLoader, Dataset

from .. import explain
from ..data import worker_options
from ..io.index import listing_key
from ..io.mura import MuraError, load_radiograph, read_mura
from ..models import get_model
from ..models import resnet2d as _resnet2d  # noqa: F401  (registers resnet152)
from ..models import vgg as _vgg  # noqa: F401  (registers vgg19)
from ..models.heads import load_without_head
from ..findings import finding
from ..metrics import Measure, bootstrap_measure, kappa_score
from ..paths import data_dir
from ..plots import finish
from ..store import INDEX, SKIPPED, DiskArrays
from ..synth.radiograph import ensure_archive, load_boxes
from ..timing import timed
from ..train import evaluate, fit, resolve_device, seed_everything

STUDY = "mura_zoom"
VGG_HEAD = "classifier.6"
ZOOM_BATCH = 32  # images per forward pass in explain.zoom (its default)
ZOOM_CHUNK = 16 * ZOOM_BATCH  # images per explain.zoom call in run_zoom: a multiple of ZOOM_BATCH

# --------------------------------------------------------------------------- the paper's numbers

# Table I: official MURA leaderboard (study-level Cohen's kappa on the hidden test set)
TABLE1 = pd.DataFrame([("VGG19", 23, 0.744), ("VGG19 + intensity rescaling", 18, 0.754)],
                      columns=["method", "paper_rank", "paper_kappa"])

# Table II: ResNet-152 features + bagged SVMs per body part; last column the MURA baseline (DenseNet169)
#: where the findings that a laptop run does not show can be seen (named by the notebook's findings cell)
LONGER_RUNS = ("84 validation studies make a kappa uncertain by about 0.2. `params/mura_zoom/paper.yaml` (224-pixel "
               "inputs, full-width VGG19, MURA-v1.1's study counts) on a GPU, or a real MURA download, shows more.")
TABLE2 = pd.DataFrame(
    [("ELBOW", 85.8, 0.716, 3.01, 4931, 465, 0.710), ("FINGER", 78.9, 0.582, 2.22, 5106, 461, 0.389),
     ("FOREARM", 80.6, 0.601, 0.45, 1825, 301, 0.737), ("HAND", 79.1, 0.550, 2.54, 5543, 460, 0.815),
     ("HUMERUS", 86.4, 0.729, 0.31, 1272, 287, 0.600), ("SHOULDER", 78.5, 0.569, 4.86, 8389, 563, 0.729),
     ("WRIST", 86.1, 0.717, 4.96, 9077, 659, 0.931)],
    columns=["body_part", "paper_accuracy", "paper_kappa", "paper_train_s", "paper_train_samples",
             "paper_test_samples", "mura_baseline_kappa"]).set_index("body_part")

# --------------------------------------------------------------------------- data


@dataclass
class Archive:
    root: Path  # the folder holding MURA-v1.1/
    train: pd.DataFrame  # one row per image (read_mura)
    valid: pd.DataFrame
    boxes: pd.DataFrame | None  # ground truth (synthetic only): path, kind, type, x0, y0, x1, y1

    def truth(self, df: pd.DataFrame) -> tuple[list[list], list[list]]:
        """Per image of `df`: its abnormality boxes and its flag boxes (empty lists on a real archive)."""
        if self.boxes is None:
            return [[] for _ in range(len(df))], [[] for _ in range(len(df))]
        rel = df.path.map(lambda p: Path(p).relative_to(self.root).as_posix())
        groups = {k: g for k, g in self.boxes.groupby("path")}
        ab, fl = [], []
        for r in rel:
            g = groups.get(r, self.boxes.iloc[:0])
            ab.append([tuple(b) for b in g[g.kind == "abnormality"][["x0", "y0", "x1", "y1"]].to_numpy()])
            fl.append([tuple(b) for b in g[g.kind == "flag"][["x0", "y0", "x1", "y1"]].to_numpy()])
        return ab, fl


def get_archive(*, preset: str = "small", data_root: str = "", seed: int = 0, n_jobs: int = 2) -> Archive:
    """A real MURA-v1.1 (`data_root`, the folder holding `MURA-v1.1/`) or the synthetic `preset`,
    generated on first use (by `n_jobs` processes) into `data/mura_zoom/<preset>_seed<seed>/`."""
    if data_root:
        root, boxes = Path(data_root), None
        if root.name == "MURA-v1.1":
            root = root.parent
    else:
        root = data_dir() / STUDY / f"{preset}_seed{seed}"
        ensure_archive(root, preset, seed=seed, n_jobs=n_jobs)
        boxes = load_boxes(root)
    return Archive(root, read_mura(root, "train"), read_mura(root, "valid"), boxes)


def intensity_rescale(image: np.ndarray, *, low: float = 1.0, high: float = 100.0) -> np.ndarray:
    """The paper's exposure fix: stretch the image's `low`..`high` percentile range to [0, 1].

    The top stays at the maximum (100): clipping even the brightest 1% saturates metal hardware
    to the level of bone cortex and erases the strongest sign of an abnormal study.
    """
    lo, hi = np.percentile(image, (low, high))
    if hi <= lo:
        return image
    out = rescale_intensity(image, in_range=(lo, hi), out_range=(0.0, 1.0))
    return np.clip(out, 0.0, 1.0).astype(np.float32)  # float rounding can leave 1 + 1e-7


def load_image(path: str | Path, *, rescale: bool) -> np.ndarray:
    """One radiograph, full resolution, grayscale in [0, 1], rescaled (`intensity_rescale`) or not."""
    image = load_radiograph(path)
    return intensity_rescale(image) if rescale else image


#: bump whenever `_decode` (reading, rescaling, resizing) changes the bytes it returns
IMAGES_VERSION = 1


def _decode(path: str, *, size: int | None, rescale: bool) -> np.ndarray:
    """What the cache holds for one image: `explain.resize` of it to `size` x `size`, or (size None) the
    full-resolution image itself; float32 either way, exactly what the in-memory pipeline computed."""
    image = load_image(path, rescale=rescale)
    return image if size is None else explain.resize(image, size)


def image_store(df: pd.DataFrame, *, size: int | None, rescale: bool, n_jobs: int = 2) -> DiskArrays:
    """The images of `df` decoded once into an on-disk `DiskArrays`, one float32 array per path: shrunk to
    `size` x `size` (the datasets), or at full resolution (`size` None: the zoom and attention maps, which
    crop from the original; ragged shapes).

    Folder: ``data_dir()/mura_zoom/decoded/<digest of the paths>_<size|full>_<raw|rescaled>/``; key: the
    listing of the image files (name, size, mtime: `io.index.listing_key`), `size`, `rescale` and
    `IMAGES_VERSION` (not `n_jobs`), so a changed file or parameter rebuilds it and nothing else does. An
    unreadable PNG is the one-line `MuraError` naming it, as when every image was read into memory."""
    paths = list(dict.fromkeys(map(str, df.path)))
    digest = hashlib.sha256("\n".join(paths).encode()).hexdigest()[:16]
    folder = data_dir() / STUDY / "decoded" / f"{digest}_{'full' if size is None else f'{size}px'}_" \
                                              f"{'rescaled' if rescale else 'raw'}"
    key = dict(study=STUDY, images=listing_key(paths), size=size, rescale=rescale, version=IMAGES_VERSION)
    store = DiskArrays.build(folder, key=key, names=paths, decode=partial(_decode, size=size, rescale=rescale),
                             n_jobs=n_jobs, desc=f"decoding radiographs ({'full' if size is None else size})")
    if len(store.skipped):
        name, reason = store.skipped.iloc[0]
        more = f" (and {len(store.skipped) - 1} more: {store.folder / SKIPPED})" if len(store.skipped) > 1 else ""
        raise MuraError(f"{name}: {reason}{more}")
    return store


class Radiographs(Sequence):
    """The full-resolution images of `df` (rescaled or not) as a sequence read from `image_store` one at a
    time: what `explain.zoom` and the attention maps take in place of a list held in memory. `take(rows)`:
    some of them, from the same store."""

    def __init__(self, df: pd.DataFrame, *, rescale: bool, n_jobs: int = 2):
        self.store = image_store(df, size=None, rescale=rescale, n_jobs=n_jobs)
        self.names = [str(p) for p in df.path]
        index = pd.read_csv(self.store.folder / INDEX, usecols=["name", "shape"], dtype=str,
                            keep_default_na=False)
        shape = dict(zip(index["name"], index["shape"]))
        self.shapes = [tuple(int(v) for v in shape[n].split("x")) for n in self.names]  # (H, W), nothing read

    def take(self, rows) -> "Radiographs":
        sub = copy.copy(self)
        sub.names, sub.shapes = [self.names[i] for i in rows], [self.shapes[i] for i in rows]
        return sub

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.store.get(self.names[i])

    def __iter__(self):
        return (self.store.get(n) for n in self.names)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Classifier input: [0, 1] -> [-1, 1] (a fixed map; the same for every image and both pipelines)."""
    return (x - 0.5) / 0.5


class RadiographSet(Dataset):
    """(image shrunk to size x size in [0, 1], label) read by index from an `image_store`; `flip`: random
    horizontal flips (training; one `torch.rand` per item, as the in-memory set drew them)."""

    def __init__(self, store: DiskArrays, names, labels, *, flip: bool = False):
        self.store, self.names = store, [str(n) for n in names]
        self.y = torch.tensor(np.asarray(labels), dtype=torch.long)
        self.flip = flip

    @classmethod
    def of(cls, df: pd.DataFrame, *, size: int, rescale: bool, flip: bool = False, n_jobs: int = 2) -> "RadiographSet":
        """The images of `df` at `size`, from their cache (decoded on first use)."""
        return cls(image_store(df, size=size, rescale=rescale, n_jobs=n_jobs), df.path, df.label, flip=flip)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        x = torch.from_numpy(self.store.get(self.names[i]))[None]
        if self.flip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x, self.y[i]


def _forward_normalized(model, x):
    return model(normalize(x))


def _accuracy(outputs, targets) -> dict:
    logits = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
    return {"accuracy": (logits.argmax(1) == targets).float().mean().item()}


# --------------------------------------------------------------------------- the baseline (Table I)


def build_vgg19(*, width: float = 0.0625, batch_norm: bool = True, weights: str = "") -> torch.nn.Module:
    """VGG19, one input channel, 2 classes; `weights`: a local torchvision VGG19 state dict (its RGB
    first conv summed to gray, its 1000-class head left out)."""
    model = get_model("vgg19", num_classes=2, in_channels=1, width=width, batch_norm=batch_norm)
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        first = "features.0.weight"
        if state[first].shape[1] == 3:
            state[first] = state[first].sum(dim=1, keepdim=True)
        load_without_head(model, state, VGG_HEAD, source=weights)  # raises unless only the head is left out
    return model


def train_baseline(archive: Archive, *, rescale: bool, image_size: int = 64, width: float = 0.0625,
                   batch_norm: bool = True, weights: str = "", epochs: int = 6, batch_size: int = 16,
                   lr: float = 1e-3, weight_decay: float = 1e-4, seed: int = 0, device: str = "cpu",
                   num_workers: int = 0, n_jobs: int = 2):
    """One VGG19 trained on the training images (AdamW, warm-up + cosine, decay on the head).

    Returns (model, history, valid image probabilities of 'abnormal')."""
    device = resolve_device(device)
    seed_everything(seed)
    train = RadiographSet.of(archive.train, size=image_size, rescale=rescale, flip=True, n_jobs=n_jobs)
    valid = RadiographSet.of(archive.valid, size=image_size, rescale=rescale, n_jobs=n_jobs)
    model = build_vgg19(width=width, batch_norm=batch_norm, weights=weights)
    loader = DataLoader(train, batch_size=batch_size, shuffle=True, drop_last=len(train) > batch_size,
                        **worker_options(num_workers))
    val_loader = DataLoader(valid, batch_size=64, **worker_options(num_workers))
    history = fit(model, loader, epochs=epochs, lr=lr, forward=_forward_normalized, metric_fn=_accuracy,
                  weight_decay=weight_decay, head=VGG_HEAD, warmup_epochs=1 if epochs > 2 else 0,
                  val_loader=val_loader, device=device, desc="vgg19" + (" rescaled" if rescale else ""))
    probs = predict(model, valid, device=device, num_workers=num_workers)
    return model, history, probs


def run_table1(archive: Archive, **kwargs) -> dict:
    """Both rows of Table I (`train_baseline` without, then with intensity rescaling).

    Returns {method: dict(model, history, probs, kappa)} keyed like `TABLE1.method`."""
    rows = {}
    for method, rescale in zip(TABLE1.method, (False, True)):
        model, history, probs = train_baseline(archive, rescale=rescale, **kwargs)
        rows[method] = dict(model=model, history=history, probs=probs, kappa=kappa_table(archive.valid, probs))
    return rows


def predict(model, dataset: RadiographSet, *, device: str = "cpu", num_workers: int = 0) -> np.ndarray:
    ev = evaluate(model, DataLoader(dataset, batch_size=64, **worker_options(num_workers)),
                  forward=_forward_normalized, device=device)
    return F.softmax(ev["outputs"], dim=1)[:, 1].numpy()


def study_predictions(df: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    """Study level as MURA scores it: the mean of the study's image probabilities, abnormal if > 0.5."""
    per = df.assign(prob=probs).groupby("study", sort=False).agg(
        body_part=("body_part", "first"), label=("label", "first"), prob=("prob", "mean"), images=("path", "size"))
    return per.assign(pred=(per.prob > 0.5).astype(int))


def kappa_table(df: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    """Study-level Cohen's kappa (scikit-learn) and accuracy, overall and per body part, + image accuracy."""
    studies = study_predictions(df, probs)
    images = df.assign(pred=(probs > 0.5).astype(int))
    rows = []
    for part, s in [("ALL", studies), *studies.groupby("body_part")]:
        im = images if part == "ALL" else images[images.body_part == part]
        rows.append(dict(body_part=part, studies=len(s), images=len(im),
                         study_kappa=cohen_kappa_score(s.label, s.pred) if s.label.nunique() > 1 else np.nan,
                         study_accuracy=accuracy_score(s.label, s.pred),
                         image_accuracy=accuracy_score(im.label, im.pred)))
    return pd.DataFrame(rows).set_index("body_part")


def table1_side_by_side(kappas: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Table I: our study-level kappa (validation split) beside the paper's leaderboard kappa."""
    side = TABLE1.copy()
    side["our_kappa"] = [kappas[m].loc["ALL", "study_kappa"] if m in kappas else np.nan for m in side.method]
    side["our_study_accuracy"] = [kappas[m].loc["ALL", "study_accuracy"] if m in kappas else np.nan
                                  for m in side.method]
    return side.round({"our_kappa": 2, "our_study_accuracy": 2})  # the paper's kappas keep their 3 decimals


# --------------------------------------------------------------------------- zoom (re-classification)


def run_zoom(model, archive: Archive, *, rescale: bool, image_size: int = 64, zoom_steps: int = 1,
             entropy_radius: int = 3, zoom_quantile: float = 0.9, device: str = "cpu", n_jobs: int = 2) -> dict:
    """Zoom every validation image `zoom_steps` times; kappa per step and every crop scored.

    The full-resolution images are read from their cache one at a time, `ZOOM_CHUNK` images per
    `explain.zoom` call (a multiple of its batch of 32, so every forward pass sees the batches one call
    over all images would: the same numbers, in memory bounded by the chunk, not the split).

    Returns dict(kappa: DataFrame (step x study_kappa, study_accuracy, image_accuracy),
    crops: DataFrame one row per (image, step) with box and scores, probs: (steps+1, N))."""
    device = resolve_device(device)
    images = Radiographs(archive.valid, rescale=rescale, n_jobs=n_jobs)
    parts = [explain.zoom(model.to(device), images.take(range(i, min(i + ZOOM_CHUNK, len(images)))),
                          input_size=image_size, steps=zoom_steps, normalize=normalize, entropy_radius=entropy_radius,
                          quantile=zoom_quantile, batch_size=ZOOM_BATCH)
             for i in range(0, len(images), ZOOM_CHUNK)]
    res = {k: np.concatenate([p[k] for p in parts], axis=1) for k in ("probs", "boxes")}
    probs = res["probs"][..., 1]
    kappa = pd.DataFrame({step: kappa_table(archive.valid, probs[step]).loc["ALL"] for step in range(zoom_steps + 1)}).T
    kappa.index.name = "zoom_step"
    ab, fl = archive.truth(archive.valid)
    rows = []
    for step in range(zoom_steps):
        for i, (box, (h, w)) in enumerate(zip(res["boxes"][step], images.shapes)):
            box = tuple(int(v) for v in box)
            rows.append(dict(step=step + 1, path=archive.valid.path.iloc[i], label=archive.valid.label.iloc[i],
                             body_part=archive.valid.body_part.iloc[i], x0=box[0], y0=box[1], x1=box[2], y1=box[3],
                             crop_fraction=(box[2] - box[0]) * (box[3] - box[1]) / (h * w),
                             has_flag=float(len(fl[i]) > 0), **explain.score_crop(box, ab[i], fl[i])))
    return dict(kappa=kappa, crops=pd.DataFrame(rows), probs=probs, boxes=res["boxes"])


def zoom_crop_summary(crops: pd.DataFrame) -> pd.DataFrame:
    """Per zoom step: how often the crop holds the abnormality, lands on a flag, its IoU and size."""
    pos = crops[crops.label == 1]
    flagged = crops[crops.has_flag == 1]
    return pd.DataFrame({
        "crop_fraction_of_image": crops.groupby("step").crop_fraction.mean(),
        "contains_abnormality (abnormal images)": pos.groupby("step").contains_abnormality.mean(),
        "iou_with_abnormality (abnormal images)": pos.groupby("step").iou.mean(),
        "on_flag (flagged images)": flagged.groupby("step").on_flag.mean(),
    })


# --------------------------------------------------------------------------- zoom training (Fig. 2)


def make_zoom_forward(*, image_size: int = 64, entropy_radius: int = 3, zoom_quantile: float = 0.9):
    """forward(model, full) for the trainer: `full` is (N, 1, F, F) in [0, 1] (images at `full_size`).

    Pass 1 classifies `full` shrunk to `image_size`; guided backprop (eval mode, eq.-(1) input,
    predicted class) -> local entropy -> region -> crop of `full` (at least `image_size` a side) ->
    pass 2 classifies the crop. Returns (logits_full, logits_crop): both losses reach the weights.
    """

    def forward(model, full):
        small = F.interpolate(full, size=(image_size, image_size), mode="area")
        logits = model(normalize(small))
        was_training = model.training
        model.eval()
        with torch.enable_grad():  # evaluate() runs under no_grad; GBP needs the input gradient
            attr = explain._gbp(model, explain.gbp_normalize(small), logits.argmax(1).detach())
        model.train(was_training)
        resp = explain.response_map(attr)
        crops = []
        for i, r in enumerate(resp):
            region = explain.entropy_region(explain.local_entropy(r, entropy_radius), zoom_quantile)
            x0, y0, x1, y1 = explain.crop_box(region, r.shape, tuple(full.shape[-2:]), image_size)
            crops.append(F.interpolate(full[i:i + 1, :, y0:y1, x0:x1], size=(image_size, image_size),
                                       mode="bilinear", align_corners=False))
        return logits, model(normalize(torch.cat(crops)))

    return forward


def two_losses(outputs, targets):
    """Cross-entropy on the full image plus cross-entropy on its zoom crop."""
    full, zoomed = outputs
    return F.cross_entropy(full, targets) + F.cross_entropy(zoomed, targets)


def train_zoom(model, archive: Archive, *, rescale: bool, image_size: int = 64, full_size: int = 128,
               zoom_epochs: int = 2, zoom_lr: float = 3e-4, batch_size: int = 16, weight_decay: float = 1e-4,
               entropy_radius: int = 3, zoom_quantile: float = 0.9, seed: int = 0, device: str = "cpu",
               num_workers: int = 0, n_jobs: int = 2):
    """Fig. 2: start from the trained baseline (a copy) and train on both losses. Returns (model, history)."""
    device = resolve_device(device)
    seed_everything(seed)
    model = copy.deepcopy(model)
    train = RadiographSet.of(archive.train, size=full_size, rescale=rescale, flip=True, n_jobs=n_jobs)
    valid = RadiographSet.of(archive.valid, size=full_size, rescale=rescale, n_jobs=n_jobs)
    forward = make_zoom_forward(image_size=image_size, entropy_radius=entropy_radius, zoom_quantile=zoom_quantile)
    history = fit(model, DataLoader(train, batch_size=batch_size, shuffle=True, drop_last=len(train) > batch_size,
                                    **worker_options(num_workers)),
                  epochs=zoom_epochs, lr=zoom_lr, loss_fn=two_losses, forward=forward, metric_fn=_accuracy,
                  weight_decay=weight_decay, head=VGG_HEAD,
                  val_loader=DataLoader(valid, batch_size=64, **worker_options(num_workers)),
                  device=device, desc="zoom training")
    return model, history


# --------------------------------------------------------------------------- attention scored (Fig. 3 + beyond)


def attention_maps(model, images: Sequence[np.ndarray], *, image_size: int = 64, target: int = 1):
    """Guided backprop (|.| max over channels, eq.-(1) input) and Grad-CAM (last conv block) at input size."""
    x = torch.from_numpy(np.stack([explain.resize(im, image_size) for im in images]))[:, None]
    gbp = explain.response_map(explain.guided_backprop(model.cpu(), explain.gbp_normalize(x), target=target))
    layer = model.features[-2]  # the last ReLU before the final max-pool
    cam = explain.grad_cam(model.cpu(), layer, normalize(x), target=target).numpy()
    return gbp, cam


def attention_table(model, archive: Archive, *, rescale: bool, image_size: int = 64, attention_images: int = 60,
                    entropy_radius: int = 3, n_jobs: int = 2) -> pd.DataFrame:
    """On abnormal validation images that carry a flag: where does each map put its weight?

    Pointing game (the map's maximum inside the box) and mass fraction inside the abnormality box and
    inside the flag box, for guided backprop, its local entropy and Grad-CAM; `chance` is the boxes'
    area fraction (a uniform map). `empty_maps` counts maps that are constant, all zero or not (a Grad-CAM of
    the 'abnormal' class is all zero when every channel's weighted sum is negative): they point nowhere and
    are left out of every score (hit and mass) rather than scored as a miss or as the area fraction."""
    ab, fl = archive.truth(archive.valid)
    keep = [i for i in range(len(archive.valid)) if ab[i] and fl[i]][:attention_images]
    if not keep:
        return pd.DataFrame()
    images = Radiographs(archive.valid, rescale=rescale, n_jobs=n_jobs).take(keep)  # full resolution, read lazily
    gbp, cam = attention_maps(model, images, image_size=image_size)
    ent = np.stack([explain.local_entropy(g, entropy_radius) for g in gbp])
    rows = []
    for name, maps in (("guided backprop", gbp), ("GBP local entropy", ent), ("Grad-CAM", cam)):
        for m, (h, w), i in zip(maps, images.shapes, keep):
            scale = (w / image_size, h / image_size)
            rows.append(dict(map=name, empty_maps=float(explain.empty_map(m)),
                             hit_abnormality=explain.pointing_hit(m, ab[i], map_to_image=scale),
                             hit_flag=explain.pointing_hit(m, fl[i], map_to_image=scale),
                             mass_abnormality=explain.map_mass(m, ab[i], map_to_image=scale),
                             mass_flag=explain.map_mass(m, fl[i], map_to_image=scale)))
    grid = (image_size, image_size)
    for (h, w), i in zip(images.shapes, keep):  # a uniform map: the boxes' area fractions
        scale = (w / image_size, h / image_size)
        rows.append(dict(map="chance (uniform map)", empty_maps=np.nan, hit_abnormality=np.nan, hit_flag=np.nan,
                         mass_abnormality=explain.area_fraction(grid, ab[i], map_to_image=scale),
                         mass_flag=explain.area_fraction(grid, fl[i], map_to_image=scale)))
    rows = pd.DataFrame(rows)
    table = rows.groupby("map", sort=False).mean()  # an empty map's NaN scores are left out of its mean
    table["empty_maps"] = rows.groupby("map", sort=False).empty_maps.sum(min_count=1)
    table.insert(0, "images", len(keep))
    return table


# --------------------------------------------------------------------------- feature extraction + SVM (Table II)


def train_feature_extractor(archive: Archive, *, image_size: int = 64, svm_width: float = 0.125,
                            svm_backbone_epochs: int = 15, batch_size: int = 16, svm_lr: float = 3e-3, seed: int = 0,
                            device: str = "cpu", num_workers: int = 0, n_jobs: int = 2):
    """ResNet-152 trained for a few iterations (`svm_backbone_epochs`) on the training images.

    AdamW at peak `svm_lr` with warm-up + cosine. The defaults are the least that gave the small archive's
    features any label signal on a CPU: 1/8 width and 15 epochs (about 400 steps; the ResNet alone then
    scores image kappa 0.24). At 1/16 width, or 5 epochs, its kappa and the SVMs' stay at 0."""
    device = resolve_device(device)
    seed_everything(seed)
    model = get_model("resnet152", num_classes=2, in_channels=1, width=svm_width)
    train = RadiographSet.of(archive.train, size=image_size, rescale=True, flip=True, n_jobs=n_jobs)
    fit(model, DataLoader(train, batch_size=batch_size, shuffle=True, drop_last=len(train) > batch_size,
                          **worker_options(num_workers)),
        epochs=svm_backbone_epochs, lr=svm_lr, forward=_forward_normalized, head="fc", device=device,
        desc="resnet152")
    return model


@torch.no_grad()
def pooled_features(model, df: pd.DataFrame, *, image_size: int = 64, device: str = "cpu", num_workers: int = 0,
                    n_jobs: int = 2) -> np.ndarray:
    device = resolve_device(device)
    ds = RadiographSet.of(df, size=image_size, rescale=True, n_jobs=n_jobs)
    model = model.to(device).eval()
    return torch.cat([model.forward_features(normalize(x.to(device))).cpu()
                      for x, _ in DataLoader(ds, batch_size=64, **worker_options(num_workers))]).numpy()


def svm_classifier(*, svm_degree: int = 5, svm_estimators: int = 10, svm_max_samples: float = 0.5, seed: int = 0):
    """Standardise, then one-vs-rest over a bag of `svm_estimators` SVCs with a polynomial kernel.

    Each SVC sees its own `svm_max_samples` fraction of the body part's images, drawn without
    replacement (the paper bagged to fit memory: every SVM trains on a subset)."""
    bag = BaggingClassifier(SVC(kernel="poly", degree=svm_degree), n_estimators=svm_estimators,
                            max_samples=svm_max_samples, bootstrap=False, random_state=seed)
    return make_pipeline(StandardScaler(), OneVsRestClassifier(bag))


def svm_table(archive: Archive, train_features: np.ndarray, valid_features: np.ndarray, *, svm_degree: int = 5,
              svm_estimators: int = 10, svm_max_samples: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """Table II: one bagged-SVM classifier per body part; image accuracy (%), kappa, fit seconds, counts."""
    rows, predictions = [], np.full(len(archive.valid), -1)
    for part in sorted(archive.train.body_part.unique()):
        tr, va = (archive.train.body_part == part).to_numpy(), (archive.valid.body_part == part).to_numpy()
        y = archive.valid.label[va]
        row = dict(body_part=part, train_samples=int(tr.sum()), test_samples=int(va.sum()))
        if archive.train.label[tr].nunique() < 2:  # an SVM needs both classes: say so, in the table
            rows.append(dict(row, accuracy=np.nan, kappa=np.nan, train_s=np.nan))
            continue
        clf = svm_classifier(svm_degree=svm_degree, svm_estimators=svm_estimators, svm_max_samples=svm_max_samples,
                             seed=seed)
        with timed() as fit_time:
            clf.fit(train_features[tr], archive.train.label[tr])
        pred = clf.predict(valid_features[va])
        predictions[va] = pred
        rows.append(dict(row, accuracy=100 * accuracy_score(y, pred),
                         kappa=cohen_kappa_score(y, pred) if y.nunique() > 1 else np.nan, train_s=fit_time.wall))
    table = pd.DataFrame(rows).set_index("body_part")
    table.attrs["predictions"] = predictions  # per validation image, in archive.valid's order; -1: no SVM
    return table


def measures(archive: Archive, table1: dict, svm: pd.DataFrame | None = None) -> dict[str, Measure]:
    """The trained results that `medvid_core.reference.check` compares with the committed reference, with
    95% bootstrap intervals: Table I's study-level kappa (over validation studies) and Table II's kappa of
    the SVMs' image predictions pooled over body parts (over validation studies, a study's views together)."""
    out = {}
    for method, r in table1.items():
        s = study_predictions(archive.valid, r["probs"])
        out[f"{method} study kappa"] = bootstrap_measure(kappa_score, s.label.to_numpy(), s.pred.to_numpy(), chance=0.0)
    if svm is not None and "predictions" in svm.attrs:
        pred = svm.attrs["predictions"]
        kept = pred >= 0
        out["SVM image kappa, all body parts"] = bootstrap_measure(
            kappa_score, archive.valid.label.to_numpy()[kept], pred[kept], groups=archive.valid.study.to_numpy()[kept],
            chance=0.0)
    return out


def attention_words(attention: pd.DataFrame, *, image_size: int = 64) -> str:
    """The title's question answered from the attention table: where guided backprop and Grad-CAM put
    their weight, against the uniform map's level, how many Grad-CAM maps were empty, and how coarse the
    Grad-CAM grid is (VGG19's last block sees the input at 1/16 of its side)."""
    if not len(attention):
        return "No abnormal image with a flag to score (a real MURA folder has no boxes)."
    chance = attention.loc["chance (uniform map)"]
    parts = []
    for name in ("guided backprop", "Grad-CAM"):
        r = attention.loc[name]
        flag, ab = r.mass_flag / chance.mass_flag, r.mass_abnormality / chance.mass_abnormality
        where = "the flag" if flag > ab else "the abnormality"
        parts.append(f"{name} puts {flag:.1f}x the uniform share of its weight on the flag and {ab:.1f}x on the "
                     f"abnormality, so more on {where}")
    cam, n = attention.loc["Grad-CAM"], int(attention.loc["Grad-CAM", "images"])
    empty = int(cam.empty_maps) if "empty_maps" in attention and pd.notna(cam.empty_maps) else 0
    text = "; ".join(parts) + "."
    if empty:
        text += (f" {empty} of {n} Grad-CAM maps are empty (all zero): for those images every channel of the last "
                 "block weighs against 'abnormal', and the ReLU of Grad-CAM leaves nothing. They point nowhere and "
                 f"are left out of its scores, which come from the other {n - empty}.")
    grid = max(1, image_size // 16)
    text += (f" Grad-CAM is also coarse here: at {image_size} pixels VGG19's last block is a {grid}x{grid} grid, one "
             f"cell {1 / grid**2:.0%} of the image, while a flag or abnormality box covers about "
             f"{chance.mass_flag:.0%}: upsampled, a cell can say which part of the image, not which box. Guided "
             "backprop works at the input's own resolution.")
    return text


def table2_words(svm: pd.DataFrame) -> str:
    """Table II in words: which body parts' SVMs beat the majority class, against the paper's range."""
    k = svm.kappa.dropna()
    learnt = k[k > 0.05].sort_values(ascending=False)
    flat = k[k <= 0.05]
    text = (f"The SVMs reach kappa above 0.05 on {len(learnt)} of {len(k)} body parts"
            + (" (" + ", ".join(f"{p.lower()} {v:.2f}" for p, v in learnt.items()) + ")" if len(learnt) else "")
            + (f" and stay near the majority class on {', '.join(p.lower() for p in flat.index)}" if len(flat) else "")
            + f", against the paper's {TABLE2.paper_kappa.min():.2f}-{TABLE2.paper_kappa.max():.2f}.")
    return text + (f" About {int(svm.train_samples.median())} training images per body part against the paper's "
                   f"{int(TABLE2.paper_train_samples.min()):,}-{int(TABLE2.paper_train_samples.max()):,}, and a "
                   "random-init network, keep these far below.")


def findings(table1: dict, attention: pd.DataFrame, zoom_kappa: pd.DataFrame) -> list[dict]:
    """The paper's claims against this run: rescaling's kappa gain (Table I), guided backprop's attention
    on the flags rather than the abnormality (Figs 3-4: mass in the box over the box's area share, flag
    over abnormality), and whether one zoom step raises the study kappa (the paper got no gain)."""
    out = []
    plain, rescaled = (table1[m]["kappa"].loc["ALL", "study_kappa"] if m in table1 else np.nan for m in TABLE1.method)
    paper = TABLE1.set_index("method").paper_kappa
    out.append(finding("Intensity rescaling raises the study kappa (Table I)",
                       paper=f"{paper.iloc[0]:.3f} -> {paper.iloc[1]:.3f} ({paper.iloc[1] - paper.iloc[0]:+.3f})",
                       ours=rescaled - plain, unit="kappa", holds=rescaled - plain > 0, rule="kappa difference > 0"))
    if len(attention) and "guided backprop" in attention.index:
        gbp, chance = attention.loc["guided backprop"], attention.loc["chance (uniform map)"]
        ratio = (gbp.mass_flag / chance.mass_flag) / (gbp.mass_abnormality / chance.mass_abnormality)
        out.append(finding("Guided backprop looks at the flags more than at the abnormality (Figs 3-4)",
                           paper="attention 'often focused on the flags rather than on the objects of interest'",
                           ours=ratio, unit="x", holds=ratio > 1,
                           rule="(flag mass / flag area) / (abnormality mass / abnormality area) > 1"))
    if len(zoom_kappa) > 1:
        gain = zoom_kappa.study_kappa.iloc[1] - zoom_kappa.study_kappa.iloc[0]
        out.append(finding("Zooming into the attended region does not raise the kappa",
                           paper="no gain: zoom training did not converge, the approach was not pursued",
                           ours=gain, unit="kappa", holds=gain <= 0.02, rule="kappa after one zoom step - before <= 0.02"))
    return out


def table2_side_by_side(ours: pd.DataFrame) -> pd.DataFrame:
    side = ours.join(TABLE2, how="left")
    cols = ["accuracy", "paper_accuracy", "kappa", "paper_kappa", "train_samples", "paper_train_samples",
            "test_samples", "paper_test_samples", "mura_baseline_kappa"]
    return side[cols].round({"accuracy": 1, "kappa": 2})


# --------------------------------------------------------------------------- figures


def _boxes(ax, boxes, color, label=None):
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=color, lw=1.2,
                               label=label if k == 0 else None))


def plot_study_grid(archive: Archive, *, path=None):
    """One normal (top) and one abnormal (bottom) validation study per body part, first view, with ground truth."""
    parts = sorted(archive.valid.body_part.unique())
    fig, axes = plt.subplots(2, len(parts), figsize=(2.1 * len(parts), 4.6), squeeze=False)
    first = archive.valid.groupby("study", sort=False).head(1)
    ab, fl = archive.truth(first)
    for j, part in enumerate(parts):
        for i, label in enumerate((0, 1)):
            rows = np.flatnonzero(((first.body_part == part) & (first.label == label)).to_numpy())
            ax = axes[i, j]
            ax.axis("off")
            if not len(rows):
                continue
            k = rows[0]
            ax.imshow(load_radiograph(first.path.iloc[k]), cmap="gray", vmin=0, vmax=1)
            _boxes(ax, ab[k], "red")
            _boxes(ax, fl[k], "cyan")
            ax.set_title(f"{part.lower()}\n{'abnormal' if label else 'normal'}", fontsize=8)
    fig.suptitle("validation studies (first view); red: abnormality, cyan: L/R flag (ground truth)", fontsize=9)
    return finish(fig, path, tight_bbox=False)


def plot_attention(model, archive: Archive, *, rescale: bool, image_size: int = 64, entropy_radius: int = 3,
                   zoom_quantile: float = 0.9, n: int = 4, path=None):
    """Fig. 3/4 re-made on abnormal images: image, guided backprop, Grad-CAM, local entropy with the crop."""
    ab, fl = archive.truth(archive.valid)
    idx = [i for i in range(len(archive.valid)) if ab[i] and fl[i]][:n] or list(range(min(n, len(archive.valid))))
    images = [load_image(p, rescale=rescale) for p in archive.valid.path.iloc[idx]]  # `n` images, read directly
    gbp, cam = attention_maps(model, images, image_size=image_size)
    fig, axes = plt.subplots(len(idx), 4, figsize=(9, 2.3 * len(idx)), squeeze=False)
    for row, (i, im, g, c) in enumerate(zip(idx, images, gbp, cam)):
        h, w = im.shape
        ent = explain.local_entropy(g, entropy_radius)
        box = explain.crop_box(explain.entropy_region(ent, zoom_quantile), ent.shape, (h, w), image_size)
        small = explain.resize(im, image_size)
        panels = [(im, "image + crop", "gray"), (g, "guided backprop", "magma"), (c, "Grad-CAM", "jet"),
                  (ent, "local entropy", "viridis")]
        for ax, (img, title, cmap) in zip(axes[row], panels):
            if title == "Grad-CAM":
                ax.imshow(small, cmap="gray")
                ax.imshow(img, cmap=cmap, alpha=0.45)
            else:
                ax.imshow(img, cmap=cmap)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        sx, sy = image_size / w, image_size / h
        for ax in axes[row][1:]:
            _boxes(ax, [(x0 * sx, y0 * sy, x1 * sx, y1 * sy) for x0, y0, x1, y1 in ab[i]], "red")
            _boxes(ax, [(x0 * sx, y0 * sy, x1 * sx, y1 * sy) for x0, y0, x1, y1 in fl[i]], "cyan")
        _boxes(axes[row][0], ab[i], "red")
        _boxes(axes[row][0], fl[i], "cyan")
        _boxes(axes[row][0], [box], "yellow")
    fig.suptitle("red: abnormality, cyan: flag (ground truth), yellow: zoom crop", fontsize=9)
    return finish(fig, path, tight_bbox=False)
