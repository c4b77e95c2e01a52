"""MURA zoom, part three (Huschauer, ZHAW, Secs. IV-D and IV-E): the two alternatives the paper tried.

* **Early fusion** (Sec. IV-E, Fig. 7): all radiographs of a study in one input, a VGG19 whose first layer
  takes six views (`models.early_fusion`), against the per-view VGG19 of Table I (mura_zoom's baseline,
  trained in the same run with the same epochs, a study's probability the mean over its views).
* **RA-CNN** (Sec. IV-D; Fu et al., CVPR 2017): three scales, an attention-proposal network choosing each
  finer scale's square, trained alternately on the classification losses and the ranking loss
  (`models.racnn`), against mura_zoom's guided-backprop zoom; its squares are scored against the archive's
  abnormality and flag boxes, and against the initial square that the APN starts from.

The archive, the image caches, the per-view baseline, the zoom and the study-level kappa come from
`medvid_core.studies.mura_zoom`; the same parameter names select the same archive and caches. Every image
here is intensity-rescaled (Table I's better row). The keyword names of the runners are the notebook's
parameter names (`medvid_core.params.pick`).

How a study becomes six views (`fusion_plan`; the paper repeats views "with different preprocessing (crop
region, mirroring etc.)" and discards some of a study with more than six): with n < 6 views, slot j shows
view ``j % n`` in round ``r = j // n``: round 0 as stored, odd rounds mirrored left-right, rounds 2 and up a
crop of `FUSION_CROP` of the side (at an origin drawn from the study's seeded stream) enlarged back to the
input size, mirrored in odd rounds. So two views give v1, v2, mirror(v1), mirror(v2), crop(v1), crop(v2).
With n > 6, six views are drawn without replacement from the study's seeded stream and kept in file
order. The stream is ``numpy.random.default_rng([seed, crc32(study folder)])``: the same seed gives the
same six views, study by study, whatever the order they are read in.
"""
from __future__ import annotations

import zlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle
from sklearn.metrics import accuracy_score
from torch.utils.data import DataLoader, Dataset

from .. import explain
from ..data import worker_options
from ..findings import finding
from ..losses import scale_ranking_loss
from ..metrics import Measure, bootstrap_measure, kappa_score
from ..models import count_parameters, get_model
from ..models.heads import load_without_head
from ..models.racnn import RACNN
from ..plots import finish
from ..train import evaluate, fit, resolve_device, seed_everything
from . import mura_zoom as mz

STUDY = "mura_alternatives"
NUM_VIEWS = 6  # Fig. 7: the first layer takes six views
FUSION_CROP = 0.8  # side of a repeated view's crop, as a fraction of the image side (the paper gives none)
SCALE_WEIGHTS = (1.0, 1.0, 2.0)  # Sec. IV-D: the loss weights per scale the paper assumed
RANK_MARGIN = 0.05  # Fu et al.'s margin of the ranking loss
HEAD = "classifier.6"

# --------------------------------------------------------------------------- the paper's account

# Sec. IV-D (RA-CNN) and IV-E (early fusion): settings and outcomes as the paper states them
PAPER = pd.DataFrame([
    ("early fusion", "input", "six views of a study, fused in VGG19's first layer, the rest shared (Fig. 7)"),
    ("early fusion", "fewer than six views", "views repeated with other preprocessing (crop region, mirroring)"),
    ("early fusion", "more than six views", "some views discarded (very few studies)"),
    ("early fusion", "outcome", "not better than treating every view as a sample (no numbers given)"),
    ("RA-CNN", "input", "images resized and padded to 512 x 512, cropped to 448 x 448"),
    ("RA-CNN", "batch size", "8 for training, 2 for testing (GTX1080Ti, 11 GB)"),
    ("RA-CNN", "assumed settings", "loss weights 1, 1, 2 per scale; Adam; Caffe normalisation"),
    ("RA-CNN", "start", "Fu et al.'s CUB-200-2011 model, last layer changed to 2 classes"),
    ("RA-CNN", "run length", "up to 9 hours: 0.75 h per batch, stopped after 12 batches"),
    ("RA-CNN", "outcome", "did not converge: the loss rippled around one value"),
    ("RA-CNN", "Fu et al.'s gain (Sec. II-C)", "3.3 to 3.8 points of accuracy on fine-grained birds"),
], columns=["method", "what", "paper"])
RACNN_GAIN = (3.3, 3.8)  # Sec. II-C: RA-CNN's accuracy gain (points) as the paper quotes Fu et al.

