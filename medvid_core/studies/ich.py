"""ICH study (Alqnatri & Benešová, "Processing of medical image data by computer vision methods and deep
neural networks"): intracranial hemorrhage on head-CT slices, binary and multi-label, and the split leakage
of slice-randomised versus subject-randomised evaluation it re-tells from Castro et al.

The study's room: the paper's published numbers, the cohort and its skip log, the decode-once on-disk slice store,
splits with their leakage report, balancing, one training run per (model, task, split), the side-by-side
tables and the study's figures. Everything runs the same on a real RSNA folder (`stage_2_train/` with the
DICOM files and `stage_2_train.csv`) as on the synthetic cohort.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

import medvid_core.models.cnn4  # noqa: F401  (registers cnn4)
import medvid_core.models.resnet2d  # noqa: F401  (registers resnet152)
import medvid_core.models.vgg  # noqa: F401  (registers vgg16)
from medvid_core.cache import STAMP
from medvid_core.data import leakage_report, worker_options
from medvid_core.io.dicom import DicomError, read_header, read_hu
from medvid_core.io.index import index_files, listing_key
from medvid_core.io.rsna import SUBTYPES, read_rsna_labels
from medvid_core.findings import finding
from medvid_core.metrics import Measure, auc_score, binary_scores, bootstrap_measure, weighted_log_loss
from medvid_core.models import count_parameters, get_model
from medvid_core.models.cnn4 import ParallelHeads
from medvid_core.models.heads import replace_head
from medvid_core.paths import data_dir
from medvid_core.splits import stratified_split
from medvid_core.store import DiskArrays
from medvid_core.synth.head_ct import generate_cohort
from medvid_core.timing import timed
from medvid_core.train import evaluate, fit, resolve_device, seed_everything
from medvid_core.transforms import hu_to_unit, remove_background, window_stack

STUDY = "ich"
BLEEDS = list(SUBTYPES[:5])

#: where the findings that a laptop run does not show can be seen (named by the notebook's findings cell)
LONGER_RUNS = ("The paper's protocol, `params/ich/paper.yaml` (full-width CNN4 and VGG16 at 224 pixels, 150 epochs; "
               "experiment 1's 10,000 random slices for 50 epochs; experiment 2's 50 SGD epochs and its three SGD "
               "runs) on a GPU, trains long enough to memorise a head, and a cohort of 400 "
               "subjects (`cohort_preset=\"paper\"`) gives the subtype scores a few hundred test heads.")

# ----------------------------------------------------------------------------- the paper's numbers
# Leakage table (the seed's slide "Results", from Castro et al.): binary hemorrhage on CQ500 slices.
PAPER_LEAKAGE = pd.DataFrame(
    [("vgg16", "slices", 0.968, 0.974, 0.971, 0.989), ("vgg16", "subjects", 0.707, 0.735, 0.758, 0.783),
     ("cnn4", "slices", 0.981, 0.972, 0.982, 0.982), ("cnn4", "subjects", 0.598, 0.721, 0.687, 0.658)],
    columns=["model", "split", "accuracy", "recall", "f1", "auc"])
# Experiment 1: the authors' CNN, 10 000 random RSNA slices, 80/20, 50 epochs, Adam 1e-3, BCE with logits.
PAPER_EXPERIMENT1 = {"accuracy": 0.636, "recall": 0.67, "f1": 0.71, "auc": 0.761}
PAPER_EXP1_SLICES, PAPER_EXP1_TEST_SIZE = 10000, 0.2  # "choosing randomly 10 000 slices", "randomly 80% ... 20%"
# Experiment 2: ResNet-152, binary and five parallel subtype heads; "84%" accuracy (binary) and
# "84% on average across all classes" (multi-label). Dataset sizes of their Table 4.
PAPER_EXPERIMENT2 = {"binary_accuracy": 0.84, "multilabel_mean_accuracy": 0.84}
PAPER_DATASETS = {"binary": (78116, 19529), "multilabel": (22501, 5756)}  # (train, test) slices
# The RSNA stage-2 training folder as the seed counted it.
PAPER_RSNA = {"dicom_files": 752803, "labelled_images": 674257, "unannotated": 78546, "corrupt": 1}
# Experiment 2's three SGD runs (batch 32, momentum 0.9, lr reduced on plateau)
PAPER_SGD_RUNS = pd.DataFrame([("first", 150, 1e-4), ("second", 100, 1e-3), ("third", 50, 1e-2)],
                              columns=["run", "epochs", "lr"])


# ----------------------------------------------------------------------------- cohort, index, skip log
def cohort_root(*, data_root: str = "", cohort_preset: str = "small", seed: int = 0) -> Path:
    """A real RSNA folder as given, else the synthetic cohort (generated on first use under data/ich/)."""
    if data_root:
        root = Path(data_root)
        if not (root / "stage_2_train.csv").exists():
            raise FileNotFoundError(f"{root}: no stage_2_train.csv (expected an RSNA ICH folder)")
        return root
    return generate_cohort(data_dir() / STUDY / f"{cohort_preset}-seed{seed}", preset=cohort_preset, seed=seed)


def index_cohort(root: str | Path, *, n_jobs: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """All DICOM files with their labels and headers (read on `n_jobs` processes, cached on the listing:
    RSNA's 752,803 headers are read once, `medvid_core.io.index`).

    Returns (slices, skip_log, counts): `slices` has one row per labelled, readable header (image,
    file, subject, series, z, six label columns, position in its series); `skip_log` (file, reason)
    holds the files whose header cannot be read; unannotated files (no CSV rows) are counted, as the
    seed counts RSNA's 78 546, and kept out of training. Nothing else is dropped.
    """
    root = Path(root)
    labels = read_rsna_labels(root / "stage_2_train.csv")
    files = sorted((root / "stage_2_train").glob("*.dcm"))
    table = index_files(files, read_header, name="dicom-headers", n_jobs=n_jobs,
                        text_columns=("patient", "study", "series"))
    bad = table["error"] != ""
    skips = table.loc[bad, ["file", "error"]].rename(columns={"error": "reason"}).to_dict("records")
    df = table.loc[~bad].drop(columns="error").rename(columns={"patient": "subject"})
    df.insert(0, "image", [Path(f).stem for f in df["file"]])
    annotated = df["image"].isin(labels.index)
    counts = {"dicom_files": len(files), "labelled_images": int(len(labels)),
              "unannotated": int((~annotated).sum()), "labels_without_file": int((~labels.index.isin(df["image"])).sum())}
    df = df[annotated].join(labels, on="image")
    df = df.sort_values(["series", "z"]).reset_index(drop=True)
    df["position"] = df.groupby("series").cumcount() / df.groupby("series")["z"].transform("count").clip(lower=2).sub(1)
    return df, pd.DataFrame(skips, columns=["file", "reason"]), counts


def middle_slices(df: pd.DataFrame, *, middle_fraction: float) -> pd.DataFrame:
    """Experiment 2's clean set: only the middle `middle_fraction` of each series (skull base and vertex
    slices vary most); 1.0 keeps every slice."""
    if not 0 < middle_fraction <= 1:
        raise ValueError(f"middle_fraction must be in (0, 1], got {middle_fraction}")
    half = middle_fraction / 2
    return df[(df["position"] >= 0.5 - half - 1e-9) & (df["position"] <= 0.5 + half + 1e-9)].reset_index(drop=True)


# ----------------------------------------------------------------------------- decode-once slice store
#: the preprocessing's version in the store's key: bump it whenever `prepare_slice` changes its bytes
PREPROCESSING_VERSION = 1


def prepare_slice(file: str, *, load_size: int) -> torch.Tensor:
    """DICOM -> HU -> background removed -> brain/subdural/bone windows -> (3, load_size, load_size) float16."""
    stack = torch.from_numpy(window_stack(remove_background(read_hu(file))))
    stack = F.interpolate(stack[None], size=(load_size, load_size), mode="bilinear", antialias=True,
                          align_corners=False)[0]
    return stack.clamp(0, 1).to(torch.float16)


class _DecodeSlice:  # picklable for DiskArrays' forked decoders (one torch thread each: parallel.progress_imap)
    def __init__(self, load_size: int):
        self.load_size = load_size

    def __call__(self, file: str) -> np.ndarray:
        try:
            return prepare_slice(file, load_size=self.load_size).numpy()
        except DicomError:
            raise  # the file's fault: DiskArrays records it in the skip log with its reason
        except ValueError as exc:  # any other ValueError is a bug, not a bad file: it stops the run, as before
            raise RuntimeError(f"{file}: {exc}") from exc


def _stamp_time(folder: Path) -> int | None:
    try:
        return (folder / STAMP).stat().st_mtime_ns
    except OSError:
        return None


class _LazyTensors(Mapping):
    """The store's slices as a read-only mapping image -> tensor, each read from disk when asked for."""

    def __init__(self, store: "SliceStore"):
        self.store = store

    def __getitem__(self, image: str) -> torch.Tensor:
        if image not in self.store:
            raise KeyError(image)
        return self.store.get(image)

    def __iter__(self):
        return iter(self.store.images)

    def __len__(self) -> int:
        return len(self.store)


