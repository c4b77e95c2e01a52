"""MURA zoom, part two (Huschauer, ZHAW, Sec. IV-B2, Figs 5-6): finding the L/R marker flags with Faster R-CNN
and removing them, then asking whether the classifier's attention and kappa change.

The study's room. The archive, its datasets and the VGG19 baseline are `medvid_core.studies.mura_zoom`'s
(the same archive on disk: both notebooks share the preset parameters). Here:

* the boxes the detector learns from: flags and implants (the synthetic archive's ground truth, written
  as a COCO file beside it, or a real MURA download's annotations in a COCO file, `coco_json`), read by
  `medvid_core.io.coco` either way;
* torchvision's Faster R-CNN (`medvid_core.models.detection`) trained on `detector_images` annotated
  training images and scored on the validation images with pycocotools' box AP, and the paper's failure
  counted: implants that the detector takes for flags;
* the detected flags removed three ways (`medvid_core.transforms`): blanked, filled with the mean of a
  ring around the box, or inpainted (OpenCV) over a pixel mask of what stands out in the box; each
  removal is written as a copy of the archive (same layout, PNGs) that `mura_zoom.train_baseline` trains on;
* per variant: the study-level kappa, where guided backprop puts its weight (mass in the ground-truth
  flag box, `mura_zoom.attention_table`) and how visible the removed boxes' borders are.

The keyword names of the runners are the notebook's parameter names (`medvid_core.params.pick`).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.patches import Rectangle
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from .. import explain, transforms
from ..cache import ensure
from ..data import worker_options
from ..findings import finding
from ..io.coco import CocoError, read_coco_boxes, write_coco_boxes
from ..io.index import listing_key
from ..io.mura import ARCHIVE, load_radiograph, read_mura
from ..metrics import Measure, border_contrast, bootstrap_measure, box_average_precision, kappa_score
from ..models import detection as _detection  # noqa: F401  (registers the Faster R-CNN builders)
from ..models import get_model
from ..parallel import fork_map
from ..paths import data_dir
from ..plots import finish
from ..train import fit, resolve_device, seed_everything
from . import mura_zoom as mz

STUDY = "mura_flags"
CLASSES = {1: "flag", 2: "implant"}  # the detector's labels (0: background)
IMPLANTS = ("plate", "screws", "pins")  # the synthetic archive's abnormality types that are metal hardware
REMOVALS = ("blank", "ring mean", "inpaint")
ORIGINAL = "original"

# --------------------------------------------------------------------------- the paper's account (Sec. IV-B2, II-B)

#: the detector the paper trained (Sec. II-B): no AP or count is published, only these sizes and its words
PAPER_DETECTOR = {"annotated images": "about 6000 (flags and implants, COCO-style)",
                  "detector": "Faster R-CNN, ResNet-50-FPN (maskrcnn-benchmark)", "training": "about 12 hours",
                  "classifier input": "224 x 224 (VGG19)"}
#: the paper's observations about flag detection and removal, each beside what this notebook measures for it
PAPER_ACCOUNT = pd.DataFrame([
    ("implants taken for flags", "'implants were often, falsely, detected as flags'; implant annotations 'improved "
     "the result, but failed to completely solve the issue with the misclassification' (Fig. 5a, 5f)",
     "implant boxes with a flag detection on them"),
    ("blanking leaves edges", "'blanking of detected bounding boxes does not result in the proper removal of "
     "flags' (Fig. 5c: 'the side effect by the edges of the blanked region')",
     "border contrast of the removed boxes (1 = no edge)"),
    ("fill with the surroundings' mean", "'it will be necessary to have pixel-mask and the blanking needs being "
     "replaced by a filling with the mean value of the surrounding'", "ring-mean and inpaint variants"),
    ("flag over the object", "'a problematic positioning of the flag in relation to the object that may cause "
     "wrong or bad flag removal' (Fig. 5b)", "Fig. 5 re-made: the flag whose surroundings vary most"),
    ("removal as a fix", "'The approach that was chosen to remove the flags in the training images in order to "
     "prevent the network from focusing on them, turned out to be not ideal.'",
     "guided-backprop mass on the flag and study kappa, before and after"),
], columns=["topic", "paper", "measured here as"]).set_index("topic")

#: where the findings that a laptop run does not show can be seen (named by the notebook's findings cell)
LONGER_RUNS = ("84 validation studies make a kappa uncertain by about 0.2, and the detector learns from a hundred "
               "annotated images against the paper's 6,000. `params/mura_flags/paper.yaml` (6,000 annotated "
               "images, ResNet-50-FPN, 224-pixel classifier inputs, MURA-v1.1's study counts) on a GPU, or a real "
               "MURA download with its annotations in `coco_json`, shows more.")

# --------------------------------------------------------------------------- the annotations


@dataclass
class Annotations:
    source: Path  # the COCO file read
    images: pd.DataFrame  # one row per annotated image: path (as the archive's tables write it), split
    boxes: pd.DataFrame  # one row per box: path, category (flag | implant), x0, y0, x1, y1
    left_out: dict[str, int]  # boxes of other categories in the file, by name (not learnt, counted here)


def synthetic_coco(archive: mz.Archive, *, n_jobs: int = 2) -> Path:
    """The synthetic archive's flag and implant boxes as the COCO file an annotator would export: every
    image of both splits (the ones without a box are annotated negatives); implants are the abnormality
    boxes of metal hardware (`IMPLANTS`), fractures are not annotated (the paper annotated flags and
    implants). Written to ``data_dir()/mura_flags/<archive folder>/annotations.json``; file names are
    relative to the folder holding MURA-v1.1/."""
    both = pd.concat([archive.train, archive.valid], ignore_index=True)
    shapes = mz.Radiographs(both, rescale=False, n_jobs=n_jobs).shapes  # read from the cache's index
    rel = [Path(p).relative_to(archive.root).as_posix() for p in both.path]
    images = pd.DataFrame({"file_name": rel, "width": [w for _, w in shapes], "height": [h for h, _ in shapes]})
    b = archive.boxes
    keep = (b.kind == "flag") | ((b.kind == "abnormality") & b.type.isin(IMPLANTS))
    boxes = b[keep].assign(file_name=b.path, category=np.where(b.kind[keep] == "flag", "flag", "implant"))
    path = data_dir() / STUDY / archive.root.name / "annotations.json"
    return write_coco_boxes(path, images, boxes[["file_name", "category", "x0", "y0", "x1", "y1"]])


def get_annotations(archive: mz.Archive, *, coco_json: str = "", n_jobs: int = 2) -> Annotations:
    """The flag and implant boxes: from `coco_json` (a real download's annotations; file names relative to
    the folder holding MURA-v1.1/) or, on the synthetic archive, its ground truth (`synthetic_coco`). Both
    go through `io.coco.read_coco_boxes`; an image the archive does not hold, or a file without a 'flag'
    category, is one `CocoError` line naming the file."""
    if not coco_json and archive.boxes is None:
        raise CocoError(f"{archive.root}: a real MURA archive has no boxes: set coco_json to its annotations")
    source = Path(coco_json) if coco_json else synthetic_coco(archive, n_jobs=n_jobs)
    coco = read_coco_boxes(source)
    split = {str(p): s for s, df in (("train", archive.train), ("valid", archive.valid)) for p in df.path}
    paths = [str(archive.root / f) for f in coco.images.file_name]
    unknown = [f for f, p in zip(coco.images.file_name, paths) if p not in split]
    if unknown:
        raise CocoError(f"{source}: {len(unknown)} image(s) not in the archive at {archive.root}, e.g. {unknown[0]}")
    names = set(coco.categories.values())
    if "flag" not in names:
        raise CocoError(f"{source}: no 'flag' category (categories: {', '.join(sorted(names)) or 'none'})")
    images = pd.DataFrame({"path": paths, "split": [split[p] for p in paths]})
    boxes = coco.boxes.assign(path=[str(archive.root / f) for f in coco.boxes.file_name])
    mine = boxes.category.isin(CLASSES.values())
    left_out = boxes[~mine].category.value_counts().to_dict()
    return Annotations(source, images, boxes[mine][["path", "category", "x0", "y0", "x1", "y1"]].reset_index(drop=True),
                       {str(k): int(v) for k, v in left_out.items()})


def annotation_summary(ann: Annotations) -> pd.DataFrame:
    """Annotated images and boxes per split and category (the data cell's table); boxes of other categories
    in the file, which the detector does not learn, are counted in a last column when there are any."""
    rows = []
    for split, im in ann.images.groupby("split"):
        b = ann.boxes[ann.boxes.path.isin(set(im.path))]
        rows.append({"split": split, "annotated images": len(im), "images with a flag":
                     b[b.category == "flag"].path.nunique(), "flag boxes": int((b.category == "flag").sum()),
                     "implant boxes": int((b.category == "implant").sum())})
    table = pd.DataFrame(rows).set_index("split")
    if ann.left_out:
        table["left out (other categories, both splits)"] = ", ".join(f"{k}: {v}" for k, v in ann.left_out.items())
    return table


# --------------------------------------------------------------------------- the detector


def _target(boxes: pd.DataFrame) -> dict:
    labels = {n: c for c, n in CLASSES.items()}
    return {"boxes": torch.tensor(boxes[["x0", "y0", "x1", "y1"]].to_numpy(np.float32).reshape(-1, 4)),
            "labels": torch.tensor([labels[c] for c in boxes.category], dtype=torch.int64)}


class BoxSet(Dataset):
    """(image (1, H, W) in [0, 1], target dict) pairs for torchvision's detectors, read from `images` (a
    `mura_zoom.Radiographs`: the full-resolution cache); `flip`: random horizontal flips, boxes flipped
    with the image (one `torch.rand` per item)."""

    def __init__(self, images: mz.Radiographs, boxes: pd.DataFrame, *, flip: bool = False):
        self.images, self.flip = images, flip
        groups = dict(tuple(boxes.groupby("path")))
        self.targets = [_target(groups.get(n, boxes.iloc[:0])) for n in images.names]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        x = torch.from_numpy(self.images[i])[None]
        t = {k: v.clone() for k, v in self.targets[i].items()}
        if self.flip and torch.rand(()) < 0.5:
            w = x.shape[-1]
            x = x.flip(-1)
            b = t["boxes"]
            t["boxes"] = torch.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], 1)
        return x, t


def collate_detection(items):
    """A batch as the trainer passes it on: inputs = (images, targets), targets = one placeholder per image
    (the detector computes its own losses from the targets inside the inputs)."""
    images, targets = zip(*items)
    return (list(images), list(targets)), torch.zeros(len(items))


def _detector_losses(model, inputs):
    images, targets = inputs
    return sum(model(images, targets).values())


def _summed_loss(loss, _placeholder):
    return loss


def build_detector(*, detector: str = "fasterrcnn_resnet18_fpn", detector_width: float = 0.25,
                   detector_size: int = 256, detector_weights: str = "") -> torch.nn.Module:
    """A registered Faster R-CNN (`medvid_core.models.detection`) for background + flag + implant, one input
    channel, `detector_size` pixels on the short side; `detector_weights`: a local torchvision ResNet state
    dict for its backbone ("" = random init)."""
    return get_model(detector, num_classes=len(CLASSES) + 1, in_channels=1, width=detector_width,
                     min_size=detector_size, max_size=round(1.25 * detector_size), weights=detector_weights)


def train_detector(archive: mz.Archive, ann: Annotations, *, detector: str = "fasterrcnn_resnet18_fpn",
                   detector_width: float = 0.25, detector_size: int = 256, detector_weights: str = "",
                   detector_images: int = 150, detector_epochs: int = 6, detector_batch_size: int = 4,
                   detector_lr: float = 0.001, rescale: bool = True, seed: int = 0, device: str = "cpu",
                   num_workers: int = 0, n_jobs: int = 2):
    """Faster R-CNN trained on `detector_images` annotated training images (drawn with `seed`; 0 = all),
    AdamW with warm-up + cosine, random flips. Returns (model, history, the training images' paths)."""
    device = resolve_device(device)
    seed_everything(seed)
    annotated = ann.images[ann.images.split == "train"].path.tolist()
    if not annotated:
        raise CocoError(f"{ann.source}: no annotated image of the training split to train the detector on")
    rng = np.random.default_rng(seed)
    if 0 < detector_images < len(annotated):
        annotated = [annotated[i] for i in sorted(rng.choice(len(annotated), detector_images, replace=False))]
    df = pd.DataFrame({"path": annotated})
    data = BoxSet(mz.Radiographs(df, rescale=rescale, n_jobs=n_jobs), ann.boxes, flip=True)
    loader = DataLoader(data, batch_size=detector_batch_size, shuffle=True, collate_fn=collate_detection,
                        drop_last=len(data) > detector_batch_size, **worker_options(num_workers))
    model = build_detector(detector=detector, detector_width=detector_width, detector_size=detector_size,
                           detector_weights=detector_weights)
    history = fit(model, loader, epochs=detector_epochs, lr=detector_lr, loss_fn=_summed_loss,
                  forward=_detector_losses, warmup_epochs=1 if detector_epochs > 2 else 0, device=device,
                  desc="faster r-cnn")
    return model, history, annotated


@torch.no_grad()
def detect(model, images: mz.Radiographs, *, batch_size: int = 8, device: str = "cpu") -> list[dict]:
    """Every detection (torchvision keeps scores above 0.05) per image: boxes (N, 4), labels (N,), scores (N,)
    as NumPy arrays, in `images`' order."""
    device = resolve_device(device)
    model = model.to(device).eval()
    out = []
    for i in range(0, len(images), batch_size):
        batch = [torch.from_numpy(images[k])[None].to(device) for k in range(i, min(i + batch_size, len(images)))]
        out += [{k: v.cpu().numpy() for k, v in d.items()} for d in model(batch)]
    return out


def detect_archive(model, archive: mz.Archive, *, rescale: bool = True, device: str = "cpu",
                   n_jobs: int = 2) -> dict[str, dict]:
    """`detect` on every image of both splits: {path: detections}."""
    both = pd.concat([archive.train, archive.valid], ignore_index=True)
    found = detect(model, mz.Radiographs(both, rescale=rescale, n_jobs=n_jobs), device=device)
    return dict(zip(map(str, both.path), found))


def flag_boxes(detections: dict, *, flag_score: float = 0.5) -> dict[str, np.ndarray]:
    """Per image, the boxes detected as flags with a score of at least `flag_score`: what gets removed."""
    return {p: d["boxes"][(d["labels"] == 1) & (d["scores"] >= flag_score)] for p, d in detections.items()}


def _inside_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """Share of box `a`'s area inside box `b`."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1])
    return float(ix * iy / area) if area > 0 else 0.0


def _iou(a, b) -> float:
    inter = _inside_fraction(a, b) * (a[2] - a[0]) * (a[3] - a[1])
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def implants_taken_for_flags(flags, implants, removed, *, min_inside: float = 0.5, flag_iou: float = 0.5) -> dict:
    """The paper's failure on one image: an implant box counts as taken for a flag when a box detected as a
    flag (`removed`) lies at least `min_inside` of its area inside it and matches no true flag (IoU below
    `flag_iou` with every one of `flags`). Returns counts: implants, implants_taken (implant boxes with such
    a detection), false_flags (detections matching no true flag), false_flags_on_implants, and `taken`:
    0/1 per implant box."""
    false = [d for d in removed if all(_iou(d, f) < flag_iou for f in flags)]
    on_implant = [d for d in false if any(_inside_fraction(d, b) >= min_inside for b in implants)]
    taken = [int(any(_inside_fraction(d, b) >= min_inside for d in false)) for b in implants]
    return {"implants": len(implants), "implants_taken": sum(taken), "false_flags": len(false),
            "false_flags_on_implants": len(on_implant), "taken": taken}


def score_detector(ann: Annotations, detections: dict[str, dict], *, flag_score: float = 0.5) -> dict:
    """On the annotated validation images: COCO box AP per class (pycocotools) and, at `flag_score`, how many
    true flags a flag detection finds (IoU >= 0.5) and how many implants are taken for flags.

    Returns dict(ap: DataFrame class x AP/AP50/AP75/objects, per_image: DataFrame one row per image with
    the counts, implant_taken: 0/1 per implant box (for the bootstrap))."""
    paths = ann.images[ann.images.split == "valid"].path.tolist()
    groups = dict(tuple(ann.boxes.groupby("path")))
    gt, det, rows, taken = [], [], [], []
    removed = flag_boxes({p: detections[p] for p in paths}, flag_score=flag_score)
    for p in paths:
        b = groups.get(p, ann.boxes.iloc[:0])
        gt.append({k: v.numpy() for k, v in _target(b).items()})
        det.append(detections[p])
        flags = b[b.category == "flag"][["x0", "y0", "x1", "y1"]].to_numpy(float)
        implants = b[b.category == "implant"][["x0", "y0", "x1", "y1"]].to_numpy(float)
        counts = implants_taken_for_flags(flags, implants, removed[p])
        taken += counts.pop("taken")
        found = sum(any(_iou(d, f) >= 0.5 for d in removed[p]) for f in flags)
        rows.append({"path": p, "flag_boxes": len(flags), "flags_found": found, **counts})
    ap = pd.DataFrame(box_average_precision(gt, det, classes=CLASSES)).T if paths else pd.DataFrame()
    return {"ap": ap, "per_image": pd.DataFrame(rows), "implant_taken": np.asarray(taken, int)}


def detection_table(scores: dict) -> pd.DataFrame:
    """The detector in one table: AP, AP50 per class, and the counts at the removal threshold."""
    ap, per = scores["ap"], scores["per_image"]
    if not len(per):
        return pd.DataFrame()
    table = ap[["AP", "AP50", "AP75", "objects"]].copy()
    table["found at flag_score"] = [per.flags_found.sum(), np.nan]
    table["taken for a flag"] = [np.nan, per.implants_taken.sum()]
    table["false flag detections"] = [per.false_flags.sum(), per.false_flags_on_implants.sum()]
    return table


# --------------------------------------------------------------------------- flag removal


def remove_flags(image: np.ndarray, boxes, *, method: str, fill_ring: int = 4, mask_k: float = 3.0,
                 inpaint_radius: int = 3) -> np.ndarray:
    """One image with its detected flag boxes removed by `method`: "blank" (black), "ring mean" (the mean of
    the `fill_ring` pixels around each box) or "inpaint" (OpenCV's Telea inpainting of the pixels that stand
    out of the box's surroundings by more than `mask_k` robust standard deviations)."""
    if method == "blank":
        return transforms.blank_boxes(image, boxes)
    if method == "ring mean":
        return transforms.ring_mean_fill(image, boxes, ring=fill_ring)
    if method == "inpaint":
        mask = transforms.outlier_mask(image, boxes, ring=fill_ring, k=mask_k)
        return transforms.inpaint(image, mask, radius=inpaint_radius)
    raise ValueError(f"unknown removal {method!r}; choose from: {', '.join(REMOVALS)}")


def _write_removed(src: str, dst: str, boxes: np.ndarray, method: str, fill_ring: int, mask_k: float,
                   inpaint_radius: int) -> float:
    """Write one image with its flags removed as an 8-bit grayscale PNG; return the mean border contrast of
    its removed boxes (NaN without one)."""
    image = load_radiograph(src)
    out = remove_flags(image, boxes, method=method, fill_ring=fill_ring, mask_k=mask_k,
                       inpaint_radius=inpaint_radius) if len(boxes) else image
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(np.clip(out, 0, 1) * 255).astype(np.uint8), "L").save(dst, optimize=False)
    h, w = image.shape
    contrasts = [border_contrast(out, transforms.pixel_box(b, (h, w))) for b in boxes]
    return float(np.nanmean(contrasts)) if contrasts and np.isfinite(contrasts).any() else float("nan")


def removed_archive(archive: mz.Archive, removed: dict[str, np.ndarray], *, method: str, fill_ring: int = 4,
                    mask_k: float = 3.0, inpaint_radius: int = 3, n_jobs: int = 2) -> mz.Archive:
    """A copy of the archive with the boxes `removed` ({path: flag boxes}) removed by `method`: the same
    MURA-v1.1 layout and CSVs, so `read_mura` and `mura_zoom`'s training read it as they read the original.

    Written once under ``data_dir()/mura_flags/removed/<digest>/`` (key: the originals' listing, the boxes,
    the method and its settings); the ground truth stays the original's (`Archive.boxes`, same relative
    paths). The border contrast of each image's removed boxes is kept in ``border_contrast.csv`` there."""
    both = pd.concat([archive.train, archive.valid], ignore_index=True)
    paths = list(map(str, both.path))
    boxes = {p: np.round(np.asarray(removed.get(p, np.zeros((0, 4))), float).reshape(-1, 4), 1) for p in paths}
    key = dict(study=STUDY, images=listing_key(paths), method=method, fill_ring=fill_ring, mask_k=mask_k,
               inpaint_radius=inpaint_radius, boxes=hashlib.sha256(json.dumps(
                   [boxes[p].tolist() for p in paths]).encode()).hexdigest(), version=1)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    root = data_dir() / STUDY / "removed" / f"{method.replace(' ', '_')}_{digest}"

    def make(tmp: Path):
        for csv in sorted((archive.root / ARCHIVE).glob("*.csv")):
            (tmp / ARCHIVE).mkdir(parents=True, exist_ok=True)
            shutil.copy(csv, tmp / ARCHIVE / csv.name)
        rel = [Path(p).relative_to(archive.root) for p in paths]
        jobs = [(p, str(tmp / r), boxes[p], method, fill_ring, mask_k, inpaint_radius) for p, r in zip(paths, rel)]
        contrast = fork_map(_write_removed, jobs, n_jobs=n_jobs, chunksize=16)
        pd.DataFrame({"path": [r.as_posix() for r in rel], "boxes": [len(boxes[p]) for p in paths],
                      "border_contrast": contrast}).to_csv(tmp / "border_contrast.csv", index=False)

    ensure(root, key, make)
    return mz.Archive(root, read_mura(root, "train"), read_mura(root, "valid"), archive.boxes)  # same relative paths


def run_removals(archive: mz.Archive, removed: dict[str, np.ndarray], *, removals=REMOVALS, rescale: bool = True,
                 fill_ring: int = 4, mask_k: float = 3.0, inpaint_radius: int = 3, image_size: int = 64,
                 width: float = 0.0625, batch_norm: bool = True, weights: str = "", epochs: int = 5,
                 batch_size: int = 16, lr: float = 0.001, weight_decay: float = 0.0001, attention_images: int = 60,
                 entropy_radius: int = 3, seed: int = 0, device: str = "cpu", num_workers: int = 0,
                 n_jobs: int = 2) -> dict:
    """The VGG19 baseline (`mura_zoom.train_baseline`, same settings, same seed) trained and tested on the
    original images and on each removal of the detected flags. Per variant: dict(archive, model, history,
    probs, kappa (`mura_zoom.kappa_table`), attention (`mura_zoom.attention_table`, ground-truth boxes),
    contrast (`border_contrast.csv` of the removal: per image, its removed boxes and their border contrast;
    empty for the original))."""
    unknown = [m for m in removals if m not in REMOVALS]
    if unknown:
        raise ValueError(f"unknown removal(s) {', '.join(map(repr, unknown))}; choose from: {', '.join(REMOVALS)}")
    base = dict(rescale=rescale, image_size=image_size, width=width, batch_norm=batch_norm, weights=weights,
                epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed, device=device,
                num_workers=num_workers, n_jobs=n_jobs)
    out = {}
    for name in (ORIGINAL, *removals):
        arch = archive if name == ORIGINAL else removed_archive(
            archive, removed, method=name, fill_ring=fill_ring, mask_k=mask_k, inpaint_radius=inpaint_radius,
            n_jobs=n_jobs)
        model, history, probs = mz.train_baseline(arch, **base)
        attention = mz.attention_table(model, arch, rescale=rescale, image_size=image_size,
                                       attention_images=attention_images, entropy_radius=entropy_radius,
                                       n_jobs=n_jobs) if arch.boxes is not None else pd.DataFrame()
        contrast = (pd.read_csv(arch.root / "border_contrast.csv") if name != ORIGINAL else pd.DataFrame())
        out[name] = dict(archive=arch, model=model, history=history, probs=probs,
                         kappa=mz.kappa_table(arch.valid, probs), attention=attention, contrast=contrast)
    return out


def removal_table(results: dict) -> pd.DataFrame:
    """Per variant: study kappa, guided backprop's mass on the flag and on the abnormality (and each over the
    uniform map's), and the median over validation images of their removed boxes' border contrast."""
    rows = []
    for name, r in results.items():
        k = _study_kappa(r)
        row = {"variant": name, "studies": k.n, "study_kappa": k.value, "kappa_low": k.low, "kappa_high": k.high,
               "study_accuracy": r["kappa"].loc["ALL", "study_accuracy"]}
        att = r["attention"]
        if len(att):
            gbp, chance = att.loc["guided backprop"], att.loc["chance (uniform map)"]
            row.update(gbp_mass_flag=gbp.mass_flag, gbp_mass_abnormality=gbp.mass_abnormality,
                       flag_over_uniform=gbp.mass_flag / chance.mass_flag,
                       abnormality_over_uniform=gbp.mass_abnormality / chance.mass_abnormality)
        c = r["contrast"]
        valid = c[c.path.str.startswith(f"{ARCHIVE}/valid/") & (c.boxes > 0)] if len(c) else c
        row["border_contrast"] = valid.border_contrast.median() if len(valid) else np.nan
        row["removed_boxes"] = int(valid.boxes.sum()) if len(valid) else 0
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


# --------------------------------------------------------------------------- words, findings, measures


def detector_words(scores: dict, *, flag_score: float = 0.5) -> str:
    """The detector's result in sentences, from its table."""
    per, ap = scores["per_image"], scores["ap"]
    if not len(per):
        return "No annotated validation image: the detector is trained but not scored."
    flag, implant = ap.loc["flag"], ap.loc["implant"]
    n_imp, taken = int(per.implants.sum()), int(per.implants_taken.sum())
    text = (f"On {len(per)} annotated validation images the detector reaches flag AP {flag.AP:.2f} (AP50 "
            f"{flag.AP50:.2f}) and implant AP {implant.AP:.2f} (AP50 {implant.AP50:.2f}). At a score of "
            f"{flag_score:g} its flag detections find {int(per.flags_found.sum())} of "
            f"{int(per.flag_boxes.sum())} flags")
    false = int(per.false_flags.sum())
    text += (f"; {false} flag detection{'s' if false != 1 else ''} match no flag"
             + (f", {int(per.false_flags_on_implants.sum())} of them on an implant" if false else "") + ".")
    if n_imp:
        text += (f" {taken} of {n_imp} implants ({taken / n_imp:.0%}) are taken for a flag, and would be removed "
                 f"with the flags: the paper's failure (Fig. 5a, 5f) "
                 + ("happens here too." if taken else "does not happen in this run."))
    return text


def removal_words(table: pd.DataFrame) -> str:
    """The paper's question answered from the removal table: edges, attention on the flag, kappa."""
    if ORIGINAL not in table.index:
        return ""
    orig = table.loc[ORIGINAL]
    parts = []
    methods = [m for m in table.index if m != ORIGINAL]
    edges = {m: table.loc[m, "border_contrast"] for m in methods if np.isfinite(table.loc[m, "border_contrast"])}
    if edges:
        parts.append("Across the removed boxes' borders the step between neighbouring pixels is (median over images) "
                     + ", ".join(f"{v:.1f}x the surroundings' after {m}" for m, v in edges.items())
                     + " (1x: no edge)" + (": blanking leaves the edges of Fig. 5c"
                                           if "blank" in edges and edges["blank"] == max(edges.values()) else "") + ".")
    if "flag_over_uniform" in table and np.isfinite(orig.get("flag_over_uniform", np.nan)):
        moved = ", ".join(f"{table.loc[m, 'flag_over_uniform']:.1f}x after {m}" for m in methods)
        parts.append(f"Guided backprop puts {orig.flag_over_uniform:.1f}x the uniform share of its weight on the flag "
                     f"box in the original images" + (f", {moved}" if moved else "") + ".")
    kappa = lambda r: f"{r.study_kappa:.2f} ({r.kappa_low:.2f}-{r.kappa_high:.2f})"  # noqa: E731
    kappas = ", ".join(f"{kappa(table.loc[m])} after {m}" for m in methods)
    parts.append(f"The study kappa (95% bootstrap interval over {int(orig.studies)} validation studies) is "
                 f"{kappa(orig)} on the original images" + (f", {kappas}" if kappas else "")
                 + ": differences inside these intervals may be the seed's.")
    return " ".join(parts)


def findings(scores: dict, table: pd.DataFrame) -> list[dict]:
    """The paper's claims against this run: implants taken for flags (Sec. IV-B2), blanking leaves edges
    where filling with the surroundings does not (Fig. 5c), removal takes the attention off the flags, and
    removal is no fix for the kappa ('turned out to be not ideal')."""
    out = []
    per = scores["per_image"]
    if len(per) and per.implants.sum():
        rate = per.implants_taken.sum() / per.implants.sum()
        out.append(finding("The detector takes some implants for flags (Sec. IV-B2, Fig. 5a)",
                           paper="'implants were often, falsely, detected as flags'; implant annotations 'failed to "
                                 "completely solve the issue'", ours=100 * rate, unit="%", holds=rate > 0,
                           rule="share of implant boxes with a false flag detection on them > 0"))
    methods = [m for m in table.index if m != ORIGINAL]
    if "blank" in methods and "ring mean" in methods:
        ratio = table.loc["blank", "border_contrast"] / table.loc["ring mean", "border_contrast"]
        out.append(finding("Blanking leaves edges that a fill with the surroundings' mean does not (Fig. 5c)",
                           paper="'blanking ... does not result in the proper removal'; fill 'with the mean value of "
                                 "the surrounding'", ours=ratio, unit="x", holds=ratio > 1.5,
                           rule="border contrast blank / ring mean > 1.5"))
    if methods and "flag_over_uniform" in table:
        best = min(methods, key=lambda m: table.loc[m, "flag_over_uniform"])
        ratio = table.loc[best, "flag_over_uniform"] / table.loc[ORIGINAL, "flag_over_uniform"]
        out.append(finding(f"Removing the flags takes guided backprop's weight off them ({best})",
                           paper="the removal was made 'to prevent the network from focusing on them'",
                           ours=ratio, unit="x", holds=ratio < 0.8,
                           rule="flag mass after / before (over the uniform share) < 0.8"))
    if methods:
        gain = max(table.loc[m, "study_kappa"] for m in methods) - table.loc[ORIGINAL, "study_kappa"]
        out.append(finding("Removing the flags does not raise the study kappa",
                           paper="flag removal 'turned out to be not ideal'; no kappa is reported for it",
                           ours=gain, unit="kappa", holds=gain <= 0.02,
                           rule="best removal's kappa - original's <= 0.02"))
    return out


def _study_kappa(result: dict) -> Measure:
    """A variant's study-level kappa with its 95% bootstrap interval over validation studies."""
    s = mz.study_predictions(result["archive"].valid, result["probs"])
    return bootstrap_measure(kappa_score, s.label.to_numpy(), s.pred.to_numpy(), chance=0.0)


def measures(results: dict, scores: dict) -> dict[str, Measure]:
    """The trained results that `medvid_core.reference.check` compares with the committed reference, with
    95% bootstrap intervals: each variant's study kappa (over validation studies) and the share of
    implants taken for flags (over validation implant boxes)."""
    out = {}
    for name, r in results.items():
        out[f"{name} study kappa"] = _study_kappa(r)
    taken = scores["implant_taken"]
    if len(taken):
        out["implants taken for flags"] = bootstrap_measure(np.mean, taken.astype(float))
    return out


# --------------------------------------------------------------------------- figures (Figs 5-6)


def _draw(ax, boxes, color, lw=1.2, ls="-"):
    for x0, y0, x1, y1 in boxes:
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=color, lw=lw, ls=ls))