#: where the findings that a laptop run does not show can be seen (named by the notebook's findings cell)
LONGER_RUNS = ("84 validation studies make a kappa uncertain by about 0.2, and the RA-CNN here trains for a "
               "few epochs at 1/16 width. `params/mura_alternatives/paper.yaml` (448-pixel RA-CNN crops from "
               "512, batch 8, full-width VGG19s, MURA-v1.1's study counts) on a GPU shows more.")

# --------------------------------------------------------------------------- early fusion: six views a study


def _stream(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def fusion_plan(n_views: int, *, num_views: int = NUM_VIEWS, seed: int = 0, key: str = "") -> list[dict]:
    """Which stored view fills each of the `num_views` slots, and how: dicts (view, mirror, crop), `crop`
    the crop's origin as fractions of the free margin (x, y) or None. The rule is the module docstring's;
    `key` (the study folder) and `seed` fix the crops and the dropped views."""
    if n_views < 1:
        raise ValueError("fusion_plan: a study needs at least one view")
    rng = _stream(seed, key)
    if n_views >= num_views:
        keep = np.sort(rng.choice(n_views, size=num_views, replace=False))
        return [dict(view=int(v), mirror=False, crop=None) for v in keep]
    plan = []
    for j in range(num_views):
        r = j // n_views
        crop = tuple(float(c) for c in rng.random(2)) if r >= 2 else None
        plan.append(dict(view=j % n_views, mirror=r % 2 == 1, crop=crop))
    return plan


def stack_views(images: list[np.ndarray], plan: list[dict]) -> np.ndarray:
    """The study's (size, size) images arranged by `plan` -> (len(plan), size, size) float32."""
    out = []
    for slot in plan:
        im = images[slot["view"]]
        if slot["crop"] is not None:
            size = im.shape[0]
            side = int(round(FUSION_CROP * size))
            x0, y0 = (int(round(c * (size - side))) for c in slot["crop"])
            im = explain.resize(im[y0:y0 + side, x0:x0 + side], size)
        if slot["mirror"]:
            im = im[:, ::-1]
        out.append(np.ascontiguousarray(im, dtype=np.float32))
    return np.stack(out)


class FusionSet(Dataset):
    """One item per study: ((1, NUM_VIEWS, size, size) views in [0, 1], label), views as `fusion_plan` says,
    read from mura_zoom's image cache; `flip`: the whole stack mirrored at random (training)."""

    def __init__(self, df: pd.DataFrame, *, size: int, seed: int = 0, flip: bool = False, n_jobs: int = 2):
        self.store = mz.image_store(df, size=size, rescale=True, n_jobs=n_jobs)
        groups = df.groupby("study", sort=False)
        self.studies = list(groups.groups)
        self.paths = [[str(p) for p in g.path] for _, g in groups]
        self.y = torch.tensor([int(g.label.iloc[0]) for _, g in groups], dtype=torch.long)
        self.body_part = [g.body_part.iloc[0] for _, g in groups]
        self.plans = [fusion_plan(len(p), seed=seed, key=s) for s, p in zip(self.studies, self.paths)]
        self.flip = flip

    def __len__(self) -> int:
        return len(self.y)

    def views(self, i: int) -> np.ndarray:
        return stack_views([self.store.get(p) for p in self.paths[i]], self.plans[i])

    def __getitem__(self, i):
        x = torch.from_numpy(self.views(i))[None]
        if self.flip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x, self.y[i]


def build_fusion(*, width: float = 0.0625, batch_norm: bool = True, weights: str = "") -> torch.nn.Module:
    """VGG19 over six gray views; `weights`: a local torchvision VGG19 state dict, its RGB first conv summed
    to gray and shared out over the views (each view's kernel a sixth: six equal views respond as one)."""
    model = get_model("vgg19_early_fusion", num_views=NUM_VIEWS, num_classes=2, in_channels=1, width=width,
                      batch_norm=batch_norm)
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        first = state["features.0.weight"].sum(dim=1, keepdim=True)
        state["features.0.weight"] = first.repeat(1, NUM_VIEWS, 1, 1) / NUM_VIEWS
        load_without_head(model, state, HEAD, source=weights)
    return model


def _forward(model, x):
    return model(mz.normalize(x))


def _accuracy(outputs, targets) -> dict:
    return {"accuracy": (outputs.argmax(1) == targets).float().mean().item()}


def _steps(n: int, batch_size: int) -> int:
    """Optimizer steps per epoch of `n` samples (the last partial batch dropped, as the runners do)."""
    return n // batch_size if n > batch_size else 1


def fusion_epochs(archive: mz.Archive, *, epochs: int = 5, batch_size: int = 16, fusion_budget: str = "steps") -> int:
    """The early-fusion run's epochs: `epochs` itself (`fusion_budget` "epochs": each study seen as often as
    each image of the per-view run), or as many as give the per-view run's optimizer steps ("steps": a step
    costs the same in both, a batch of `batch_size` images or studies of six views through one VGG19)."""
    if fusion_budget not in ("steps", "epochs"):
        raise ValueError(f"fusion_budget must be 'steps' or 'epochs', got {fusion_budget!r}")
    if fusion_budget == "epochs":
        return epochs
    per_view = epochs * _steps(len(archive.train), batch_size)
    return max(1, round(per_view / _steps(archive.train.study.nunique(), batch_size)))


def train_fusion(archive: mz.Archive, *, image_size: int = 64, width: float = 0.0625, batch_norm: bool = True,
                 weights: str = "", epochs: int = 5, fusion_budget: str = "steps", batch_size: int = 16,
                 lr: float = 1e-3, weight_decay: float = 1e-4, seed: int = 0, device: str = "cpu",
                 num_workers: int = 0, n_jobs: int = 2) -> dict:
    """The early-fusion VGG19, trained as mura_zoom's baseline is (AdamW, warm-up + cosine, decay on the
    head), for `fusion_epochs` epochs: one sample per study, so an epoch has fewer steps.

    Returns dict(model, history, studies: one row per validation study (study, body_part, label, prob,
    pred), steps_per_epoch, epochs)."""
    device = resolve_device(device)
    seed_everything(seed)
    train = FusionSet(archive.train, size=image_size, seed=seed, flip=True, n_jobs=n_jobs)
    valid = FusionSet(archive.valid, size=image_size, seed=seed, n_jobs=n_jobs)
    model = build_fusion(width=width, batch_norm=batch_norm, weights=weights)
    loader = DataLoader(train, batch_size=batch_size, shuffle=True, drop_last=len(train) > batch_size,
                        **worker_options(num_workers))
    val_loader = DataLoader(valid, batch_size=64, **worker_options(num_workers))
    epochs = fusion_epochs(archive, epochs=epochs, batch_size=batch_size, fusion_budget=fusion_budget)
    history = fit(model, loader, epochs=epochs, lr=lr, forward=_forward, metric_fn=_accuracy,
                  weight_decay=weight_decay, head=HEAD, warmup_epochs=1 if epochs > 2 else 0,
                  val_loader=val_loader, device=device, desc="early fusion")
    prob = F.softmax(evaluate(model, val_loader, forward=_forward, device=device)["outputs"], 1)[:, 1].numpy()
    studies = pd.DataFrame(dict(study=valid.studies, body_part=valid.body_part, label=valid.y.numpy(), prob=prob,
                                pred=(prob > 0.5).astype(int)))
    return dict(model=model, history=history, studies=studies, steps_per_epoch=len(loader), epochs=epochs)


def _study_row(name: str, s: pd.DataFrame, **extra) -> dict:
    return dict(model=name, studies=len(s), study_kappa=kappa_score(s.label, s.pred),
                study_accuracy=accuracy_score(s.label, s.pred), classes_predicted=s.pred.nunique(), **extra)


def fusion_table(archive: mz.Archive, baseline: dict, fusion: dict) -> pd.DataFrame:
    """Study-level kappa and accuracy on the validation split: the per-view VGG19 (its views' mean
    probability) beside the early-fusion VGG19 (one prediction per study), with steps and parameters."""
    per_view = mz.study_predictions(archive.valid, baseline["probs"])
    rows = [_study_row("per-view VGG19 (Table I's, views averaged)", per_view, epochs=len(baseline["history"]),
                       steps=len(baseline["history"]) * baseline["steps_per_epoch"],
                       params_m=count_parameters(baseline["model"]) / 1e6),
            _study_row(f"early-fusion VGG19 ({NUM_VIEWS} views, Fig. 7)", fusion["studies"], epochs=fusion["epochs"],
                       steps=fusion["epochs"] * fusion["steps_per_epoch"],
                       params_m=count_parameters(fusion["model"]) / 1e6)]
    return pd.DataFrame(rows).set_index("model")


def train_per_view(archive: mz.Archive, **kwargs) -> dict:
    """mura_zoom's rescaled baseline (`train_baseline`, rescale=True), with its steps per epoch.

    Returns dict(model, history, probs (validation images), steps_per_epoch)."""
    model, history, probs = mz.train_baseline(archive, rescale=True, **kwargs)
    return dict(model=model, history=history, probs=probs,
                steps_per_epoch=_steps(len(archive.train), kwargs.get("batch_size", 16)))


def fusion_words(table: pd.DataFrame) -> str:
    """The early-fusion comparison in sentences, from `fusion_table`."""
    per, fus = table.iloc[0], table.iloc[1]
    budget = (f"The per-view network trained {int(per.epochs)} epochs ({int(per.steps)} steps), early fusion "
              f"{int(fus.epochs)} epochs ({int(fus.steps)} steps: one sample per study). The paper found fusion "
              "no better, without numbers.")
    collapsed = [n for n, r in (("early fusion", fus), ("the per-view network", per)) if r.classes_predicted < 2]
    if collapsed:
        return (f"{' and '.join(collapsed).capitalize()} predicted one class for all {int(per.studies)} validation "
                f"studies (study accuracy {fus.study_accuracy:.0%} and {per.study_accuracy:.0%}): a kappa of 0 by "
                "construction, not a comparison of what the two learnt. " + budget)
    diff = fus.study_kappa - per.study_kappa
    verdict = "better than" if diff > 0.02 else "worse than" if diff < -0.02 else "about level with"
    return (f"On the same {int(per.studies)} validation studies, early fusion reaches study kappa "
            f"{fus.study_kappa:.2f} (accuracy {fus.study_accuracy:.0%}) against {per.study_kappa:.2f} "
            f"({per.study_accuracy:.0%}) for the per-view network: {diff:+.2f}, {verdict} it. " + budget)


# --------------------------------------------------------------------------- RA-CNN


class CroppedSet(Dataset):
    """mura_zoom's images at `resize` x `resize`, cut to `crop` x `crop`: at a random place with a random
    mirror (training), or in the centre (Sec. IV-D: 448 crops of 512-pixel images)."""

    def __init__(self, df: pd.DataFrame, *, resize: int, crop: int, train: bool = False, n_jobs: int = 2):
        if crop > resize:
            raise ValueError(f"racnn_crop ({crop}) cannot exceed racnn_resize ({resize})")
        self.base = mz.RadiographSet.of(df, size=resize, rescale=True, flip=train, n_jobs=n_jobs)
        self.resize, self.crop, self.train = resize, crop, train

    def offset(self) -> int:
        """The centre crop's offset in the resized image (evaluation)."""
        return (self.resize - self.crop) // 2

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        free = self.resize - self.crop
        if self.train and free:
            oy, ox = (int(v) for v in torch.randint(0, free + 1, (2,)))
        else:
            oy = ox = self.offset()
        return x[:, oy:oy + self.crop, ox:ox + self.crop], y


def build_racnn(*, racnn_size: int = 64, width: float = 0.0625, batch_norm: bool = True) -> RACNN:
    """Three gray VGG19 scales at `width`, each seeing `racnn_size` pixels (random init)."""
    return get_model("racnn_vgg19", num_classes=2, in_channels=1, input_size=racnn_size, width=width,
                     batch_norm=batch_norm)


def scales_loss(outputs, targets):
    """Classification stage: cross-entropy at every scale, weighted 1, 1, 2 (Sec. IV-D)."""
    logits = outputs[0]
    return sum(w * F.cross_entropy(logits[:, s], targets) for s, w in enumerate(SCALE_WEIGHTS[:logits.shape[1]]))


def ranking_loss(outputs, targets):
    """Attention stage: the pairwise ranking loss across scales (Fu et al.)."""
    return scale_ranking_loss(outputs[0], targets, margin=RANK_MARGIN)


def racnn_metrics(outputs, targets) -> dict:
    """Accuracy of the combined prediction and of each scale, the ranking loss, the mean square sides."""
    logits, squares = outputs
    out = {"accuracy": (RACNN.combine(logits).argmax(1) == targets).float().mean().item()}
    for s in range(logits.shape[1]):
        out[f"accuracy_scale{s + 1}"] = (logits[:, s].argmax(1) == targets).float().mean().item()
    out["ranking"] = scale_ranking_loss(logits, targets, margin=RANK_MARGIN).item()
    for s in range(squares.shape[1]):
        out[f"side_scale{s + 2}"] = (2 * squares[:, s, 2]).mean().item()
    return out


def _forward_fixed_classifiers(model, x):
    """The attention stage's forward: the classifiers in eval mode (BatchNorm's running statistics and
    dropout held, as well as their weights), the APNs training."""
    model.scales.eval()
    return model(mz.normalize(x))


def _set_trainable(params, on: bool) -> None:
    for p in params:
        p.requires_grad_(on)


def train_racnn(archive: mz.Archive, *, racnn_resize: int = 128, racnn_crop: int = 112, racnn_size: int = 64,
                width: float = 0.0625, batch_norm: bool = True, racnn_epochs: int = 3, apn_epochs: int = 2,
                racnn_rounds: int = 1, racnn_batch_size: int = 16, lr: float = 1e-3, apn_lr: float = 1e-3,
                weight_decay: float = 1e-4, seed: int = 0, device: str = "cpu", num_workers: int = 0,
                n_jobs: int = 2) -> dict:
    """Fu et al.'s alternation, one `fit` per stage: the classifiers (`racnn_epochs`, APNs fixed at the
    initial square), then `racnn_rounds` times the APNs (`apn_epochs`, ranking loss, classifiers fixed) and
    the classifiers again. Fu et al. pretrain the classifiers on the initial squares first, as stage 1 does.

    Returns dict(model, history: one row per epoch with its `stage` and round, steps_per_epoch, valid: the
    validation set, centre crops)."""
    device = resolve_device(device)
    seed_everything(seed)
    train = CroppedSet(archive.train, resize=racnn_resize, crop=racnn_crop, train=True, n_jobs=n_jobs)
    valid = CroppedSet(archive.valid, resize=racnn_resize, crop=racnn_crop, n_jobs=n_jobs)
    model = build_racnn(racnn_size=racnn_size, width=width, batch_norm=batch_norm)
    loader = DataLoader(train, batch_size=racnn_batch_size, shuffle=True, drop_last=len(train) > racnn_batch_size,
                        **worker_options(num_workers))
    val_loader = DataLoader(valid, batch_size=64, **worker_options(num_workers))
    stages = [("classifiers", 0)] + [s for r in range(1, racnn_rounds + 1) for s in (("APN", r), ("classifiers", r))]
    rows = []
    for name, rnd in stages:
        apn = name == "APN"
        _set_trainable(model.classifier_parameters(), not apn)
        _set_trainable(model.apn_parameters(), apn)
        history = fit(model, loader, epochs=apn_epochs if apn else racnn_epochs, lr=apn_lr if apn else lr,
                      loss_fn=ranking_loss if apn else scales_loss, metric_fn=racnn_metrics,
                      forward=_forward_fixed_classifiers if apn else _forward,
                      weight_decay=weight_decay, warmup_epochs=0, val_loader=val_loader, device=device,
                      desc=f"RA-CNN {name} {rnd}")
        rows += [dict(h, stage=name, round=rnd) for h in history]
    _set_trainable(model.parameters(), True)
    return dict(model=model, history=pd.DataFrame(rows), steps_per_epoch=len(loader), valid=valid)


def racnn_predict(result: dict, *, device: str = "cpu", num_workers: int = 0) -> dict:
    """Validation logits (N, scales, 2) and squares (N, scales - 1, 3) (in the unit centre crop)."""
    ev = evaluate(result["model"], DataLoader(result["valid"], batch_size=64, **worker_options(num_workers)),
                  loss_fn=scales_loss, forward=_forward, device=resolve_device(device))
    logits, squares = ev["outputs"]
    return dict(logits=logits, squares=squares)


def _to_image_box(square, shape, *, resize: int, crop: int) -> tuple[int, int, int, int]:
    """A square (tx, ty, tl) in the unit centre crop -> (x0, y0, x1, y1) in the original image's pixels."""
    (h, w), off = shape, (resize - crop) // 2
    tx, ty, tl = (float(v) for v in square)
    xs = [(off + (tx + d) * crop) * w / resize for d in (-tl, tl)]
    ys = [(off + (ty + d) * crop) * h / resize for d in (-tl, tl)]
    return (int(np.floor(xs[0])), int(np.floor(ys[0])), int(np.ceil(xs[1])), int(np.ceil(ys[1])))


def racnn_crops(archive: mz.Archive, squares: torch.Tensor, *, racnn_resize: int = 128, racnn_crop: int = 112,
                init_side: float = 0.5, n_jobs: int = 2) -> pd.DataFrame:
    """Every validation image's RA-CNN squares and the initial squares (the APN's start: centred, each
    `init_side` of its parent) as boxes in the original image, scored like mura_zoom's zoom crops.

    Columns as `mz.run_zoom`'s crops, `step` naming the method and scale."""
    shapes = mz.Radiographs(archive.valid, rescale=True, n_jobs=n_jobs).shapes
    ab, fl = archive.truth(archive.valid)
    side, rows = 1.0, []
    for s in range(squares.shape[1]):
        side *= init_side  # the initial square: `init_side` of its parent, centred
        initial = (0.5, 0.5, side / 2)
        for name, sq in ((f"RA-CNN scale {s + 2}", squares[:, s]), (f"initial square scale {s + 2}", None)):
            for i, (h, w) in enumerate(shapes):
                box = _to_image_box(initial if sq is None else sq[i], (h, w), resize=racnn_resize, crop=racnn_crop)
                box = (max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3]))
                rows.append(dict(step=name, label=archive.valid.label.iloc[i], x0=box[0], y0=box[1], x1=box[2],
                                 y1=box[3], crop_fraction=(box[2] - box[0]) * (box[3] - box[1]) / (h * w),
                                 has_flag=float(len(fl[i]) > 0), **explain.score_crop(box, ab[i], fl[i])))
    return pd.DataFrame(rows)


