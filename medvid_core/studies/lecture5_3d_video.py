"""Lecture 5 companion ("Medical Images: 3D and Video"): the section runners, the lecture's example sizes,
the published numbers shown beside ours, and the lesson's own figures.

Every runner builds its data with the kit's generators (`synth.lung_nodule`, `synth.nuclei`,
`synth.action_video`), its models from the registry, trains with `medvid_core.train.fit` and scores with
`medvid_core.metrics`. Defaults are sized for a laptop: the whole notebook runs in a few minutes on 2 cores.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

import medvid_core.models.frame_average  # noqa: F401  (registers frame_average_small, cnn_lstm_small)
import medvid_core.models.inflate  # noqa: F401
import medvid_core.models.multiview  # noqa: F401
import medvid_core.models.small_cnn  # noqa: F401
import medvid_core.models.two_stream  # noqa: F401
from medvid_core.io.nifti import load_volume
from medvid_core.io.nuclei import load_nuclei_sample
from medvid_core.losses import SparseDiceCELoss
from medvid_core.findings import finding
from medvid_core.metrics import Measure, accuracy, auc_score, average_precision, bootstrap_measure, dice, layer_cost
from medvid_core.models import count_parameters, get_model
from medvid_core.paths import data_dir
from medvid_core.plots import finish
from medvid_core.synth.action_video import render_clip
from medvid_core.synth.lung_nodule import UNLABELLED, ensure_nodule_cubes, ensure_sparse_volumes
from medvid_core.synth.nuclei import ensure_nuclei_images
from medvid_core.timing import timed
from medvid_core.train import evaluate, fit, seed_everything
from medvid_core.transforms import flow_stack, hu_to_unit, orthogonal_views

STUDY = "lecture5_3d_video"

# The lecture's two examples, as (channels, depth or frames, height, width)
CT_EXAMPLE = (1, 256, 224, 224)  # a 224 x 224 x 1 x 256 CT scan (256 slices)
VIDEO_EXAMPLE = (3, 500, 224, 224)  # a 224 x 224 x 3 x 500 RGB video (500 frames)

# He et al. (ICCV 2017), Mask R-CNN, COCO test-dev mask AP (the table on the lecture's slides)
MASK_RCNN_COCO = pd.DataFrame(
    [("MNC, ResNet-101-C4", 24.6, 44.3, 24.8), ("FCIS+OHEM, ResNet-101-C5-dilated", 29.2, 49.5, None),
     ("Mask R-CNN, ResNet-101-C4", 33.1, 54.9, 34.8), ("Mask R-CNN, ResNet-101-FPN", 35.7, 58.0, 37.8),
     ("Mask R-CNN, ResNeXt-101-FPN", 37.1, 60.0, 39.4)], columns=["method", "AP", "AP50", "AP75"])

#: where the findings that a laptop run does not show can be seen (named by the notebook's findings cell)
LONGER_RUNS = ("`params/lecture5_3d_video/longer.yaml` trains every section longer on more data; the test sets here "
               "hold a few dozen samples, so one or two of them decide a small difference.")
WIDTHS = (8, 16, 32)  # channels of the lesson's small CNNs: each trains in seconds on a CPU
CROP = 24  # voxels per side the nodule models see (the centre of the 32-voxel cube)

REFERENCES = {
    "ciompi": "Ciompi et al., Automatic classification of pulmonary peri-fissural nodules in CT using an ensemble "
              "of 2D views and a CNN out-of-the-box, Medical Image Analysis 2015",
    "huang": "Huang et al., Lung nodule detection in CT using 3D convolutional neural networks, ISBI 2017",
    "cicek": "Cicek et al., 3D U-Net: learning dense volumetric segmentation from sparse annotation, MICCAI 2016",
    "i3d": "Carreira & Zisserman, Quo vadis, action recognition? A new model and the Kinetics dataset, CVPR 2017",
    "two_stream": "Simonyan & Zisserman, Two-stream convolutional networks for action recognition in videos, "
                  "NeurIPS 2014",
    "mask_rcnn": "He et al., Mask R-CNN, ICCV 2017",
    "icu": "Yeung, Salipur et al., A computer vision system for deep learning-based detection of patient "
           "mobilization activities in the ICU, npj Digital Medicine 2019",
}


def _loader(*tensors, batch_size: int, shuffle: bool = False, seed: int = 0, dataset=None) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(dataset if dataset is not None else TensorDataset(*tensors), batch_size=batch_size,
                      shuffle=shuffle, generator=g)


def _split(y: np.ndarray, test_size: float, seed: int):
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(len(y)), test_size=test_size, stratify=y, random_state=seed)


def _scores(model, loader, *, keep: dict | None = None, name: str = "", **kw) -> dict:
    """Accuracy (and AUC for two classes) on `loader`; `keep[name]` gets (targets, probabilities)."""
    ev = evaluate(model, loader, **kw)
    out = {"accuracy": accuracy(ev["outputs"], ev["targets"])["accuracy"]}
    probs = ev["outputs"].softmax(1)
    if keep is not None:
        keep[name] = (ev["targets"].numpy(), probs.numpy())
    if probs.shape[1] == 2:
        from sklearn.metrics import roc_auc_score

        out["auc"] = float(roc_auc_score(ev["targets"].numpy(), probs[:, 1].numpy()))
    return out


# ============================================================================ 1. 2D against 3D convolution

def conv_cost_table(*, out_channels: int = 64, kernel: int = 3) -> pd.DataFrame:
    """One conv layer on the lecture's CT and video examples, three ways, measured on the meta device:
    a 2D conv slice by slice (slices as the batch), a 2D conv with all slices stacked as channels, a 3D conv."""
    rows = []
    for name, (c, d, h, w) in (("CT 224x224x1x256", CT_EXAMPLE), ("video 224x224x3x500", VIDEO_EXAMPLE)):
        ways = {"2D, slice by slice": (nn.Conv2d(c, out_channels, kernel, padding=kernel // 2), (d, c, h, w)),
                "2D, slices as channels": (nn.Conv2d(c * d, out_channels, kernel, padding=kernel // 2), (1, c * d, h, w)),
                "3D": (nn.Conv3d(c, out_channels, kernel, padding=kernel // 2), (1, c, d, h, w))}
        for way, (layer, shape) in ways.items():
            cost = layer_cost(layer, shape)
            rows.append({"input": name, "layer": way, "weight shape": tuple(layer.weight.shape),
                         "params": cost["params"], "output shape": cost["output_shape"],
                         "GFLOPs": round(cost["gflops"], 1), "output MB": round(cost["output_mb"])})
    return pd.DataFrame(rows)


def scaled_conv_run(*, conv_scale: int = 4, out_channels: int = 64, kernel: int = 3, repeats: int = 3) -> pd.DataFrame:
    """Actually run the three layers on the CT example shrunk `conv_scale` times along every axis: the measured
    output shapes and FLOPs, and the milliseconds each layer takes on this machine."""
    c, d, h, w = CT_EXAMPLE
    d, h, w = d // conv_scale, h // conv_scale, w // conv_scale
    torch.manual_seed(0)
    ways = {"2D, slice by slice": (nn.Conv2d(c, out_channels, kernel, padding=kernel // 2), (d, c, h, w)),
            "2D, slices as channels": (nn.Conv2d(c * d, out_channels, kernel, padding=kernel // 2), (1, c * d, h, w)),
            "3D": (nn.Conv3d(c, out_channels, kernel, padding=kernel // 2), (1, c, d, h, w))}
    rows = []
    for way, (layer, shape) in ways.items():
        x = torch.randn(shape)
        with torch.no_grad():
            y = layer(x)
            with timed() as clock:
                for _ in range(repeats):
                    layer(x)
        rows.append({"layer": way, "input shape": shape, "output shape": tuple(y.shape),
                     "GFLOPs": round(layer_cost(layer, shape)["gflops"], 3),
                     "ms (this machine)": round(1000 * clock.wall / repeats, 1)})
    return pd.DataFrame(rows)


def filter_slide_figure(clip: np.ndarray, *, path=None):
    """How a 3D filter differs from a 2D one on a clip (T, H, W): a 2D edge filter answers every frame on its
    own; a 3x3x3 filter that subtracts the previous frame from the next answers only where something moves."""
    x = torch.as_tensor(clip, dtype=torch.float32)[None, None] / 255.0
    edge2d = torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]]).view(1, 1, 3, 3)
    motion3d = torch.zeros(1, 1, 3, 3, 3)
    motion3d[0, 0, 2], motion3d[0, 0, 0] = 1 / 9, -1 / 9  # mean of the next frame minus mean of the previous
    r2 = F.conv2d(x[0, 0, :, None], edge2d, padding=1)[:, 0]
    r3 = F.conv3d(x, motion3d, padding=(0, 1, 1))[0, 0]
    t = len(clip) // 2
    fig, axes = plt.subplots(1, 4, figsize=(12, 3))
    for ax, img, title in zip(axes, [clip[t - 1], clip[t], r2[t].abs(), r3[t - 1].abs()],
                              ["frame t-1", "frame t", "2D 3x3 edge filter on frame t", "3D 3x3x3 filter: t+1 minus t-1"]):
        ax.imshow(img, cmap="gray")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    return finish(fig, path, dpi=100)


# ============================================================================ 2. multi-view 2D against 3D (nodules)

def nodule_arrays(*, n_nodules: int = 160, seed: int = 0, crop: int = CROP):
    """Nodule cubes (generated once under data/<study>/nodules), their central `crop`^3 voxels, as
    (N, 1, crop, crop, crop) in [0, 1] (HU window -1000..400), labels, and the manifest."""
    manifest_path = ensure_nodule_cubes(data_dir() / STUDY / f"nodules_n{n_nodules}_s{seed}", n_nodules=n_nodules, seed=seed)
    m = pd.read_csv(manifest_path)
    vols = np.stack([load_volume(manifest_path.parent / p)[0] for p in m.path])
    a = (vols.shape[1] - crop) // 2
    vols = vols[:, a : a + crop, a : a + crop, a : a + crop]
    x = hu_to_unit(vols, low=-1000, high=400)[:, None]
    return torch.from_numpy(np.ascontiguousarray(x)), torch.tensor(m.target.to_numpy()), m


class _Cubes(Dataset):
    """Cubes with random flips and axis swaps (a nodule's label does not change with its orientation);
    `views=True` gives the three orthogonal views (1, 3, S, S) instead, `single_view=True` one random view."""

    def __init__(self, x, y, *, augment: bool, views: bool = False, single_view: bool = False, seed: int = 0):
        self.x, self.y, self.augment, self.views, self.single = x, y, augment, views, single_view
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        v = self.x[i, 0]
        if self.augment:
            v = v.permute(*(int(a) for a in self.rng.permutation(3)))
            v = v.flip([int(a) for a in np.flatnonzero(self.rng.random(3) < 0.5)])
        if self.single:
            return torch.from_numpy(orthogonal_views(v.numpy())[self.rng.integers(3)])[None], self.y[i]
        if self.views:
            return torch.from_numpy(orthogonal_views(v.numpy()))[None], self.y[i]
        return v[None].contiguous(), self.y[i]


def run_multiview_vs_3d(*, n_nodules: int = 160, nodule_epochs: int = 12, nodule_lr: float = 3e-3,
                        batch_size: int = 16, test_size: float = 0.3, seed: int = 0, device: str = "auto") -> dict:
    """Ciompi et al.'s two-stage multi-view 2D pipeline against a small 3D CNN on the same nodules.

    Stage 1: the 2D net learns from single views (each with its nodule's label); stage 2: a linear classifier
    on the three views' log-probabilities (the 2D net frozen). The 3D CNN sees the whole cube. Returns the
    test table (per-view stage-1 scores too), the models and their histories."""
    x, y, manifest = nodule_arrays(n_nodules=n_nodules, seed=seed)
    tr, te = _split(y.numpy(), test_size, seed)
    kw = dict(epochs=nodule_epochs, lr=nodule_lr, weight_decay=1e-4, head="fc", warmup_epochs=1, desc="", device=device)
    test_views = _loader(dataset=_Cubes(x[te], y[te], augment=False, views=True), batch_size=64)
    seed_everything(seed)
    mv = get_model("multiview_cnn2d_small", widths=WIDTHS)
    h1 = fit(mv.view_net, _loader(dataset=_Cubes(x[tr], y[tr], augment=True, single_view=True, seed=seed),
                                 batch_size=batch_size, shuffle=True, seed=seed), **kw)
    mv.cpu().view_net.requires_grad_(False).eval()  # trained on `device`; the rest runs on the CPU
    with torch.no_grad():
        feats = torch.cat([mv.view_log_probs(v) for v, _ in _loader(dataset=_Cubes(x[tr], y[tr], augment=False, views=True),
                                                                   batch_size=64)])
    h2 = fit(mv.fc, _loader(feats, y[tr], batch_size=batch_size, shuffle=True, seed=seed), epochs=30, lr=0.05,
             head=None, desc="", device=device)
    mv.cpu()
    seed_everything(seed)
    net3d = get_model("cnn3d_small", widths=WIDTHS)
    h3 = fit(net3d, _loader(dataset=_Cubes(x[tr], y[tr], augment=True, seed=seed), batch_size=batch_size,
                            shuffle=True, seed=seed), **kw)
    net3d.cpu()
    rows, keep = [], {}
    for k, name in enumerate(("axial", "coronal", "sagittal")):
        one = _loader(dataset=_ViewOf(_Cubes(x[te], y[te], augment=False, views=True), k), batch_size=64)
        label = f"stage 1 alone: {name} view (2D)"
        rows.append({"model": label, **_scores(mv.view_net, one, keep=keep, name=label)})
    for label, net, loader in (("multi-view 2D + second stage", mv, test_views),
                               ("3D CNN on the cube", net3d, _loader(x[te], y[te], batch_size=64))):
        rows.append({"model": label, **_scores(net, loader, keep=keep, name=label)})
    table = pd.DataFrame(rows)
    n_view, n_fc = (sum(p.numel() for p in m.parameters()) for m in (mv.view_net, mv.fc))  # frozen ones too
    table["params"] = [n_view] * 3 + [n_view + n_fc, count_parameters(net3d)]
    return {"table": table, "models": {"multiview": mv, "cnn3d": net3d},
            "histories": {"multi-view stage 1": h1, "multi-view stage 2": h2, "3D CNN": h3},
            "n_train": len(tr), "n_test": len(te), "manifest": manifest, "predictions": keep}


class _ViewOf(Dataset):
    def __init__(self, views: Dataset, k: int):
        self.views, self.k = views, k

    def __len__(self):
        return len(self.views)

    def __getitem__(self, i):
        v, y = self.views[i]
        return v[:, self.k], y


def nodule_figure(x, manifest: pd.DataFrame, *, per_class: int = 3, path=None):
    """Three orthogonal views (axial, coronal, sagittal) of a few nodules of each class."""
    picks = [i for c in (1, 0) for i in np.flatnonzero(manifest.target.to_numpy() == c)[:per_class]]
    fig, axes = plt.subplots(len(picks), 3, figsize=(5, 1.7 * len(picks)))
    for row, i in zip(axes, picks):
        for ax, view, name in zip(row, orthogonal_views(x[i, 0].numpy()), ("axial", "coronal", "sagittal")):
            ax.imshow(view, cmap="gray", vmin=0, vmax=1)
            ax.set_axis_off()
            ax.set_title(f"{manifest.label[i]} {manifest.nodule[i][-4:]}: {name}", fontsize=7)
    return finish(fig, path, dpi=100)


def curves_figure(histories: dict, *, path=None):
    """Training loss per epoch for each named history."""
    fig, ax = plt.subplots(figsize=(5, 3))
    for name, h in histories.items():
        h = pd.DataFrame(h)
        ax.plot(h["epoch"], h["train_loss"], label=name, marker=".")
    ax.set(xlabel="epoch", ylabel="training loss")
    ax.legend(fontsize=7)
    return finish(fig, path, dpi=100)


# ============================================================================ 3. 3D U-Net from sparse annotation

class _VolumeSteps(Dataset):
    """One volume served `steps` times per epoch with random flips (the same flip for image and labels)."""

    def __init__(self, image, labels, *, steps: int, seed: int = 0):
        self.image, self.labels, self.steps = image, labels, steps
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return self.steps

    def __getitem__(self, i):
        axes = [int(a) for a in np.flatnonzero(self.rng.random(3) < 0.5)]
        return self.image.flip([a + 1 for a in axes]), self.labels.flip(axes)


def sparse_volumes(*, slices_per_axis: int = 2, volume_size: int = 40, seed: int = 0) -> dict:
    """The two synthetic volumes (train, unseen) with dense and sparse labels, as tensors."""
    root = data_dir() / STUDY / f"sparse_v{volume_size}_k{slices_per_axis}_s{seed}"
    manifest_path = ensure_sparse_volumes(root, slices_per_axis=slices_per_axis, shape=(volume_size,) * 3,
                                          n_tubes=round(14 * (volume_size / 48) ** 2), seed=seed)
    m = pd.read_csv(manifest_path)
    out = {}
    for _, r in m.iterrows():
        img = load_volume(root / r.image)[0]
        img = (img - img.mean()) / img.std()
        out[r.volume] = {"image": torch.from_numpy(img)[None], "labels": torch.from_numpy(load_volume(root / r.labels)[0]).long(),
                         "sparse": torch.from_numpy(load_volume(root / r.sparse_labels)[0]).long()}
    return out


def run_sparse_unet(*, slices_per_axis: int = 2, volume_size: int = 40, unet_epochs: int = 6, unet_steps: int = 10, unet_lr: float = 1e-2,
                    unet_channels: tuple = (8, 16, 32), seed: int = 0, device: str = "auto") -> dict:
    """MONAI's 3D U-Net trained twice on volume 0, from its sparse slices (unlabelled voxels weightless in
    `SparseDiceCELoss`) and from its dense labels; Dice of the foreground against the full ground truth of
    volume 0 (Cicek et al.'s semi-automated setting) and of an unseen volume 1 (fully automated)."""
    from monai.networks.nets import UNet

    vols = sparse_volumes(slices_per_axis=slices_per_axis, volume_size=volume_size, seed=seed)
    train, unseen = vols["vol_00"], vols["vol_01"]
    rows, preds, histories = [], {}, {}
    for labels in ("sparse", "labels"):
        seed_everything(seed)
        net = UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=tuple(unet_channels),
                   strides=(2,) * (len(unet_channels) - 1), num_res_units=1)
        loss = SparseDiceCELoss(ignore_index=UNLABELLED)
        data = _VolumeSteps(train["image"], train[labels], steps=unet_steps, seed=seed)
        name = "sparse slices" if labels == "sparse" else "dense labels"
        histories[name] = fit(net, _loader(dataset=data, batch_size=2, seed=seed), epochs=unet_epochs, lr=unet_lr,
                              loss_fn=loss, head=None, desc="", device=device)
        net.cpu().eval()
        row = {"trained on": name, "labelled voxels": float((train[labels] != UNLABELLED).float().mean())}
        with torch.no_grad():
            for key, vol in (("volume 0 (same, all voxels)", train), ("volume 1 (unseen)", unseen)):
                pred = net(vol["image"][None]).argmax(1)[0]
                row[f"Dice {key}"] = dice(pred.numpy(), vol["labels"].numpy(), num_classes=2)[1]
                preds[name, key] = pred.numpy()
        rows.append(row)
    return {"table": pd.DataFrame(rows), "predictions": preds, "volumes": vols, "histories": histories}


def sparse_unet_figure(result: dict, *, path=None):
    """Volume 0: image, the sparse annotation on one xy slice row, dense truth, and both predictions."""
    vol = result["volumes"]["vol_00"]
    z = int(np.argmax((vol["sparse"] != UNLABELLED).float().mean((0, 1)).numpy()))  # a labelled xy slice
    zs = z + 3  # and an unlabelled one next to it
    sparse = vol["sparse"].numpy().astype(float)
    sparse[sparse == UNLABELLED] = np.nan
    panels = [(vol["image"][0, :, :, zs], "image (xy slice)", "gray"),
              (sparse[:, :, zs], "what the annotator labelled\n(white: unlabelled)", "viridis"),
              (vol["labels"][:, :, zs], "full ground truth", "viridis"),
              (result["predictions"]["sparse slices", "volume 0 (same, all voxels)"][:, :, zs], "U-Net from sparse", "viridis"),
              (result["predictions"]["dense labels", "volume 0 (same, all voxels)"][:, :, zs], "U-Net from dense", "viridis")]
    fig, axes = plt.subplots(1, 5, figsize=(14, 3))
    for ax, (img, title, cmap) in zip(axes, panels):
        ax.imshow(np.asarray(img), cmap=cmap, vmin=None if cmap == "gray" else 0, vmax=None if cmap == "gray" else 1)
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    return finish(fig, path, dpi=100)


def sparse_mask_figure(result: dict, *, path=None):
    """Where the labels are: the labelled voxels of volume 0 seen from the three axes (projection)."""
    lab = (result["volumes"]["vol_00"]["sparse"] != UNLABELLED).float()
    fig, axes = plt.subplots(1, 3, figsize=(8, 2.8))
    for ax, axis, name in zip(axes, (2, 1, 0), ("seen along z (xy)", "seen along y (xz)", "seen along x (yz)")):
        ax.imshow(lab.mean(axis).numpy(), cmap="magma", vmin=0, vmax=1)
        ax.set_title(f"labelled fraction, {name}", fontsize=8)
        ax.set_axis_off()
    return finish(fig, path, dpi=100)


# ============================================================================ 4. I3D inflation

def inflation_check(*, image_size: int = 64, frames: int = 8, time_kernel: int = 3, seed: int = 0) -> dict:
    """torchvision's ResNet-18 (random init; BN statistics set), its inflation with replicate and with zero
    time padding, on a boring video made of one action frame. Returns the output gaps and, per frame, how far
    the last stage's features sit from the 2D network's on that frame."""
    from torchvision.models import resnet18

    from medvid_core.models.inflate import boring_video, inflate

    torch.manual_seed(seed)
    net2d = resnet18(weights=None).eval()
    frame = render_clip("HorseRiding", seed=seed, frames=1, height=image_size, width=image_size)[0]
    x = (torch.from_numpy(frame).permute(2, 0, 1).float()[None] / 255 - 0.45) / 0.225
    with torch.no_grad():
        out2d = net2d(x)
        feat2d = nn.Sequential(*list(net2d.children())[:-2])(x)
        rows, per_frame = [], {}
        for mode in ("replicate", "zeros"):
            net3d = inflate(net2d, time_kernel=time_kernel, time_padding=mode).eval()
            video = boring_video(x, frames)
            out3d = net3d(video)
            feat3d = nn.Sequential(*list(net3d.children())[:-2])(video)
            per_frame[mode] = [float((feat3d[:, :, t] - feat2d).abs().max()) for t in range(frames)]
            rows.append({"time padding": mode, "max |logit 3D - logit 2D|": float((out3d - out2d).abs().max()),
                         "same top class": bool(out3d.argmax() == out2d.argmax()),
                         "params 2D": count_parameters(net2d), "params 3D": count_parameters(net3d)})
    return {"table": pd.DataFrame(rows), "per_frame": pd.DataFrame(per_frame), "frame": frame}


def inflation_figure(result: dict, *, path=None):
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3), gridspec_kw={"width_ratios": [1, 2.5]})
    a.imshow(result["frame"])
    a.set_title("the frame, repeated = a boring video", fontsize=9)
    a.set_axis_off()
    result["per_frame"].plot.bar(ax=b, logy=True)
    b.set(xlabel="frame", ylabel="max |3D feature - 2D feature|", title="last-stage features per frame")
    return finish(fig, path, dpi=100)