class SliceStore:
    """Prepared slices by image ID, decoded once into an on-disk `DiskArrays` store and read back lazily:
    later epochs, splits, models and runs reuse the bytes, and memory holds only the index.

    `load(df)` decodes `df`'s files (on `n_jobs` processes) into ``data_dir()/ich/slices-<load_size>px-<source>``,
    keyed on the files' listing (`io.index.listing_key`: names, sizes, modification times), `load_size` and
    `PREPROCESSING_VERSION`; the same key reuses the folder without decoding, another rebuilds it, and a
    killed build leaves nothing that looks complete (`medvid_core.cache.ensure`). A file that fails
    (corrupt, truncated, no decoder) becomes a row of `skip_log` (file, reason) and is left out of the
    returned frame, nothing else is. `get(image)` / `stack(images)` read float16 tensors from disk.
    """

    def __init__(self, *, load_size: int, folder: str | Path | None = None):
        self.load_size, self.folder = load_size, None if folder is None else Path(folder)
        self.arrays: DiskArrays | None = None
        self._file_of: dict[str, str] = {}
        self.decode_seconds = 0.0
        self.built = False  # whether the last `load` decoded (False: it reused the folder's finished store)

    def default_folder(self, files: list[str]) -> Path:
        """One folder per source directory and load size (another max_slices or a changed folder rebuilds it)."""
        source = hashlib.sha256("\n".join(sorted({str(Path(f).parent.resolve()) for f in files})).encode())
        return data_dir() / STUDY / f"slices-{self.load_size}px-{source.hexdigest()[:12]}"

    def load(self, df: pd.DataFrame, *, n_jobs: int = 1) -> pd.DataFrame:
        clock = timed()
        files = [str(f) for f in df["file"]]
        folder = self.folder or self.default_folder(files)
        key = {"study": STUDY, "listing": listing_key(files), "load_size": self.load_size,
               "preprocessing": PREPROCESSING_VERSION}
        before = _stamp_time(folder)
        self.arrays = DiskArrays.build(folder, key=key, names=files, decode=_DecodeSlice(self.load_size),
                                       n_jobs=n_jobs, desc=f"decoding slices at {self.load_size} px")
        self.folder, self.built = folder, _stamp_time(folder) != before
        self._file_of = {image: file for image, file in zip(df["image"], files) if file in self.arrays}
        self.decode_seconds += clock.stop().wall
        return df[df["image"].isin(self._file_of.keys())].reset_index(drop=True)

    @property
    def skip_log(self) -> pd.DataFrame:
        if self.arrays is None:
            return pd.DataFrame(columns=["file", "reason"])
        return self.arrays.skipped.rename(columns={"name": "file"})[["file", "reason"]].reset_index(drop=True)

    def __len__(self) -> int:
        return len(self._file_of)

    def __contains__(self, image: str) -> bool:
        return image in self._file_of

    @property
    def images(self) -> list[str]:
        return list(self._file_of)

    @property
    def tensors(self) -> Mapping:
        """image -> tensor, lazily (`len(store.tensors)` counts the decoded slices)."""
        return _LazyTensors(self)

    def nbytes(self) -> int:
        return self.arrays.nbytes() if self.arrays is not None else 0

    def get(self, image: str) -> torch.Tensor:
        return torch.from_numpy(self.arrays.get(self._file_of[image]))

    def stack(self, images) -> torch.Tensor:
        return torch.stack([self.get(i) for i in images])


#: mean/std of the training slices are computed from at most this many bytes of float32 pixels: 2,730 slices
#: at 64 px (every training slice of the shipped cohorts, so their numbers are the old ones), 170 random
#: slices at 256 px (11M pixels per channel: plenty for two statistics). The computation's float copies
#: peak at about 2.5 times this, whatever the cohort's size (benchmarks/memory_scaling.py).
MEAN_STD_BYTES = 128 * 2**20