def _kappa_rows(archive: mz.Archive, probs: dict[str, np.ndarray]) -> pd.DataFrame:
    """mura_zoom's study-level kappa and accuracies (the "ALL" row) per named set of image probabilities,
    with how many classes the study predictions use (1: a kappa of 0 by construction)."""
    rows = {}
    for name, p in probs.items():
        row = mz.kappa_table(archive.valid, p).loc["ALL", ["study_kappa", "study_accuracy", "image_accuracy"]]
        rows[name] = dict(row.astype(float), classes_predicted=mz.study_predictions(archive.valid, p).pred.nunique())
    return pd.DataFrame(rows).T


def racnn_probs(logits: torch.Tensor) -> dict[str, np.ndarray]:
    """Image probabilities of 'abnormal' at each scale and combined."""
    probs = {f"RA-CNN scale {s + 1}": F.softmax(logits[:, s], 1)[:, 1].numpy() for s in range(logits.shape[1])}
    probs["RA-CNN combined"] = F.softmax(RACNN.combine(logits), 1)[:, 1].numpy()
    return probs


def zoom_comparison(archive: mz.Archive, zoom: dict, racnn_logits: torch.Tensor, crops: pd.DataFrame) -> pd.DataFrame:
    """Guided-backprop zoom (mura_zoom's `run_zoom` on the per-view baseline) beside RA-CNN: study kappa and
    accuracy at every step / scale, and what each crop holds (`mz.zoom_crop_summary`'s columns), with the
    initial squares' crops as the level an APN that learnt nothing reaches."""
    gbp = {("per-view VGG19 (no zoom)" if s == 0 else f"GBP zoom step {s}"): zoom["probs"][s]
           for s in range(len(zoom["probs"]))}
    kappa = _kappa_rows(archive, {**gbp, **racnn_probs(racnn_logits)})
    gbp_crops = mz.zoom_crop_summary(zoom["crops"])
    gbp_crops.index = [f"GBP zoom step {s}" for s in gbp_crops.index]
    ours = mz.zoom_crop_summary(crops)
    order = list(kappa.index) + [i for i in ours.index if i not in kappa.index]
    return kappa.join(pd.concat([gbp_crops, ours]), how="outer").loc[order]