# ============================================================================ 5-6. action clips: flow, two-stream, CNN+RNN

def action_clips(*, actions=("Mixing", "JumpingJack", "HorseRiding"), clips_per_class: int = 30, frames: int = 8,
                 frame_size: int = 48, reversed_classes: bool = False, stride: int = 2, seed: int = 0):
    """Synthetic action clips (`synth.action_video.render_clip`, every `stride`-th frame): uint8
    (N, T, H, W, 3), labels, class names. With `reversed_classes`, each action is also played backwards as a
    class of its own (like "get into bed" and "get out of bed" in the ICU study): a backward clip is a forward
    clip of another seed reversed in time, so single frames cannot tell the two directions apart."""
    clips, labels, names = [], [], []
    per_action = 2 if reversed_classes else 1
    for a, action in enumerate(actions):
        names += [action, f"{action} (reversed)"][:per_action]
        for i in range(per_action * clips_per_class):
            c = render_clip(action, seed=seed * 100_000 + i, frames=frames * stride, height=frame_size,
                            width=frame_size)[::stride]
            backwards = i % per_action
            clips.append(c[::-1] if backwards else c)
            labels.append(per_action * a + backwards)
    return np.ascontiguousarray(np.stack(clips)), torch.tensor(labels), names


def _rgb(clips) -> torch.Tensor:  # (N, T, H, W, 3) uint8 -> (N, 3, T, H, W) float
    return torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float() / 255.0