def mean_std_rows(n: int, *, load_size: int, seed: int = 0) -> np.ndarray:
    """Which of `n` training rows the standardisation statistics are computed from: all of them when their
    float32 copy fits `MEAN_STD_BYTES` (the computation of old, on the same stacked tensor), else a random
    `MEAN_STD_BYTES`-sized subset (sorted, NumPy's generator: torch's random draws are untouched)."""
    k = max(1, MEAN_STD_BYTES // (3 * load_size * load_size * 4))
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def sample_slices(df: pd.DataFrame, *, max_slices: int, seed: int = 0) -> pd.DataFrame:
    """`max_slices` rows drawn at random with `seed` (NumPy's generator), in their original order; 0 (or more
    than there are) keeps every row."""
    if max_slices < 0:
        raise ValueError(f"max_slices must be 0 (all) or more, got {max_slices}")
    if max_slices == 0 or max_slices >= len(df):
        return df
    keep = np.sort(np.random.default_rng(seed).choice(len(df), size=max_slices, replace=False))
    return df.iloc[keep].reset_index(drop=True)


# ----------------------------------------------------------------------------- splits, leakage, balance
def split(df: pd.DataFrame, *, by: str, test_size: float = 0.15, seed: int = 0):
    """`by="slices"`: slices randomised regardless of subject (the leaky protocol); `by="subjects"`: all
    slices of a subject on one side, subjects stratified by whether they bleed. Returns (train, test, report)
    with `leakage_report`'s subject overlap."""
    if by == "slices":
        train, test = stratified_split(df, df["any"], test_size=test_size, seed=seed)  # warns if it cannot
    elif by == "subjects":
        subj = df.groupby("subject")["any"].max()
        # a plain array: sklearn cannot index a pyarrow-backed string Index (pandas 3 with pyarrow installed)
        tr, te = stratified_split(subj.index.to_numpy(dtype=object), subj.values, test_size=test_size, seed=seed)
        train, test = df[df["subject"].isin(tr)], df[df["subject"].isin(te)]
    else:
        raise ValueError(f"split: by must be 'slices' or 'subjects', got {by!r}")
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    return train, test, leakage_report(train, test, key="subject")


def hybrid_resample(labels, *, seed: int = 0) -> np.ndarray:
    """Row indices after the hybrid balancing: the majority class under-sampled and the minority class
    over-sampled (with replacement), both to the mean of the two class sizes."""
    y = np.asarray(labels).astype(int)
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if len(pos) == 0 or len(neg) == 0:
        return np.arange(len(y))
    target = (len(pos) + len(neg)) // 2
    take = lambda idx: rng.choice(idx, size=target, replace=len(idx) < target)  # noqa: E731
    return np.sort(np.concatenate([take(pos), take(neg)]))


def pos_weight(targets: np.ndarray) -> torch.Tensor:
    """Class weights for BCE: negatives / positives per output (1 where an output has no positive)."""
    t = np.asarray(targets, dtype=float).reshape(len(targets), -1)
    pos = t.sum(0)
    return torch.tensor(np.where(pos > 0, (len(t) - pos) / np.maximum(pos, 1), 1.0), dtype=torch.float32)


class SliceDataset(Dataset):
    """Prepared slices -> standardised (3, image_size, image_size) with a random crop (train) or the centre crop.

    `store` is read lazily: item i is `store.get(images[i])` (a `SliceStore`, or any object with `get(image)`
    returning the float16 (3, load_size, load_size) tensor), so a dataset holds its image IDs, not its pixels."""

    def __init__(self, store, images, y: torch.Tensor, *, image_size: int, mean, std, train: bool):
        self.store, self.images = store, list(images)
        self.y, self.image_size, self.train = y, image_size, train
        self.mean, self.std = torch.as_tensor(mean).view(3, 1, 1), torch.as_tensor(std).view(3, 1, 1)
        if len(self.images) != len(self.y):
            raise ValueError(f"SliceDataset: {len(self.images)} images but {len(self.y)} targets")

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        img, s = self.store.get(self.images[i]).float(), self.image_size
        h = img.shape[-1]
        top, left = ((int(torch.randint(0, h - s + 1, (1,))), int(torch.randint(0, h - s + 1, (1,))))
                     if self.train else ((h - s) // 2, (h - s) // 2))
        return (img[:, top:top + s, left:left + s] - self.mean) / self.std, self.y[i]


# ----------------------------------------------------------------------------- models
HEADS = {"cnn4": "fc", "vgg16": "classifier.6", "resnet152": "fc"}


def build_model(name: str, *, num_outputs: int, cnn4_width: int = 32, vgg_width: float = 1.0,
                resnet_width: float = 1.0) -> nn.Module:
    """CNN4, VGG16 or ResNet-152 from random init (no ImageNet weights here) with parallel sigmoid heads."""
    if name == "cnn4":
        return get_model("cnn4", num_outputs=num_outputs, width=cnn4_width)
    if name == "vgg16":
        return replace_head(get_model("vgg16", num_classes=num_outputs, width=vgg_width), HEADS[name], num_outputs,
                            head=ParallelHeads)
    if name == "resnet152":
        return replace_head(get_model("resnet152", num_classes=num_outputs, width=resnet_width), HEADS[name],
                            num_outputs, head=ParallelHeads)
    raise ValueError(f"build_model: unknown model {name!r}; choose from {', '.join(HEADS)}")


# ----------------------------------------------------------------------------- one training run
@dataclass
class Trial:
    model_name: str
    task: str
    model: nn.Module
    history: list
    test: pd.DataFrame  # test rows with prob_<subtype> columns added
    scores: dict
    params_m: float
    train_rows: int
    seconds: float
    extra: dict = field(default_factory=dict)


def _columns(task: str) -> list[str]:
    return ["any"] if task == "binary" else BLEEDS


def run_trial(model_name: str, train_df: pd.DataFrame, test_df: pd.DataFrame, *, store: SliceStore, task: str,
              image_size: int, epochs: int, lr: float, optimizer: str = "adam", batch_size: int = 32,
              balance: str = "class_weights", val_fraction: float = 0.2, plateau_patience: int = 5,
              cnn4_width: int = 32, vgg_width: float = 1.0, resnet_width: float = 1.0, seed: int = 0,
              device: str = "cpu", num_workers: int = 0) -> Trial:
    """Train `model_name` on `train_df` (an 80/20 train/val split of it, split the way train/test were),
    keep the best-validation-loss epoch, and score it on `test_df`.

    task: "binary" (any hemorrhage) or "multilabel" (five parallel subtype heads; `any` = max of the five).
    optimizer: "adam" (Adam, constant lr) or "sgd" (momentum 0.9, lr x0.1 when the val loss plateaus).
    balance: "none", "class_weights" (BCE pos_weight) or "hybrid" (under/over-sampling of the training rows).
    num_workers: DataLoader worker processes (`medvid_core.data.worker_options`; 0 loads in this process).

    Slices are read lazily from `store`; the standardisation mean/std come from the training rows'
    stacked slices, at most `MEAN_STD_BYTES` of them (`mean_std_rows`).
    """
    if task not in ("binary", "multilabel"):
        raise ValueError(f"task must be 'binary' or 'multilabel', got {task!r}")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if balance not in ("none", "class_weights", "hybrid"):
        raise ValueError(f"balance must be 'none', 'class_weights' or 'hybrid', got {balance!r}")
    clock = timed()
    seed_everything(seed)
    device = resolve_device(device)
    cols = _columns(task)
    by = "subjects" if not set(train_df["subject"]) & set(test_df["subject"]) else "slices"
    fit_df, val_df, _ = split(train_df, by=by, test_size=val_fraction, seed=seed + 1)
    rows = hybrid_resample(fit_df["any"], seed=seed) if balance == "hybrid" else np.arange(len(fit_df))
    fit_rows = fit_df.iloc[rows]
    x_stats = store.stack(fit_rows["image"].iloc[mean_std_rows(len(fit_rows), load_size=store.load_size, seed=seed)])
    mean = x_stats.float().mean(dim=(0, 2, 3))
    std = x_stats.float().std(dim=(0, 2, 3)).clamp_min(1e-3)
    del x_stats

    def loader(df, train):
        y = torch.tensor(df[cols].to_numpy(), dtype=torch.float32)
        ds = SliceDataset(store, df["image"], y, image_size=image_size, mean=mean, std=std, train=train)
        g = torch.Generator().manual_seed(seed)
        return DataLoader(ds, batch_size=batch_size, shuffle=train, generator=g, drop_last=train and len(ds) > batch_size,
                          **worker_options(num_workers))

    fit_loader = loader(fit_rows, True)
    val_loader = loader(val_df, False)
    test_loader = loader(test_df, False)
    weight = pos_weight(fit_rows[cols].to_numpy()) if balance == "class_weights" else None
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=weight).to(device)  # pos_weight is a buffer: on the model's device
    model = build_model(model_name, num_outputs=len(cols), cnn4_width=cnn4_width, vgg_width=vgg_width,
                        resnet_width=resnet_width)
    history = fit(model, fit_loader, epochs=epochs, lr=lr, loss_fn=loss_fn,
                  optimizer="sgd" if optimizer == "sgd" else "adamw", momentum=0.9, weight_decay=0.0, head=None,
                  schedule="plateau" if optimizer == "sgd" else "constant", plateau_patience=plateau_patience,
                  val_loader=val_loader, early_stopping=epochs, device=device,
                  desc=f"{model_name}/{task}/{by}")
    ev = evaluate(model, test_loader, loss_fn=loss_fn, device=device)
    probs = torch.sigmoid(ev["outputs"]).numpy()
    test = test_df.copy()
    for k, c in enumerate(cols):
        test[f"prob_{c}"] = probs[:, k]
    if task == "multilabel":
        test["prob_any"] = probs.max(axis=1)
    width = {"cnn4": cnn4_width, "vgg16": vgg_width, "resnet152": resnet_width}[model_name]
    return Trial(model_name, task, model, list(history), test, score(test, task), count_parameters(model) / 1e6,
                 len(fit_rows), clock.stop().wall, {"best_epoch": history.best_epoch, "split": by, "width": width,
                                                    "image_size": image_size, "epochs": epochs, "lr": lr})


def score(test: pd.DataFrame, task: str) -> dict:
    """Binary: accuracy/recall/precision/F1/AUC of `any`. Multi-label: those per subtype and for `any`, the mean
    subtype accuracy (the seed's "average across all classes") and the RSNA weighted log loss."""
    out = {"any": binary_scores(test["any"], test["prob_any"])}
    if task == "multilabel":
        for c in BLEEDS:
            out[c] = binary_scores(test[c], test[f"prob_{c}"])
        out["mean_accuracy"] = float(np.mean([out[c]["accuracy"] for c in BLEEDS]))
        out["weighted_log_loss"] = weighted_log_loss(test[list(SUBTYPES)].to_numpy(),
                                                     test[[f"prob_{c}" for c in SUBTYPES]].to_numpy())
    return out


MIN_POSITIVE_HEADS = 5  # an AUC is checked against the reference only when its positives lie in this many heads


def _accuracy_at_half(targets, probs) -> float:
    return float(((np.asarray(probs) >= 0.5) == np.asarray(targets).astype(bool)).mean())


def _head_auc(t: Trial, c: str = "any") -> Measure | None:
    """AUC of column `c` with its 95% bootstrap interval over test heads; None when its positive slices lie in
    fewer than `MIN_POSITIVE_HEADS` heads or the interval is undefined (see `measures`)."""
    if t.test.loc[t.test[c] == 1, "subject"].nunique() < MIN_POSITIVE_HEADS:
        return None
    m = bootstrap_measure(auc_score, t.test[c].to_numpy(), t.test[f"prob_{c}"].to_numpy(),
                          groups=t.test["subject"].to_numpy(), chance=0.5)
    return m if np.isfinite(m.low) else None


def _head_accuracy(t: Trial) -> Measure:
    """Accuracy of `any` at 0.5 with its 95% bootstrap interval over test heads; its chance level is the
    accuracy of answering "no bleed" everywhere, so a reference that does not beat that answer is recorded and
    printed but not held to (`reference.compare`): at laptop size the thresholded answer of these short runs
    sits near it and moves with the kernels (natively, experiment 1's accuracy and the binary head's left a
    tolerance recorded with pinned kernels)."""
    y = t.test["any"].to_numpy()
    return bootstrap_measure(_accuracy_at_half, y, t.test["prob_any"].to_numpy(), groups=t.test["subject"].to_numpy(),
                             chance=float(1 - y.mean()))


def _head_log_loss(t: Trial) -> Measure:
    """The RSNA weighted log loss of a multi-label trial with its 95% bootstrap interval over test heads."""
    y, p = t.test[list(SUBTYPES)].to_numpy(), t.test[[f"prob_{c}" for c in SUBTYPES]].to_numpy()
    return bootstrap_measure(weighted_log_loss, y, p, groups=t.test["subject"].to_numpy())


def measures(leak_trials: dict, exp2: dict, exp1: Trial | None = None,
             sgd_trials: dict | None = None) -> dict[str, Measure]:
    """The trained results that `medvid_core.reference.check` compares with the committed reference, each
    with its 95% bootstrap interval over test **heads** (a head's slices are not independent, on a slice
    split too): the leakage runs' AUC and accuracy of `any`; experiment 1's AUC and accuracy; experiment 2's
    AUC per subtype (and of `any`), the binary head's accuracy and the multi-label weighted log loss; each SGD
    run's AUC of `any` and weighted log loss. An AUC whose positive slices lie in fewer than
    `MIN_POSITIVE_HEADS` test heads is left out: resampling one or two heads cannot show how far such an AUC
    moves (with the defaults, epidural's 4 positive slices sit in one head, and its interval came out
    0.70-0.81 while a rerun on other kernels scored 0.55)."""
    out = {}
    for (model, by), t in leak_trials.items():
        y, p, g = t.test["any"].to_numpy(), t.test["prob_any"].to_numpy(), t.test["subject"].to_numpy()
        out[f"leakage {model}/{by} auc"] = bootstrap_measure(auc_score, y, p, groups=g, chance=0.5)
        out[f"leakage {model}/{by} accuracy"] = bootstrap_measure(_accuracy_at_half, y, p, groups=g)
    if exp1 is not None:
        if (m := _head_auc(exp1)) is not None:
            out["exp1 auc"] = m
        out["exp1 accuracy"] = _head_accuracy(exp1)
    for task, t in exp2.items():
        for c in _columns(task) + (["any"] if task == "multilabel" else []):
            if (m := _head_auc(t, c)) is not None:
                out[f"exp2 {task} {c} auc"] = m
        if task == "binary":
            out["exp2 binary accuracy"] = _head_accuracy(t)
        else:
            out[f"exp2 {task} weighted log loss"] = _head_log_loss(t)
    for run, t in (sgd_trials or {}).items():
        if (m := _head_auc(t)) is not None:
            out[f"sgd {run} any auc"] = m
        out[f"sgd {run} weighted log loss"] = _head_log_loss(t)
    return out


def leak_words(leak: pd.DataFrame) -> str:
    """The leakage table in words: each network's slice-split and subject-split AUC and their gap."""
    t = leak.set_index(["model", "split"])
    parts = []
    for model in dict.fromkeys(leak["model"]):
        s, u = t.loc[(model, "slices"), "auc"], t.loc[(model, "subjects"), "auc"]
        size = "a leak of the seed's size" if s - u >= 0.2 else "a clear leak" if s - u >= 0.1 else \
            "no clear leak" if s - u > -0.05 else "the subject split ahead"
        parts.append(f"{model.upper()} scores AUC {s:.2f} on the slice split against {u:.2f} on the subject split "
                     f"({s - u:+.2f}: {size})")
    return "In this run " + "; ".join(parts) + "."


def _compare(ours: float, other: float) -> str:
    """"above", "below" or "equal to" at two decimals, as the tables show them ("undefined against" for NaN)."""
    if not np.isfinite(ours):
        return "undefined against"
    return "above" if round(ours, 2) > round(other, 2) else "below" if round(ours, 2) < round(other, 2) else "equal to"


def exp1_words(exp1: Trial, leak: pd.DataFrame | None = None) -> str:
    """Experiment 1 in words: the draw, the split it used and what that split means (the leakage section),
    and its scores against the seed's, from the trial and (when it has `exp1`'s network) the leakage table."""
    e, s, rep = exp1.extra, exp1.scores["any"], exp1.extra["leakage"]
    text = (f"Experiment 1 drew {e['drawn']} of the {e['available']} labelled slices at random (asked for "
            f"{e['asked'] or 'all'}; the seed drew {PAPER_EXP1_SLICES:,} of RSNA's) and split them "
            f"{1 - e['test_size']:.0%}/{e['test_size']:.0%} **by slice**, as the seed did: {rep['n_shared']} of the "
            f"{rep['n_test']} test heads also have slices in the training set, and they hold "
            f"{rep['test_fraction_shared']:.0%} of the test slices. That is the slice-randomised protocol of the "
            "leakage section: on the shared heads' slices the network has seen the head before, so its scores can "
            "include what it learnt about those heads (anatomy, scanner, position) besides blood, and do not "
            "estimate how it does on new patients.")
    if leak is not None and exp1.model_name in set(leak["model"]):
        t = leak.set_index(["model", "split"])
        sl, su = t.loc[(exp1.model_name, "slices"), "auc"], t.loc[(exp1.model_name, "subjects"), "auc"]
        text += (f" In the leakage table above the same network scores AUC {sl:.2f} on a slice split and {su:.2f} "
                 f"on a subject split ({sl - su:+.2f}); the subject split is the estimate for new heads.")
    text += (f" {exp1.model_name.upper()} (width {e['width']:g}, {e['image_size']}-pixel crops, {e['epochs']} epochs) "
             "scores " + ", ".join(f"{name} {s[k]:.2f} ({_compare(s[k], PAPER_EXPERIMENT1[k])} the seed's "
                                   f"{PAPER_EXPERIMENT1[k]:.3g})" for k, name in
                                   (("accuracy", "accuracy"), ("recall", "recall"), ("f1", "F1"), ("auc", "AUC"))) + ".")
    base = 1 - float(exp1.test["any"].mean())
    text += (f" Answering \"no bleed\" everywhere would score accuracy {base:.2f} on these test slices, so the accuracy "
             f"is {_compare(s['accuracy'], base)} that answer; the AUC, which does not depend on a threshold, is the "
             "number to compare.")
    if s["recall"] == 0:
        text += " It never predicts a bleed at the 0.5 threshold (recall 0): that operating point is degenerate."
    return text


def exp2_words(exp2: dict, heads: dict) -> str:
    """Experiment 2 in words: the binary head's accuracy against the seed's 84 % and the all-negative answer,
    at the size it ran; the multi-label result from its scores and the within-head AUCs."""
    parts = []
    if "binary" in exp2:
        t = exp2["binary"]
        e, s, base = t.extra, t.scores["any"], 1 - float(t.test["any"].mean())
        parts.append(f"The binary {t.model_name} ran at width {e['width']:g} ({t.params_m:.2f} M parameters) on "
                     f"{e['image_size']}-pixel crops for {e['epochs']} epochs (the seed's: width 1 at 224 pixels, "
                     f"`params/ich/paper.yaml`). It scores accuracy {s['accuracy']:.2f} on the test slices of new "
                     f"heads, against the seed's {PAPER_EXPERIMENT2['binary_accuracy']:.2f}; answering \"no bleed\" "
                     f"everywhere scores {base:.2f} here, so the model is {_compare(s['accuracy'], base)} that answer, "
                     f"with recall {s['recall']:.2f} and AUC {s['auc']:.2f}.")
    if "multilabel" in exp2:
        t, h = exp2["multilabel"], heads.get("multilabel", {"per_group": {}, "mean": float("nan")})
        aucs = {c: t.scores[c]["auc"] for c in BLEEDS}
        above = sorted((c for c, a in aucs.items() if a > 0.5), key=lambda c: -aucs[c])
        pos = {c: int(t.test[c].sum()) for c in BLEEDS}
        few = [c for c in BLEEDS if pos[c] < 10]
        per = list(h["per_group"].values())
        text = (f"In this run the multi-label model's pooled AUC is above chance for {len(above)} of 5 subtypes ("
                + ", ".join(f"{c} {aucs[c]:.2f}" for c in above) + f") and {t.scores['any']['auc']:.2f} for `any`.")
        if per:
            text += (f" Inside the {len(per)} bleeding test heads the AUC of `any` averages {h['mean']:.2f} "
                     f"(from {min(per):.2f} to {max(per):.2f}): "
                     + ("the model ranks a head's bleeding slices above its clean ones more often than not."
                        if h["mean"] > 0.6 else "the model tells bleeding heads from clean ones better than it finds "
                        "the bleeding slices inside a head."))
        if few:
            text += (" " + ", ".join(f"{c} has {pos[c]}" for c in few)
                     + " positive test slice(s), so one head can swing its AUC.")
        parts.append(text)
    return "\n\n".join(parts)


def sgd_words(sweep: pd.DataFrame) -> str:
    """The SGD sweep in words: not run (and where it is), or each run's scores and the best by AUC of `any`."""
    paper = "; ".join(f"lr {r.lr:g} for {r.epochs} epochs" for r in PAPER_SGD_RUNS.itertuples())
    if sweep.empty:
        return (f"Not run here: `exp2_sgd_runs` is empty in the laptop defaults. `params/ich/paper.yaml` runs the "
                f"seed's three ({paper}; SGD, momentum 0.9, batch 32, lr x0.1 on a plateau) on experiment 2's split. "
                f"The seed reports one figure for them, {PAPER_EXPERIMENT2['multilabel_mean_accuracy']:.0%} mean "
                "accuracy across the classes.")
    top = sweep[sweep["auc_any"].round(2) == sweep["auc_any"].round(2).max()]
    text = (f"{len(sweep)} SGD run(s) of the multi-label model (the seed's: {paper}): "
            + "; ".join(f"lr {r.lr:g} for {r.epochs} epochs gives mean subtype accuracy {r.mean_accuracy:.2f}, "
                        f"AUC of `any` {r.auc_any:.2f} and weighted log loss {r.weighted_log_loss:.2f} "
                        f"(best epoch {r.best_epoch})" for r in sweep.itertuples()) + ".")
    if len(sweep) > 1 and len(top) == 1:
        text += f" By AUC of `any` the best is lr {top['lr'].iloc[0]:g}."
    return text


def findings(leak: pd.DataFrame, exp2: dict, exp1: Trial | None = None) -> list[dict]:
    """The seed's headline claims against this run (`medvid_core.findings`): the leak for each network
    (slice-split AUC minus subject-split AUC, held when at least 0.10); experiment 1's CNN above chance (its
    AUC's 95% interval over test heads above 0.5); experiment 2's binary accuracy and multi-label mean
    subtype accuracy against the always-"no bleed" answer."""
    out = []
    paper = PAPER_LEAKAGE.set_index(["model", "split"])
    ours = leak.set_index(["model", "split"])
    for model in dict.fromkeys(leak["model"]):
        gap = ours.loc[(model, "slices"), "auc"] - ours.loc[(model, "subjects"), "auc"]
        p = paper.loc[model, "auc"]
        out.append(finding(f"{model.upper()}: a slice-randomised split scores above a subject-randomised one (the leak)",
                           paper=f"AUC {p['slices']:.2f} vs {p['subjects']:.2f} ({p['slices'] - p['subjects']:+.2f})",
                           ours=gap, unit="AUC", holds=gap >= 0.10, rule="slice-split AUC - subject-split AUC >= 0.10"))
    if exp1 is not None:
        auc = _head_auc(exp1)
        value = exp1.scores["any"]["auc"] - 0.5
        out.append(finding("Experiment 1: the authors' CNN on an 80/20 random slice split finds bleeding slices "
                           "above chance",
                           paper="accuracy {accuracy:.3g}, recall {recall:.3g}, F1 {f1:.3g}, AUC {auc:.3g}".format(
                               **PAPER_EXPERIMENT1),
                           ours=value, unit="AUC over chance", holds=None if auc is None else auc.low > 0.5,
                           rule="the AUC's 95% bootstrap interval over test heads lies above 0.5"))
    if "binary" in exp2:
        t = exp2["binary"]
        gain = t.scores["any"]["accuracy"] - (1 - float(t.test["any"].mean()))
        out.append(finding("Binary ResNet-152: accuracy above answering 'no bleed' everywhere",
                           paper=f"{PAPER_EXPERIMENT2['binary_accuracy']:.2f} accuracy (no baseline given)",
                           ours=gain, unit="accuracy", holds=gain > 0,
                           rule="accuracy - that of the all-negative answer > 0"))
    if "multilabel" in exp2:
        t = exp2["multilabel"]
        gain = t.scores["mean_accuracy"] - float(np.mean([1 - t.test[c].mean() for c in BLEEDS]))
        out.append(finding("Multi-label ResNet-152: mean subtype accuracy above answering 'no bleed' everywhere",
                           paper=f"{PAPER_EXPERIMENT2['multilabel_mean_accuracy']:.2f} mean accuracy (no baseline given)",
                           ours=gain, unit="accuracy", holds=gain > 0,
                           rule="mean subtype accuracy - that of the all-negative answer > 0"))
    return out


# ----------------------------------------------------------------------------- tables
def _per_model(value, models: list[str], name: str) -> dict:
    """One value for every model, or a mapping with one per model (a missing model is a ValueError)."""
    per = value if isinstance(value, dict) else dict.fromkeys(models, value)
    missing = [m for m in models if m not in per]
    if missing:
        raise ValueError(f"{name} has no value for {', '.join(missing)}; it has {sorted(per)}")
    return per


def leakage_table(df: pd.DataFrame, *, store: SliceStore, leakage_models: list[str], leakage_epochs: int | dict[str, int],
                  leakage_lr: float | dict[str, float], leakage_optimizer: str = "adam", leakage_balance: str = "class_weights",
                  test_size: float = 0.15, seed: int = 0, **trial_kw) -> tuple[pd.DataFrame, dict]:
    """The seed's leakage experiment: each model trained and tested on a slice-randomised and on a
    subject-randomised 85/15 split (binary `any`), with the subject overlap `leakage_report` finds.
    Returns (table, trials keyed by (model, split)); `trial_kw` goes to `run_trial`.
    `leakage_lr`: one Adam learning rate, or one per model ({"cnn4": 1e-3, "vgg16": 1e-4}: a VGG16
    without batch norm trained from scratch needs the smaller step). `leakage_epochs`: likewise (a laptop
    run gives the small CNN4 the epochs it needs to memorise heads, and the slower VGG16 fewer)."""
    rates = _per_model(leakage_lr, leakage_models, "leakage_lr")
    epochs = _per_model(leakage_epochs, leakage_models, "leakage_epochs")
    rows, trials = [], {}
    for by in ("slices", "subjects"):
        train, test, report = split(df, by=by, test_size=test_size, seed=seed)
        for name in leakage_models:
            t = run_trial(name, train, test, store=store, task="binary", epochs=epochs[name], lr=rates[name],
                          optimizer=leakage_optimizer, balance=leakage_balance, seed=seed, **trial_kw)
            trials[(name, by)] = t
            s = t.scores["any"]
            rows.append({"model": name, "split": by, "accuracy": s["accuracy"], "recall": s["recall"],
                         "f1": s["f1"], "auc": s["auc"], "shared_subjects": report["n_shared"],
                         "test_subjects": report["n_test"],
                         "test_slices_of_shared_subjects": report["test_fraction_shared"],
                         "train_slices": t.train_rows, "test_slices": len(test), "params_m": t.params_m,
                         "best_epoch": t.extra["best_epoch"], "seconds": t.seconds})
    return pd.DataFrame(rows), trials


def experiment1(df: pd.DataFrame, *, store: SliceStore, exp1_model: str = "cnn4", exp1_slices: int = PAPER_EXP1_SLICES,
                exp1_epochs: int = 50, exp1_lr: float = 1e-3, exp1_balance: str = "class_weights",
                exp1_test_size: float = PAPER_EXP1_TEST_SIZE, seed: int = 0, **trial_kw) -> Trial:
    """The authors' experiment 1: `exp1_slices` labelled slices drawn at random with `seed` (`sample_slices`;
    the seed drew 10,000 of RSNA's, 0 = all), split `exp1_test_size` **by slice** (`split(by="slices")`,
    stratified on `any`, subjects ignored: one head can land on both sides), `exp1_model` trained on the binary
    task with Adam at `exp1_lr` and BCE with logits. The draw is experiment 1's own: the leakage table and
    experiment 2 keep every slice. Returns its Trial; `extra` holds the split's `leakage_report` and the draw."""
    drawn = sample_slices(df, max_slices=exp1_slices, seed=seed)
    train, test, report = split(drawn, by="slices", test_size=exp1_test_size, seed=seed)
    t = run_trial(exp1_model, train, test, store=store, task="binary", epochs=exp1_epochs, lr=exp1_lr,
                  optimizer="adam", balance=exp1_balance, seed=seed, **trial_kw)
    t.extra.update(leakage=report, drawn=len(drawn), available=len(df), asked=exp1_slices, test_size=exp1_test_size)
    return t


def experiment1_table(trial: Trial) -> pd.DataFrame:
    """Experiment 1's accuracy, recall, F1 and AUC beside the seed's (rounded)."""
    return pd.DataFrame({"ours": {k: trial.scores["any"][k] for k in PAPER_EXPERIMENT1},
                         "paper": PAPER_EXPERIMENT1}).rename_axis("metric").round(3)


def _exp2_split(df: pd.DataFrame, *, middle_fraction: float, test_size: float, seed: int):
    """Experiment 2's data: the middle slices, split by subject (train, test, leakage report)."""
    return split(middle_slices(df, middle_fraction=middle_fraction), by="subjects", test_size=test_size, seed=seed)


def experiment2(df: pd.DataFrame, *, store: SliceStore, exp2_model: str, exp2_tasks: list[str], exp2_epochs: int,
                exp2_lr: float, exp2_optimizer: str = "sgd", exp2_balance: str = "hybrid", middle_fraction: float = 0.6,
                test_size: float = 0.15, seed: int = 0, **trial_kw) -> dict:
    """The authors' experiment 2: middle slices only, a subject-level split, `exp2_model` with a binary head
    and/or five parallel subtype heads, SGD momentum 0.9 with reduce-on-plateau. Returns {task: Trial}."""
    train, test, report = _exp2_split(df, middle_fraction=middle_fraction, test_size=test_size, seed=seed)
    out = {}
    for task in exp2_tasks:
        out[task] = run_trial(exp2_model, train, test, store=store, task=task, epochs=exp2_epochs, lr=exp2_lr,
                              optimizer=exp2_optimizer, balance=exp2_balance, seed=seed, **trial_kw)
        out[task].extra["leakage"] = report
    return out


def sgd_sweep(df: pd.DataFrame, *, store: SliceStore, exp2_model: str, exp2_sgd_runs: list[dict],
              exp2_balance: str = "hybrid", middle_fraction: float = 0.6, test_size: float = 0.15, seed: int = 0,
              **trial_kw) -> tuple[pd.DataFrame, dict]:
    """Experiment 2's SGD runs (the seed's three: `PAPER_SGD_RUNS`): the multi-label `exp2_model` trained once
    per entry of `exp2_sgd_runs`, a mapping with `epochs` and `lr` (and optionally `run`, a name), on
    experiment 2's split, SGD momentum 0.9 with lr x0.1 on a plateau. Returns (one row per run: run, epochs,
    lr and its scores; {run: Trial}); an empty list trains nothing and gives an empty table."""
    for k, r in enumerate(exp2_sgd_runs):
        if not isinstance(r, Mapping) or not {"epochs", "lr"} <= set(r) or not set(r) <= {"run", "epochs", "lr"}:
            raise ValueError(f"exp2_sgd_runs[{k}] must be a mapping with epochs and lr (and optionally run), got {r!r}")
    rows, trials = [], {}
    if exp2_sgd_runs:
        train, test, _ = _exp2_split(df, middle_fraction=middle_fraction, test_size=test_size, seed=seed)
    for r in exp2_sgd_runs:
        name = str(r.get("run", f"lr={r['lr']:g}"))
        t = trials[name] = run_trial(exp2_model, train, test, store=store, task="multilabel", epochs=int(r["epochs"]),
                                     lr=float(r["lr"]), optimizer="sgd", balance=exp2_balance, seed=seed, **trial_kw)
        rows.append({"run": name, "epochs": int(r["epochs"]), "lr": float(r["lr"]),
                     "mean_accuracy": t.scores["mean_accuracy"], "auc_any": t.scores["any"]["auc"],
                     "weighted_log_loss": t.scores["weighted_log_loss"], "best_epoch": t.extra["best_epoch"],
                     "seconds": t.seconds})
    columns = ["run", "epochs", "lr", "mean_accuracy", "auc_any", "weighted_log_loss", "best_epoch", "seconds"]
    return pd.DataFrame(rows, columns=columns), trials


def sgd_side_by_side(sweep: pd.DataFrame) -> pd.DataFrame:
    """The seed's three SGD runs beside ours, matched on the learning rate (a run at another lr gets its own
    row; no timings: reproducible). The seed gives no score per run (one 84 % for the three)."""
    paper = PAPER_SGD_RUNS.rename(columns={"run": "paper_run", "epochs": "paper_epochs"})
    ours = sweep.drop(columns="seconds")
    return paper.merge(ours, on="lr", how="outer").set_index("lr").round(3)


def dataset_sizes(df: pd.DataFrame, *, middle_fraction: float = 0.6, test_size: float = 0.15,
                  exp1_slices: int = PAPER_EXP1_SLICES, exp1_test_size: float = PAPER_EXP1_TEST_SIZE,
                  seed: int = 0) -> pd.DataFrame:
    """Train/test slices of each experiment beside the seed's (its Table 4 for experiment 2; for experiment 1,
    10,000 slices split 80/20 as its text says). Deterministic: the draws and splits only, nothing trained.
    Our multi-label set is the binary one (the seed's further selection is not described)."""
    drawn = sample_slices(df, max_slices=exp1_slices, seed=seed)
    e1_train, e1_test, _ = split(drawn, by="slices", test_size=exp1_test_size, seed=seed)
    e2_train, e2_test, _ = _exp2_split(df, middle_fraction=middle_fraction, test_size=test_size, seed=seed)
    e1_paper = (round(PAPER_EXP1_SLICES * (1 - PAPER_EXP1_TEST_SIZE)), round(PAPER_EXP1_SLICES * PAPER_EXP1_TEST_SIZE))
    rows = [("exp. 1: random slices, by slice", len(e1_train), len(e1_test), *e1_paper),
            ("exp. 2 binary: middle slices, by subject", len(e2_train), len(e2_test), *PAPER_DATASETS["binary"]),
            ("exp. 2 multi-label: middle slices, by subject", len(e2_train), len(e2_test),
             *PAPER_DATASETS["multilabel"])]
    out = pd.DataFrame(rows, columns=["dataset", "train", "test", "paper_train", "paper_test"]).set_index("dataset")
    out["test_share"] = (out["test"] / (out["train"] + out["test"])).round(3)
    out["paper_test_share"] = (out["paper_test"] / (out["paper_train"] + out["paper_test"])).round(3)
    return out


def experiment2_table(trials: dict) -> pd.DataFrame:
    """Experiment 2's headline numbers beside the paper's and the always-"no bleed" answer's (rounded)."""
    rows = []
    if "binary" in trials:
        t = trials["binary"]
        s = t.scores["any"]
        rows += [{"result": "binary accuracy (any)", "ours": s["accuracy"], "no_bleed_answer": 1 - t.test["any"].mean(),
                  "paper": PAPER_EXPERIMENT2["binary_accuracy"]},
                 {"result": "binary recall (any)", "ours": s["recall"], "no_bleed_answer": 0.0, "paper": np.nan},
                 {"result": "binary AUC (any)", "ours": s["auc"], "no_bleed_answer": 0.5, "paper": np.nan}]
    if "multilabel" in trials:
        t = trials["multilabel"]
        s = t.scores
        rows += [{"result": "multi-label mean subtype accuracy", "ours": s["mean_accuracy"],
                  "no_bleed_answer": float(np.mean([1 - t.test[c].mean() for c in BLEEDS])),
                  "paper": PAPER_EXPERIMENT2["multilabel_mean_accuracy"]},
                 {"result": "multi-label RSNA weighted log loss", "ours": s["weighted_log_loss"],
                  "no_bleed_answer": np.nan, "paper": np.nan}]
    return pd.DataFrame(rows, columns=["result", "ours", "no_bleed_answer", "paper"]).set_index("result").round(2)


def leakage_side_by_side(ours: pd.DataFrame) -> pd.DataFrame:
    """Our leakage table next to the paper's (rounded to 2 decimals, no timings: reproducible)."""
    cols = ["accuracy", "recall", "f1", "auc"]
    paper = PAPER_LEAKAGE.set_index(["model", "split"])[cols].add_prefix("paper_")
    out = ours.set_index(["model", "split"])[cols + ["shared_subjects", "test_slices_of_shared_subjects"]]
    out = out.join(paper, how="left")
    return out[[c for pair in zip(cols, [f"paper_{c}" for c in cols]) for c in pair]
               + ["shared_subjects", "test_slices_of_shared_subjects"]].round(2)


def multilabel_table(trial: Trial) -> pd.DataFrame:
    """Per-subtype accuracy/recall/F1/AUC of a multi-label trial, plus `any`, rounded."""
    rows = [{"subtype": c, "positives": int(trial.test[c].sum()), **{k: trial.scores[c][k] for k in
             ("accuracy", "recall", "f1", "auc")}} for c in BLEEDS + ["any"]]
    return pd.DataFrame(rows).set_index("subtype").round(2)


def dataset_summary(df: pd.DataFrame, skip_log: pd.DataFrame, counts: dict) -> pd.DataFrame:
    """Our folder's counts beside the seed's count of the RSNA folder."""
    ours = {"dicom_files": counts["dicom_files"], "labelled_images": counts["labelled_images"],
            "unannotated": counts["unannotated"], "corrupt": len(skip_log)}
    out = pd.DataFrame({"ours": ours, "paper_rsna": PAPER_RSNA})
    out.loc["subjects", "ours"] = df["subject"].nunique()
    out.loc["any_positive_fraction", "ours"] = round(float(df["any"].mean()), 2)
    return out


# ----------------------------------------------------------------------------- figures
def windows_figure(file: str, *, path=None):
    """One slice: HU, background removed, each window, and the three stacked as RGB."""
    import matplotlib.pyplot as plt

    from medvid_core.plots import finish

    hu = read_hu(file)
    clean = remove_background(hu)
    stack = window_stack(clean)
    panels = [(hu_to_unit(hu, low=-1000, high=1000), "HU (-1000..1000)"),
              (hu_to_unit(clean, low=-1000, high=1000), "background removed"), (stack[0], "brain (40, 80)"),
              (stack[1], "subdural (80, 200)"), (stack[2], "bone (600, 2800)"), (stack.transpose(1, 2, 0), "stacked (R, G, B)")]
    fig, axes = plt.subplots(1, 6, figsize=(15, 2.9))
    for ax, (img, title) in zip(axes, panels):
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    finish(fig, path, show=True)


def class_balance_figure(df: pd.DataFrame, *, path=None):
    """The seed's Figures 4-6: positive vs negative slices, slices per subtype, 0/1 per label."""
    import matplotlib.pyplot as plt

    from medvid_core.plots import finish

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
    df["any"].map({0: "no ICH", 1: "ICH"}).value_counts().plot.bar(ax=axes[0], color=["tab:blue", "tab:red"])
    axes[0].set_title("slices with and without hemorrhage")
    df[BLEEDS].sum().sort_values(ascending=False).plot.bar(ax=axes[1], color="tab:red")
    axes[1].set_title("positive slices per subtype")
    counts = pd.DataFrame({c: df[c].value_counts().reindex([0, 1], fill_value=0) for c in SUBTYPES}).T
    counts.plot.bar(ax=axes[2], stacked=True, color=["tab:blue", "tab:red"])
    axes[2].set_title("labels 0 / 1 per column")
    for ax in axes:
        ax.tick_params(axis="x", rotation=30)
    finish(fig, path, show=True)


def roc_figure(trials: dict, *, path=None):
    """ROC curves: one panel per trial (label -> Trial); multi-label trials draw one curve per subtype."""
    import matplotlib.pyplot as plt

    from sklearn.metrics import roc_curve

    from medvid_core.plots import finish

    fig, axes = plt.subplots(1, len(trials), figsize=(4 * len(trials), 3.8), squeeze=False)
    for ax, (label, t) in zip(axes[0], trials.items()):
        for c in (BLEEDS + ["any"]) if t.task == "multilabel" else ["any"]:
            if t.test[c].nunique() == 2:
                fpr, tpr, _ = roc_curve(t.test[c], t.test[f"prob_{c}"])
                ax.plot(fpr, tpr, label=f"{c} ({t.scores[c]['auc']:.2f})")
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set(title=label, xlabel="false positive rate", ylabel="true positive rate")
        ax.legend(fontsize=7, loc="lower right")
    finish(fig, path, show=True)


def predictions_figure(trial: Trial, root: str | Path, *, n: int = 6, seed: int = 0, path=None):
    """Test slices in the brain window with the ground-truth bleed mask outlined, true and predicted subtypes."""
    import matplotlib.pyplot as plt

    from medvid_core.plots import finish

    test = trial.test
    rng = np.random.default_rng(seed)
    pos, neg = test.index[test["any"] == 1], test.index[test["any"] == 0]
    pick = list(rng.choice(pos, size=min(len(pos), n - n // 3), replace=False)) + \
        list(rng.choice(neg, size=min(len(neg), n // 3), replace=False))
    fig, axes = plt.subplots(1, len(pick), figsize=(2.6 * len(pick), 3.2), squeeze=False)
    for ax, i in zip(axes[0], pick):
        r = test.loc[i]
        ax.imshow(window_stack(remove_background(read_hu(r["file"])), ["brain"])[0], cmap="gray")
        mask_file = Path(root) / "masks" / f"{r['subject']}.npz"
        if mask_file.exists():
            m = np.load(mask_file)
            k = list(m["images"]).index(r["image"])
            if m["bits"][k].any():
                ax.contour(m["bits"][k] > 0, [0.5], colors="red", linewidths=0.8)
        true = "/".join(c for c in BLEEDS if r[c]) or "none"
        pred = "/".join(c for c in BLEEDS if r[f"prob_{c}"] >= 0.5) or "none"
        ax.set_title(f"true: {true}\npred: {pred}", fontsize=7)
        ax.axis("off")
    finish(fig, path, show=True)


def load_cohort(*, data_root: str = "", cohort_preset: str = "small", seed: int = 0, load_size: int = 256,
                n_jobs: int = 1, max_slices: int = 0) -> tuple[Path, pd.DataFrame, SliceStore, pd.DataFrame, dict]:
    """Cohort -> (root, usable slices, the store holding them decoded once, skip log, counts).

    The headers are indexed and the slices decoded on `n_jobs` processes, each once (both cached on disk,
    `SliceStore`). `max_slices` > 0 keeps that many labelled slices drawn at random with `seed` before any
    decoding (the seed's experiment 1 used 10,000), so only those are decoded; 0 keeps them all.
    The skip log lists every file left out and why (unreadable header, corrupt or undecodable pixels);
    `counts` has the folder's totals, the unannotated files and the usable slices."""
    root = cohort_root(data_root=data_root, cohort_preset=cohort_preset, seed=seed)
    df, header_skips, counts = index_cohort(root, n_jobs=n_jobs)
    if max_slices:
        df = sample_slices(df, max_slices=max_slices, seed=seed)
        counts["sampled_slices"] = len(df)
    store = SliceStore(load_size=load_size)
    kept = store.load(df, n_jobs=n_jobs)
    skip_log = pd.concat([header_skips, store.skip_log], ignore_index=True)
    counts.update(skipped=len(skip_log), usable_slices=len(kept))
    return root, kept, store, skip_log, counts