def racnn_movement(squares: torch.Tensor, *, init_side: float = 0.5) -> pd.DataFrame:
    """How far the validation squares sit from the initial ones: per scale, the mean distance of the centre
    from the image centre, the mean side against the initial side (both in units of the input side), and
    the spread of the centres over images (0: the same square for every image)."""
    rows, side = [], 1.0
    for s in range(squares.shape[1]):
        side *= init_side
        sq = squares[:, s].double()
        centre = sq[:, :2]
        rows.append(dict(scale=s + 2, centre_shift=float((centre - 0.5).norm(dim=1).mean()),
                         side=float((2 * sq[:, 2]).mean()), initial_side=side,
                         centre_spread=float(centre.std(0).norm()) if len(sq) > 1 else 0.0))
    return pd.DataFrame(rows).set_index("scale")


def racnn_words(history: pd.DataFrame, logits: torch.Tensor, targets: torch.Tensor, movement: pd.DataFrame,
                comparison: pd.DataFrame) -> str:
    """What RA-CNN would have to show, and whether this run shows it: finer scales more accurate, the
    ranking loss falling, the APN moving its squares image by image, and its squares holding the
    abnormality more often than the square it started from."""
    pred = logits.argmax(-1)
    acc = [(pred[:, s] == targets).float().mean().item() for s in range(logits.shape[1])]
    p = logits.softmax(-1).gather(2, targets.view(-1, 1, 1).expand(-1, logits.shape[1], 1))[..., 0]
    ordered = (p[:, 1:] > p[:, :-1]).all(1).float().mean().item()
    parts = [("Validation image accuracy per scale: " + ", ".join(f"scale {s + 1} {a:.0%}" for s, a in enumerate(acc))
              + (f"; the finest scale is {abs(acc[-1] - acc[0]) * 100:.1f} points "
                 f"{'above' if acc[-1] > acc[0] else 'below' if acc[-1] < acc[0] else 'level with'} the first "
                 f"(Fu et al. gained {RACNN_GAIN[0]}-{RACNN_GAIN[1]} points by zooming)."))]
    one_class = [s + 1 for s in range(logits.shape[1]) if pred[:, s].unique().numel() < 2]
    if one_class:
        parts.append(f"Scale{'s' if len(one_class) > 1 else ''} {', '.join(map(str, one_class))} predicted one class "
                     "for every validation image: that accuracy is the class share, and that kappa is 0 by "
                     "construction.")
    cls = history[history.stage == "classifiers"]
    parts.append(f"The classifiers' training loss went from {cls.train_loss.iloc[0]:.3f} to "
                 f"{cls.train_loss.iloc[-1]:.3f} over their {len(cls)} epochs.")
    apn = history[history.stage == "APN"]
    if len(apn):
        parts.append(f"Over the {len(apn)} attention epochs the ranking loss went from {apn.train_loss.iloc[0]:.4f} to "
                     f"{apn.train_loss.iloc[-1]:.4f} (training); the true class's probability rises from each scale "
                     f"to the next, as that loss asks, on {ordered:.0%} of validation images.")
    for scale, r in movement.iterrows():
        moved = r.centre_shift >= 0.02 or abs(r.side - r.initial_side) >= 0.02
        same = r.centre_spread < 0.02
        parts.append(f"Scale {scale}'s squares {'moved' if moved else 'barely moved'} from the initial square: centres "
                     f"on average {r.centre_shift:.3f} of the image side from the middle, side {r.side:.3f} against "
                     f"{r.initial_side:.3f}; their centres spread {r.centre_spread:.3f} over images"
                     + (", so the APN proposes nearly the same square for every image." if same else "."))
    col = "contains_abnormality (abnormal images)"
    for s in movement.index:
        ra, init = f"RA-CNN scale {s}", f"initial square scale {s}"
        if ra in comparison.index and init in comparison.index and np.isfinite(comparison.loc[ra, col]):
            parts.append(f"At scale {s} the square holds at least half the abnormality box on "
                         f"{comparison.loc[ra, col]:.0%} of abnormal images, against {comparison.loc[init, col]:.0%} "
                         "for the initial square.")
    gbp = [i for i in comparison.index if i.startswith("GBP zoom step")]
    if gbp and np.isfinite(comparison.loc[gbp[0], col]):
        first = comparison.loc[gbp[0]]
        parts.append(f"Guided backprop's first zoom crop ({first.crop_fraction_of_image:.0%} of the image) holds it on "
                     f"{first[col]:.0%}.")
    return " ".join(parts)