def _grey(clips) -> np.ndarray:
    return clips.astype(np.float32).mean(-1)


def run_two_stream(*, clips, frames: int = 8, action_epochs: int = 15, action_lr: float = 3e-3,
                   batch_size: int = 16, test_size: float = 0.3, seed: int = 0, device: str = "auto") -> dict:
    """Spatial stream (the middle RGB frame) and temporal stream (the clip's stacked Farneback flow) trained
    apart, then fused by averaging their softmax scores (Simonyan & Zisserman)."""
    video, y, names = clips
    rgb = _rgb(video)[:, :, frames // 2]  # (N, 3, H, W): one frame
    flow = torch.from_numpy(np.stack([flow_stack(c, subtract_mean=True) for c in _grey(video)]))  # (N, 2(T-1), H, W)
    tr, te = _split(y.numpy(), test_size, seed)
    kw = dict(epochs=action_epochs, lr=action_lr, head="fc", warmup_epochs=1, desc="", device=device)
    model = get_model("two_stream_small", num_classes=len(names), flow_frames=frames - 1, widths=WIDTHS)
    seed_everything(seed)
    hs = fit(model.spatial, _loader(rgb[tr], y[tr], batch_size=batch_size, shuffle=True, seed=seed), **kw)
    seed_everything(seed)
    ht = fit(model.temporal, _loader(flow[tr], y[tr], batch_size=batch_size, shuffle=True, seed=seed), **kw)
    model.cpu()
    pairs = _Pairs(rgb[te], flow[te], y[te])
    keep, rows = {}, []
    for label, net, loader, kw in (
            ("spatial stream (RGB frame) alone", model.spatial, _loader(rgb[te], y[te], batch_size=64), {}),
            ("temporal stream (optical flow) alone", model.temporal, _loader(flow[te], y[te], batch_size=64), {}),
            ("two-stream, late fusion (average)", model, _loader(dataset=pairs, batch_size=64), {"loss_fn": F.nll_loss})):
        rows.append({"model": label, **_scores(net, loader, keep=keep, name=label, **kw)})
    return {"table": pd.DataFrame(rows), "model": model, "predictions": keep, "n_train": len(tr), "n_test": len(te),
            "histories": {"spatial": hs, "temporal": ht},
            "classes": names, "clips": clips, "flow": flow}


class _Pairs(Dataset):
    def __init__(self, rgb, flow, y):
        self.rgb, self.flow, self.y = rgb, flow, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return (self.rgb[i], self.flow[i]), self.y[i]


def flow_figure(clip: np.ndarray, *, path=None):
    """Two consecutive frames, and the flow between them: horizontal and vertical components, as images."""
    t = len(clip) // 2
    f = flow_stack(_grey(clip[t : t + 2]))
    lim = max(1.0, float(np.abs(f).max()))
    fig, axes = plt.subplots(1, 4, figsize=(12, 3))
    for ax, img, title, kw in zip(axes, [clip[t], clip[t + 1], f[0], f[1]],
                                  ["frame t", "frame t+1", "flow dx (red: right)", "flow dy (red: down)"],
                                  [{}, {}, dict(cmap="RdBu_r", vmin=-lim, vmax=lim), dict(cmap="RdBu_r", vmin=-lim, vmax=lim)]):
        ax.imshow(img, **kw)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    return finish(fig, path, dpi=100)


def run_cnn_rnn(*, clips, action_epochs: int = 15, action_lr: float = 3e-3, batch_size: int = 16,
                frame_grid: int = 1, test_size: float = 0.3, seed: int = 0, device: str = "auto") -> dict:
    """The same small per-frame CNN, features averaged over frames vs an LSTM over them, end to end."""
    video, y, names = clips
    x = _rgb(video)
    tr, te = _split(y.numpy(), test_size, seed)
    rows, histories, models, keep = [], {}, {}, {}
    for name, label in (("frame_average_small", "per-frame CNN, features averaged"),
                        ("cnn_lstm_small", "per-frame CNN + LSTM")):
        seed_everything(seed)
        net = get_model(name, num_classes=len(names), widths=WIDTHS, grid=frame_grid)
        histories[label] = fit(net, _loader(x[tr], y[tr], batch_size=batch_size, shuffle=True, seed=seed),
                               epochs=action_epochs, lr=action_lr, head="fc", warmup_epochs=1, desc="", device=device)
        net.cpu()
        rows.append({"model": label, **_scores(net, _loader(x[te], y[te], batch_size=64), keep=keep, name=label),
                     "params": count_parameters(net)})
        models[label] = net
    return {"table": pd.DataFrame(rows), "histories": histories, "models": models, "predictions": keep}


@torch.no_grad()
def order_check(models: dict, clips) -> pd.DataFrame:
    """Each model's outputs (logits) for clips played forwards and backwards: how much does order matter?"""
    x = _rgb(clips[0][:8])
    rows = []
    for name, net in models.items():
        net.eval()
        gap = (net(x) - net(x.flip(2))).abs().max().item()
        rows.append({"model": name, "max output change when the clip is reversed": gap, "order-blind": gap < 1e-5})
    return pd.DataFrame(rows)


# ============================================================================ checking a run against its reference

def _accuracy_of(targets, probs) -> float:
    return accuracy(probs, targets)["accuracy"]


def _auc_of(targets, probs) -> float:
    return auc_score(targets, np.asarray(probs)[:, 1])


def _dice_of(pred, target) -> float:  # foreground Dice of the resampled slices
    return dice(pred, target, num_classes=2)[1]


def measures(*, nodules: dict, unet: dict, two_stream: dict, cnn_rnn: dict) -> dict[str, Measure]:
    """Every trained result of sections 2, 3, 5 and 6, with its 95% bootstrap interval: over test nodules
    or clips (accuracy; AUC for two classes), over the z-slices of a volume (Dice). What
    `medvid_core.reference.check` compares with the committed reference."""
    out = {}
    for section, result in (("nodules", nodules), ("two-stream", two_stream), ("cnn+rnn", cnn_rnn)):
        for label, (y, p) in result["predictions"].items():
            out[f"{section}: {label} accuracy"] = bootstrap_measure(_accuracy_of, y, p)
            if p.shape[1] == 2:
                out[f"{section}: {label} auc"] = bootstrap_measure(_auc_of, y, p, chance=0.5)
    for (trained_on, volume), pred in unet["predictions"].items():
        key = "vol_00" if volume.startswith("volume 0") else "vol_01"
        out[f"sparse U-Net: {trained_on}, Dice {volume}"] = bootstrap_measure(
            _dice_of, pred, unet["volumes"][key]["labels"].numpy())
    return out


# ---------------------------------------------------------------------------- what the numbers say, in words

def _n(x: float, n: int) -> int:
    return int(round(x * n))


def nodule_words(nodules: dict) -> str:
    """Section 2's result in words, from the table: the multi-view gain counted in test nodules."""
    t, n = nodules["table"].set_index("model"), nodules["n_test"]
    views = t[t.index.str.startswith("stage 1")].accuracy
    best, mv, c3 = views.idxmax().split(": ")[1], t.loc["multi-view 2D + second stage", "accuracy"], t.loc["3D CNN on the cube", "accuracy"]
    diff = _n(mv, n) - _n(views.max(), n)
    verdict = (f"beats the best single view ({best}, {views.max():.2f}) by {diff} of {n} test nodules"
               if diff > 0 else f"does not beat the best single view ({best}, {views.max():.2f}): "
               f"{'the same' if diff == 0 else f'{-diff} fewer'} of {n} test nodules right")
    small = " One or two nodules is within the noise of a test set this small." if abs(diff) <= 2 else ""
    return (f"In this run the multi-view model ({mv:.2f}) {verdict}.{small} The 3D CNN reaches {c3:.2f}: it sees the "
            f"fissure and the nodule's flatness whatever their orientation.")


def unet_words(unet: dict) -> str:
    """Section 3's result in words: sparse against dense Dice on the unseen volume, and what both miss."""
    t = unet["table"].set_index("trained on")
    s, d = t.loc["sparse slices", "Dice volume 1 (unseen)"], t.loc["dense labels", "Dice volume 1 (unseen)"]
    share = t.loc["sparse slices", "labelled voxels"]
    close = abs(s - d) <= 0.05
    text = (f"On the unseen volume the U-Net trained on {share:.0%} of the voxels scores Dice {s:.2f} against "
            f"{d:.2f} for dense labels: {'as good, within 0.05' if close else 'a clear difference'}.")
    if max(s, d) < 0.7:
        text += (f" Both stay below 0.7: in {len(unet['histories']['dense labels'])} epochs neither has learnt the "
                 "tubes' shape, and both still mark many of the round distractor blobs (see the figure). More epochs "
                 "and steps (`params/lecture5_3d_video/longer.yaml`) are the next thing to try.")
    return text


def two_stream_words(two_stream: dict, *, n_train: int, n_classes: int) -> str:
    """Section 5's result in words: each stream against chance, and whether averaging helped in this run."""
    acc = two_stream["table"].set_index("model").accuracy
    spatial, temporal, fused = acc.iloc[0], acc.iloc[1], acc.iloc[2]
    best = max(spatial, temporal)
    if fused > best:
        fusion = f"averaging their scores helps: {fused:.2f} against the better stream's {best:.2f}"
    else:
        fusion = (f"averaging does not help here: {fused:.2f} against the better stream's {best:.2f}. Late fusion pays "
                  "when the two streams are comparably good and wrong on different clips; a stream far weaker than "
                  "the other mostly adds noise")
    return (f"Chance is {1 / n_classes:.2f}. Trained from scratch on {n_train} clips, the spatial stream reaches "
            f"{spatial:.2f} and the flow stream {temporal:.2f}; {fusion}. Simonyan & Zisserman also found the flow "
            "stream the stronger one on UCF-101 (83.7% against 73.0%), and averaging gained 3 points there.")


def cnn_rnn_words(cnn_rnn: dict, order: pd.DataFrame, *, n_classes: int) -> str:
    """Section 6's result in words, from the accuracy table and the order check."""
    acc = cnn_rnn["table"].set_index("model").accuracy
    avg, lstm = acc.iloc[0], acc.iloc[1]
    change = order.set_index("model")["max output change when the clip is reversed"]
    if abs(avg - lstm) < 0.03:
        cmp = "the two score alike"
    else:
        cmp = "averaging scores higher" if avg > lstm else "the LSTM scores higher"
    return (f"Chance is {1 / n_classes:.2f}. Frame averaging reaches {avg:.2f} and the CNN + LSTM {lstm:.2f}: {cmp} "
            f"in this run. The order check above played test clips backwards: averaging's output moved by "
            f"{change.iloc[0]:.0e} (it cannot see order), the LSTM's by {change.iloc[1]:.2f}.")


def findings(*, costs: pd.DataFrame, nodules: dict, unet: dict, inflation: dict, two_stream: dict, cnn_rnn: dict,
             order: pd.DataFrame, roi: dict, instances: dict, kernel: int = 3) -> list[dict]:
    """One claim per section, from this run's numbers (`medvid_core.findings`)."""
    out = []
    ct = costs[costs.input.str.startswith("CT")].set_index("layer")
    ratio = ct.loc["3D", "GFLOPs"] / ct.loc["2D, slice by slice", "GFLOPs"]
    out.append(finding("1. A 3D layer costs the kernel's depth times a 2D layer slid slice by slice",
                       paper=f"a {kernel}x{kernel}x{kernel} filter has {kernel}x the weights of a {kernel}x{kernel} one",
                       ours=ratio, unit="x", holds=abs(ratio - kernel) < 0.05 * kernel, rule=f"FLOPs ratio = {kernel}"))
    nod = nodules["table"].set_index("model")
    single = nod[nod.index.str.startswith("stage 1")].accuracy.max()
    gain = nod.loc["multi-view 2D + second stage", "accuracy"] - single
    out.append(finding("2. Three views together beat the best single view (Ciompi et al.)",
                       paper="combining the views beat every single view", ours=gain, unit="accuracy",
                       holds=gain > 0, rule="multi-view - best single-view accuracy > 0"))
    u = unet["table"].set_index("trained on")
    col = "Dice volume 1 (unseen)"
    gap = u.loc["sparse slices", col] - u.loc["dense labels", col]
    out.append(finding("3. A few annotated slices train the 3D U-Net about as well as dense labels (Cicek et al.)",
                       paper="dense 3D segmentation from sparsely annotated slices", ours=gap, unit="Dice",
                       holds=gap >= -0.05, rule="sparse - dense Dice on the unseen volume >= -0.05"))
    i3d = inflation["table"].set_index("time padding")
    diff = i3d.loc["replicate", "max |logit 3D - logit 2D|"]
    out.append(finding("4. An inflated 2D network answers a boring video as the 2D network answers its frame (I3D)",
                       paper="the inflated filters' responses equal the 2D ones on a repeated frame",
                       ours=diff, unit="logit", holds=diff < 1e-4, rule="max |logit difference| < 1e-4"))
    two = two_stream["table"].set_index("model").accuracy
    gain = two.iloc[2] - max(two.iloc[0], two.iloc[1])
    out.append(finding("5. Late fusion of the two streams beats either stream (Simonyan & Zisserman)",
                       paper="UCF-101: spatial 73.0%, temporal 83.7%, averaged 86.9% (+3.2)", ours=gain,
                       unit="accuracy", holds=gain > 0, rule="fused - best single-stream accuracy > 0"))
    change = order.set_index("model")["max output change when the clip is reversed"]
    out.append(finding("6. A CNN + LSTM depends on frame order, averaged frame features do not",
                       paper="a recurrent network models the sequence; averaging discards it",
                       ours=change.iloc[1], unit="logit", holds=change.iloc[1] > 1e-3 and change.iloc[0] < 1e-5,
                       rule="LSTM output change on the reversed clip > 1e-3, averaging's < 1e-5"))
    err = roi["table"]["RoI Align error"].abs().max()
    out.append(finding("7. RoI Align samples the box exactly, RoI Pool snaps it to the grid (Mask R-CNN)",
                       paper="RoI Align removes RoI Pool's quantisation", ours=err, unit="feature units",
                       holds=err < 1e-6, rule="RoI Align's largest error < 1e-6"))
    ap = instances["table"].set_index("detector").AP
    out.append(finding("7. Splitting touching nuclei raises mask AP",
                       paper="AP counts a merged pair as one miss and one wrong detection", ours=ap.iloc[1] - ap.iloc[0],
                       unit="AP", holds=ap.iloc[1] > ap.iloc[0], rule="AP with the watershed split - without > 0"))
    return out


# ============================================================================ 7. RoI Pool vs RoI Align, mask AP

def roi_snapping(*, box=(1.3, 0.6, 6.1, 4.4), output_size: int = 2, feature_size: int = 8) -> dict:
    """A feature map that is a linear ramp f(y, x) = x + 10 y, the value of cell (y, x) sitting at the point
    (x, y); one box with fractional corners (x1, y1, x2, y2), pooled to `output_size` x `output_size` bins.

    RoI Pool rounds the corners to whole cells, splits those cells into bins (whole cells again) and takes
    each bin's max: the table shows the true bin next to the cells it actually pools. RoI Align (torchvision's default
    aligned=False convention, 2x2 bilinear samples per bin) never rounds; bilinear sampling of a linear map is
    exact, so it returns the exact bin mean, f at the bin centre."""
    from torchvision.ops import roi_align, roi_pool

    yy, xx = torch.meshgrid(torch.arange(feature_size, dtype=torch.float32),
                            torch.arange(feature_size, dtype=torch.float32), indexing="ij")
    fmap = (xx + 10 * yy)[None, None]
    rois = torch.tensor([[0, *box]], dtype=torch.float32)
    pooled = roi_pool(fmap, rois, output_size, spatial_scale=1.0)[0, 0]
    aligned = roi_align(fmap, rois, output_size, spatial_scale=1.0, sampling_ratio=2, aligned=False)[0, 0]
    x1, y1, x2, y2 = box
    bw, bh = (x2 - x1) / output_size, (y2 - y1) / output_size
    sx1, sy1, sx2, sy2 = (round(v) for v in box)  # RoI Pool's snapping (torchvision rounds the corners)
    pw, ph = (sx2 - sx1 + 1) / output_size, (sy2 - sy1 + 1) / output_size

    def cells(start, size, k):  # the whole cells RoI Pool's bin k covers
        return f"{math.floor(start + k * size)}..{math.ceil(start + (k + 1) * size) - 1}"

    rows = []
    for i in range(output_size):
        for j in range(output_size):
            rows.append({"bin (row, col)": (i, j),
                         "true bin x": f"{x1 + j * bw:.2f}..{x1 + (j + 1) * bw:.2f}",
                         "true bin y": f"{y1 + i * bh:.2f}..{y1 + (i + 1) * bh:.2f}",
                         "RoI Pool cells x": cells(sx1, pw, j), "RoI Pool cells y": cells(sy1, ph, i),
                         "RoI Pool (max)": round(float(pooled[i, j]), 2),
                         "exact mean": round((x1 + (j + 0.5) * bw) + 10 * (y1 + (i + 0.5) * bh), 2),
                         "RoI Align (mean)": round(float(aligned[i, j]), 2)})
    table = pd.DataFrame(rows)
    table["RoI Align error"] = (table["RoI Align (mean)"] - table["exact mean"]).round(2)
    return {"table": table, "feature_map": fmap[0, 0], "box": box, "output_size": output_size}


def roi_figure(result: dict, *, path=None):
    """The feature grid (cell values at integer points), the true box, the cells RoI Pool snaps it to, and
    RoI Align's bilinear sample points."""
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = result["box"]
    n = result["output_size"]
    fmap = result["feature_map"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, title in zip(axes, ("RoI Pool: corners snapped to cells", "RoI Align: bilinear samples, no snapping")):
        ax.imshow(fmap, cmap="Greys", alpha=0.35, extent=(-0.5, fmap.shape[1] - 0.5, fmap.shape[0] - 0.5, -0.5))
        ax.set_xticks(np.arange(-0.5, fmap.shape[1], 1), minor=True)
        ax.set_yticks(np.arange(-0.5, fmap.shape[0], 1), minor=True)
        ax.grid(which="minor", color="0.6", lw=0.5)
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="tab:blue", lw=2, label="box"))
        ax.set_title(title, fontsize=9)
    sx1, sy1, sx2, sy2 = round(x1), round(y1), round(x2), round(y2)  # roi_pool rounds, then includes the last cell
    axes[0].add_patch(Rectangle((sx1 - 0.5, sy1 - 0.5), sx2 - sx1 + 1, sy2 - sy1 + 1, fill=False, ec="tab:red",
                                lw=2, ls="--", label="cells RoI Pool uses"))
    axes[0].legend(fontsize=7, loc="lower right")
    bw, bh = (x2 - x1) / n, (y2 - y1) / n
    for i in range(n):
        for j in range(n):
            for a in (0.25, 0.75):
                for b in (0.25, 0.75):
                    axes[1].plot(x1 + (j + b) * bw, y1 + (i + a) * bh, "o", c="tab:orange", ms=4)
            axes[1].add_patch(Rectangle((x1 + j * bw, y1 + i * bh), bw, bh, fill=False, ec="tab:orange", lw=0.8))
    return finish(fig, path, dpi=100)