def plot_flags(archive: mz.Archive, ann: Annotations, *, n: int = 12, seed: int = 0, path=None):
    """Fig. 6 re-made: annotated flags cut out of their images, size and angle as they are."""
    flags = ann.boxes[ann.boxes.category == "flag"]
    pick = flags.sample(min(n, len(flags)), random_state=seed) if len(flags) else flags
    cols, rows = 6, max(1, -(-len(pick) // 6))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.7 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, r in zip(axes.ravel(), pick.itertuples()):
        image = load_radiograph(r.path)
        pad = 4
        y0, x0 = max(0, int(r.y0) - pad), max(0, int(r.x0) - pad)
        ax.imshow(image[y0:int(r.y1) + pad, x0:int(r.x1) + pad], cmap="gray", vmin=0, vmax=1)
        ax.add_patch(Rectangle((r.x0 - x0 - 0.5, r.y0 - y0 - 0.5), r.x1 - r.x0, r.y1 - r.y0, fill=False, color="red"))
    fig.suptitle("annotated flags (red: the box), as large and as turned as in their images", fontsize=9)
    return finish(fig, path, tight_bbox=False)


def fig5_cases(ann: Annotations, removed: dict[str, np.ndarray]) -> list[tuple[str, str, np.ndarray]]:
    """Validation images for Fig. 5: (caption, path, box to zoom on): an implant taken for a flag, the flag
    whose surroundings vary most (a flag over bone), and a correct flag detection on an image with an
    implant (else any correct one). Cases this run does not have are left out."""
    val = ann.images[ann.images.split == "valid"].path
    groups = dict(tuple(ann.boxes.groupby("path")))
    taken, over_bone, correct = [], [], []
    for p in val:
        b = groups.get(p, ann.boxes.iloc[:0])
        flags = b[b.category == "flag"][["x0", "y0", "x1", "y1"]].to_numpy(float)
        implants = b[b.category == "implant"][["x0", "y0", "x1", "y1"]].to_numpy(float)
        for d in removed.get(p, []):
            true = any(_iou(d, f) >= 0.5 for f in flags)
            if not true and any(_inside_fraction(d, im) >= 0.5 for im in implants):
                taken.append(("implant taken for a flag (Fig. 5a, 5f)", p, d))
            elif true:
                image = load_radiograph(p)
                x0, y0, x1, y1 = transforms.pixel_box(d, image.shape)
                ring = image[max(0, y0 - 4):y1 + 4, max(0, x0 - 4):x1 + 4]
                over_bone.append((float(ring.std()), p, d))
                correct.append((len(implants) > 0, p, d))
    cases = taken[:1]
    if over_bone:
        _, p, d = max(over_bone, key=lambda t: t[0])
        cases.append(("flag over the object (Fig. 5b, 5c)", p, d))
    if correct:
        _, p, d = max(correct, key=lambda t: t[0])
        cases.append(("correct flag detection (Fig. 5d, 5e)", p, d))
    return cases


def plot_removals(ann: Annotations, removed: dict[str, np.ndarray], *, removals=REMOVALS, fill_ring: int = 4,
                  mask_k: float = 3.0, inpaint_radius: int = 3, path=None):
    """Fig. 5 re-made: per case, the image with ground truth (dashed: cyan flag, red implant) and the flags
    detected for removal (yellow), then a close-up of the box before and after each removal."""
    cases = fig5_cases(ann, removed)
    if not cases:
        return None
    groups = dict(tuple(ann.boxes.groupby("path")))
    cols = 2 + len(removals)
    fig, axes = plt.subplots(len(cases), cols, figsize=(2.2 * cols, 2.4 * len(cases)), squeeze=False)
    for row, (caption, p, box) in enumerate(cases):
        image = load_radiograph(p)
        b = groups.get(p, ann.boxes.iloc[:0])
        ax = axes[row, 0]
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        _draw(ax, b[b.category == "flag"][["x0", "y0", "x1", "y1"]].to_numpy(), "cyan", ls="--")
        _draw(ax, b[b.category == "implant"][["x0", "y0", "x1", "y1"]].to_numpy(), "red", ls="--")
        _draw(ax, removed[p], "yellow")
        ax.set_title(caption, fontsize=7)
        x0, y0, x1, y1 = transforms.pixel_box(box, image.shape)
        m = max(x1 - x0, y1 - y0)
        win = (slice(max(0, y0 - m), y1 + m), slice(max(0, x0 - m), x1 + m))
        versions = [("before", image)] + [(mth, remove_flags(image, removed[p], method=mth, fill_ring=fill_ring,
                                                             mask_k=mask_k, inpaint_radius=inpaint_radius))
                                          for mth in removals]
        for ax, (title, im) in zip(axes[row, 1:], versions):
            ax.imshow(im[win], cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=8)
        for ax in axes[row]:
            ax.axis("off")
    fig.suptitle("Fig. 5 re-made on validation images: yellow, flags detected for removal; dashed, ground truth "
                 "(cyan flag, red implant); right, close-ups", fontsize=8)
    return finish(fig, path, tight_bbox=False)


def plot_attention_before_after(results: dict, *, rescale: bool = True, image_size: int = 64, n: int = 3, path=None):
    """Guided backprop on the same abnormal, flagged validation images, per variant (its own model on its own
    images), with the ground-truth flag (cyan) and abnormality (red)."""
    names = list(results)
    orig = results[ORIGINAL]["archive"]
    ab, fl = orig.truth(orig.valid)
    idx = [i for i in range(len(orig.valid)) if ab[i] and fl[i]][:n]
    if not idx:
        return None
    fig, axes = plt.subplots(len(idx), 2 * len(names), figsize=(1.6 * 2 * len(names), 1.8 * len(idx)), squeeze=False)
    for j, name in enumerate(names):
        arch = results[name]["archive"]
        images = [mz.load_image(p, rescale=rescale) for p in arch.valid.path.iloc[idx]]
        gbp, _ = mz.attention_maps(results[name]["model"], images, image_size=image_size)
        for row, (i, im, g) in enumerate(zip(idx, images, gbp)):
            h, w = im.shape
            sx, sy = image_size / w, image_size / h
            for k, (pic, cmap) in enumerate(((explain.resize(im, image_size), "gray"), (g, "magma"))):
                ax = axes[row, 2 * j + k]
                ax.imshow(pic, cmap=cmap)
                _draw(ax, [(a * sx, b * sy, c * sx, d * sy) for a, b, c, d in fl[i]], "cyan", lw=0.8)
                _draw(ax, [(a * sx, b * sy, c * sx, d * sy) for a, b, c, d in ab[i]], "red", lw=0.8)
                ax.axis("off")
                if row == 0:
                    ax.set_title(f"{name}" + (" GBP" if k else ""), fontsize=7)
    fig.suptitle("guided backprop per variant: cyan, the flag; red, the abnormality (ground truth)", fontsize=8)
    return finish(fig, path, tight_bbox=False)