# --------------------------------------------------------------------------- checks and findings


def _study_measure(s: pd.DataFrame) -> Measure:
    return bootstrap_measure(kappa_score, s.label.to_numpy(), s.pred.to_numpy(), chance=0.0)


def measures(archive: mz.Archive, baseline: dict, fusion: dict, racnn_logits: torch.Tensor) -> dict[str, Measure]:
    """Study-level kappas with 95% bootstrap intervals over validation studies: the per-view VGG19, early
    fusion and RA-CNN's combined prediction."""
    racnn_prob = F.softmax(RACNN.combine(racnn_logits), 1)[:, 1].numpy()
    return {"per-view VGG19 study kappa": _study_measure(mz.study_predictions(archive.valid, baseline["probs"])),
            "early fusion study kappa": _study_measure(fusion["studies"]),
            "RA-CNN study kappa": _study_measure(mz.study_predictions(archive.valid, racnn_prob))}


def findings(fusion_t: pd.DataFrame, comparison: pd.DataFrame, history: pd.DataFrame) -> list[dict]:
    """The paper's claims against this run: early fusion no better than per view (Sec. IV-E); RA-CNN no
    better than the per-view network (Sec. IV-D); its classification loss flat (did not converge); and
    Fu et al.'s premise that zooming raises accuracy over the first scale (Sec. II-C). A model that
    predicted one class for every study has no kappa to compare: that row is undefined, and the words say why."""
    out = []
    diff = fusion_t.study_kappa.iloc[1] - fusion_t.study_kappa.iloc[0]
    if (fusion_t.classes_predicted < 2).any():
        diff = float("nan")
    out.append(finding("Early fusion of a study's views is not better than one view per sample (Sec. IV-E)",
                       paper="'did not lead to better results' (no numbers)", ours=diff, unit="kappa",
                       holds=diff <= 0.02, rule="fusion study kappa - per-view study kappa <= 0.02 (both predict "
                                                 "both classes)"))
    if "RA-CNN combined" in comparison.index:
        base, ra = comparison.loc["per-view VGG19 (no zoom)"], comparison.loc["RA-CNN combined"]
        gain = ra.study_kappa - base.study_kappa
        if ra.get("classes_predicted", 2) < 2 or base.get("classes_predicted", 2) < 2:
            gain = float("nan")
        out.append(finding("RA-CNN does not beat the VGG19 baseline on these radiographs (Sec. IV-D)",
                           paper="no gain reproduced in up to 9 hours", ours=gain, unit="kappa", holds=gain <= 0.02,
                           rule="RA-CNN combined study kappa - per-view study kappa <= 0.02 (both predict both "
                                "classes)"))
        gain = 100 * (ra.image_accuracy - comparison.loc["RA-CNN scale 1", "image_accuracy"])
        out.append(finding("Zooming raises accuracy over the first scale (Fu et al., as Sec. II-C quotes)",
                           paper=f"+{RACNN_GAIN[0]} to +{RACNN_GAIN[1]} points (birds)", ours=gain, unit="points",
                           holds=gain > 0, rule="RA-CNN combined - scale-1 validation image accuracy > 0 points"))
    cls = history[history.stage == "classifiers"]
    if len(cls) > 1:
        ratio = cls.train_loss.iloc[-1] / cls.train_loss.iloc[0]
        out.append(finding("RA-CNN's classification loss stays flat (Sec. IV-D)",
                           paper="'not converging and rippling around the same loss value'", ours=ratio, unit="x",
                           holds=ratio > 0.9, rule="last / first classifier-stage training loss > 0.9"))
    return out