def _detect(image: np.ndarray, *, split_touching: bool):
    """A classical detector: Otsu threshold, connected components; optionally split touching nuclei by a
    watershed on the distance transform. Score = mean intensity inside the mask."""
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian, threshold_otsu
    from skimage.measure import label
    from skimage.segmentation import watershed
    from scipy import ndimage

    smooth = gaussian(image, 1.0)
    fg = smooth > threshold_otsu(smooth)
    if split_touching:
        dist = ndimage.distance_transform_edt(fg)
        peaks = peak_local_max(dist, min_distance=4, labels=label(fg))
        markers = np.zeros_like(fg, int)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        lab = watershed(-dist, markers, mask=fg)
    else:
        lab = label(fg)
    masks = np.stack([lab == k for k in range(1, lab.max() + 1) if (lab == k).sum() >= 10])
    scores = np.array([smooth[m].mean() for m in masks])
    return masks, scores


def run_instance_ap(*, n_images: int = 4, seed: int = 0) -> dict:
    """Two classical detectors on DSB-2018-style synthetic nuclei, scored by mask AP at IoU 0.5, 0.75 and
    averaged over 0.5:0.95 (`medvid_core.metrics.average_precision`, COCO's definition)."""
    root = ensure_nuclei_images(data_dir() / STUDY / f"nuclei_n{n_images}_s{seed}", n_images=n_images, seed=seed)
    samples = [load_nuclei_sample(p) for p in sorted(root.iterdir()) if p.is_dir()]
    rows, detections = [], {}
    for name, split in (("threshold + connected components", False), ("+ watershed split of touching nuclei", True)):
        dets = [_detect(img, split_touching=split) for img, _ in samples]
        ap = average_precision([g for _, g in samples], [d for d, _ in dets], [s for _, s in dets])
        rows.append({"detector": name, "AP": round(100 * ap["AP"], 1), "AP50": round(100 * ap["AP50"], 1),
                     "AP75": round(100 * ap["AP75"], 1), "detections": sum(len(d) for d, _ in dets),
                     "nuclei": sum(len(g) for _, g in samples)})
        detections[name] = dets
    return {"table": pd.DataFrame(rows), "samples": samples, "detections": detections}


def instance_figure(result: dict, *, path=None):
    """One image, its ground-truth instances, and each detector's instances."""
    img, gt = result["samples"][0]
    panels = [(img, "image", "gray"), (gt, "ground truth", None)]
    panels += [(d[0][0], name, None) for name, d in result["detections"].items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2))
    for ax, (p, title, cmap) in zip(axes, panels):
        if cmap is None:  # instance masks -> one colour per instance
            lab = (p * np.arange(1, len(p) + 1)[:, None, None]).max(0).astype(float)
            lab[lab == 0] = np.nan
            ax.imshow(lab, cmap="tab20", interpolation="nearest")
        else:
            ax.imshow(p, cmap=cmap)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    return finish(fig, path, dpi=100)