# --------------------------------------------------------------------------- figures


def plot_fusion_input(dataset: FusionSet, *, n_views: int = 2, path=None):
    """The six input channels of the first study with `n_views` views, titled by their slot's rule."""
    i = next((k for k, p in enumerate(dataset.paths) if len(p) == n_views), 0)
    views = dataset.views(i)
    fig, axes = plt.subplots(1, len(views), figsize=(1.6 * len(views), 2.0), squeeze=False)
    for ax, im, slot in zip(axes[0], views, dataset.plans[i]):
        ax.imshow(im, cmap="gray", vmin=0, vmax=1)
        how = "+".join(w for w, on in (("crop", slot["crop"] is not None), ("mirror", slot["mirror"])) if on)
        ax.set_title(f"view {slot['view'] + 1}" + (f" {how}" if how else ""), fontsize=8)
        ax.axis("off")
    fig.suptitle(f"early-fusion input of a {len(dataset.paths[i])}-view study ({dataset.body_part[i].lower()})",
                 fontsize=9)
    return finish(fig, path, tight_bbox=False)


def plot_racnn_squares(archive: mz.Archive, crops: pd.DataFrame, *, n: int = 4, path=None):
    """Abnormal validation images with RA-CNN's scale-2 (yellow) and scale-3 (orange) squares, the initial
    scale-2 square (white, dashed) and the ground truth (red: abnormality, cyan: flag)."""
    ab, fl = archive.truth(archive.valid)
    idx = [i for i in range(len(archive.valid)) if ab[i]][:n]
    fig, axes = plt.subplots(1, max(1, len(idx)), figsize=(2.6 * max(1, len(idx)), 3.0), squeeze=False)
    per_image = {name: g.reset_index(drop=True) for name, g in crops.groupby("step", sort=False)}
    for ax, i in zip(axes[0], idx):
        ax.imshow(mz.load_image(archive.valid.path.iloc[i], rescale=True), cmap="gray", vmin=0, vmax=1)
        for name, color, style in (("RA-CNN scale 2", "yellow", "-"), ("RA-CNN scale 3", "orange", "-"),
                                   ("initial square scale 2", "white", "--")):
            if name in per_image:
                r = per_image[name].iloc[i]
                ax.add_patch(Rectangle((r.x0, r.y0), r.x1 - r.x0, r.y1 - r.y0, fill=False, color=color, ls=style,
                                       lw=1.2))
        for boxes, color in ((ab[i], "red"), (fl[i], "cyan")):
            for x0, y0, x1, y1 in boxes:
                ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=color, lw=1.0))
        ax.axis("off")
    fig.suptitle("RA-CNN squares: yellow scale 2, orange scale 3, white dashed the initial square", fontsize=9)
    return finish(fig, path, tight_bbox=False)

