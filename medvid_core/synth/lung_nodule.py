"""Synthetic chest-CT pieces for the 3D lessons: nodule cubes (peri-fissural or not) and a volume with
sparse slice annotations.

**Nodule cubes** (after Ciompi et al., MedIA 2015: peri-fissural nodules, PFN, against other nodules).
A nodule-classification pipeline works on a cube of CT cut around each candidate; this writes those
cubes as NIfTI files in Hounsfield units (int16, 1 mm isotropic) with a `manifest.csv` (path, label,
target, and the generating parameters beside them as ground truth). Each cube holds lung parenchyma
(-850 HU with correlated texture), one or two vessels and a nodule at the centre (jittered by a voxel):

* PFN: a flat, lens-shaped solid nodule lying *on* a fissure (a thin plane of about -650 HU), its short
  axis along the fissure's normal -- the shape radiologists call lentiform or triangular;
* non-PFN: a rounder, lobulated nodule; a fissure is present in 60% of cubes, but away from the nodule,
  and some non-PFNs are fairly flat, so neither "a fissure is visible" nor flatness alone decides.

Fissure orientation is random in 3D, so one 2D view may cut it at a grazing angle: that is why Ciompi
et al. look at three orthogonal views (and why a 3D CNN sees it whole).

**Sparse-annotation volume** (after Cicek et al., MICCAI 2016, 3D U-Net). Many repeated structures --
winding tubes (foreground) among round blobs of the same brightness (background) -- in noise and a
smooth bias field, so intensity alone does not separate them: shape does. Written as `image.nii.gz`
(float32), `labels.nii.gz` (dense ground truth, uint8) and `sparse_labels.nii.gz`: only a few xy, xz and
yz slices are labelled, every other voxel holds `UNLABELLED` (255).

Deterministic: the same arguments give byte-identical files (nibabel writes gzip without a timestamp).
"""
from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from ..cache import ensure
from ..io.nifti import save_volume
from .exact import dot

CUBE = 32  # voxels per side of a nodule cube (1 mm voxels: a 32 mm field around the candidate)
UNLABELLED = 255  # label value of voxels nobody annotated (the loss's ignore_index)
NODULE_CLASSES = ("non_pfn", "pfn")


def _save(data: np.ndarray, path: Path, dtype, voxel_mm: float = 1.0) -> None:
    save_volume(data, path, np.diag([voxel_mm] * 3 + [1.0]), dtype, xform_code=None)


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _frame(normal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An orthonormal basis whose first axis is `normal` (the other two random in its plane)."""
    a = np.linalg.qr(np.stack([normal, _unit(rng), _unit(rng)], axis=1))[0]
    return a * np.sign(dot(a[:, 0], normal))


def _grid(size: int) -> np.ndarray:
    return np.stack(np.meshgrid(*[np.arange(size, dtype=np.float32)] * 3, indexing="ij"), -1)  # (S,S,S,3) zyx


def _vessel(p: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """A straight vessel of 1-2 mm radius crossing the cube (soft profile)."""
    point, direction, radius = rng.uniform(0, size, 3), _unit(rng), rng.uniform(1.0, 2.0)
    d = p - point
    dist = np.linalg.norm(d - dot(d, direction)[..., None] * direction, axis=-1)
    return np.exp(-0.5 * (dist / radius) ** 2)


def _nodule_cube(rng: np.random.Generator, pfn: bool, size: int = CUBE) -> tuple[np.ndarray, dict]:
    p = _grid(size)
    centre = np.full(3, (size - 1) / 2) + rng.uniform(-1, 1, 3)
    hu = -850 + 30 * ndimage.gaussian_filter(rng.normal(size=(size,) * 3), 1.5) / 0.1  # textured parenchyma
    for _ in range(rng.integers(1, 3)):
        hu += 800 * _vessel(p, rng, size)
    normal = _unit(rng)
    basis = _frame(normal, rng)
    if pfn:  # lens on the fissure: short axis along the normal, centre just off the plane
        r_long = rng.uniform(3.5, 6.5)
        radii = np.array([r_long * rng.uniform(0.3, 0.55), r_long, r_long * rng.uniform(0.8, 1.0)])
        fissure_offset = rng.uniform(-0.5, 0.8) * radii[0]
        has_fissure = True
    else:  # rounder (sometimes fairly flat), the fissure if any passes at a distance
        r = rng.uniform(3.0, 6.0)
        radii = r * np.array([rng.uniform(0.55, 1.0), 1.0, rng.uniform(0.8, 1.0)])
        fissure_offset = rng.choice([-1, 1]) * (radii.max() + rng.uniform(3.0, 8.0))
        has_fissure = bool(rng.random() < 0.6)
    if has_fissure:
        dist = dot(p - centre, normal) - fissure_offset
        hu += 250 * np.exp(-0.5 * (dist / 0.6) ** 2)
    local = dot(p - centre, basis)  # coordinates along (normal, in-plane, in-plane)
    lobes = 1 + (0.0 if pfn else 0.15) * ndimage.gaussian_filter(rng.normal(size=(size,) * 3), 3) / 0.05
    inside = np.sqrt(((local / radii) ** 2).sum(-1)) <= lobes
    solid = ndimage.gaussian_filter(inside.astype(np.float32), 0.7)  # partial-volume edge
    hu = hu * (1 - solid) + rng.uniform(-20, 60) * solid
    hu += rng.normal(0, 20, hu.shape)  # quantum noise
    info = {"fissure": has_fissure, "flatness": float(radii.min() / radii.max()), "radius_mm": float(radii.max())}
    return np.clip(np.round(hu), -1024, 3071).astype(np.int16), info


def make_nodule_cubes(root: str | Path, *, n_nodules: int = 160, pfn_fraction: float = 0.5, seed: int = 0) -> Path:
    """Write `n_nodules` cubes under `root/nodules/` and `root/manifest.csv`; return the manifest path.

    Labels alternate deterministically to hit `pfn_fraction` (the paper's cohort was 84 PFN / 484 other;
    a balanced default keeps a small run learnable). Each cube draws from its own seeded stream.
    """
    root = Path(root)
    rows = []
    for i in range(n_nodules):
        pfn = (i * pfn_fraction) % 1 + pfn_fraction >= 1  # Bresenham-style: exactly round(n * fraction) PFNs
        rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
        cube, info = _nodule_cube(rng, bool(pfn))
        rel = f"nodules/nodule_{i:04d}.nii.gz"
        _save(cube, root / rel, np.int16)
        rows.append({"nodule": f"nodule_{i:04d}", "path": rel, "label": NODULE_CLASSES[int(pfn)],
                     "target": int(pfn), **info})
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def _tubes(rng: np.random.Generator, shape, n: int) -> np.ndarray:
    """Centre lines of `n` smoothly winding tubes (random walks with inertia), as a boolean volume."""
    lines = np.zeros(shape, bool)
    hi = np.array(shape) - 1
    for _ in range(n):
        pos, direction = rng.uniform(0, hi), _unit(rng)
        for _ in range(3 * max(shape)):
            direction = direction + 0.35 * _unit(rng)
            direction /= np.linalg.norm(direction)
            pos = pos + direction
            if (pos < 0).any() or (pos > hi).any():
                break
            lines[tuple(np.round(pos).astype(int))] = True
    return lines


def _sparse_volume(rng: np.random.Generator, shape, n_tubes: int, n_blobs: int):
    dist_tube = ndimage.distance_transform_edt(~_tubes(rng, shape, n_tubes))
    labels = dist_tube <= 1.8  # tube radius 1.8 voxels
    blobs = np.zeros(shape, bool)
    blobs[tuple(rng.integers(0, s, n_blobs) for s in shape)] = True
    blobs = (ndimage.distance_transform_edt(~blobs) <= rng.uniform(2.2, 3.2)) & ~labels
    image = ndimage.gaussian_filter((labels | blobs).astype(np.float32), 0.8)
    bias = 1 + 0.3 * ndimage.gaussian_filter(rng.normal(size=shape), 12) / 0.02
    image = image * np.clip(bias, 0.5, 1.5) + rng.normal(0, 0.25, shape)
    return image.astype(np.float32), labels.astype(np.uint8)


def sparse_slices(shape, *, per_axis: int = 2) -> dict[str, list[int]]:
    """Indices of the annotated xy (axis 2), xz (axis 1) and yz (axis 0) slices: evenly spaced, off the edges."""
    names = {"yz": 0, "xz": 1, "xy": 2}
    return {k: [int(round(f * (shape[a] - 1))) for f in np.linspace(0, 1, per_axis + 2)[1:-1]] for k, a in names.items()}


def make_sparse_volumes(root: str | Path, *, n_volumes: int = 2, shape=(48, 48, 48), slices_per_axis: int = 2,
                        n_tubes: int = 14, n_blobs: int = 40, seed: int = 0) -> Path:
    """Write `root/vol_<i>/{image,labels,sparse_labels}.nii.gz` and `root/manifest.csv`; return the manifest.

    `sparse_labels` keeps the ground truth only on `slices_per_axis` xy, xz and yz slices (Cicek et al.
    annotated a handful of orthogonal slices per volume); every other voxel is `UNLABELLED`.
    """
    root, rows = Path(root), []
    picks = sparse_slices(shape, per_axis=slices_per_axis)
    for i in range(n_volumes):
        rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
        image, labels = _sparse_volume(rng, tuple(shape), n_tubes, n_blobs)
        sparse = np.full(labels.shape, UNLABELLED, np.uint8)
        for name, axis in (("yz", 0), ("xz", 1), ("xy", 2)):
            for k in picks[name]:
                idx = [slice(None)] * 3
                idx[axis] = k
                sparse[tuple(idx)] = labels[tuple(idx)]
        folder = f"vol_{i:02d}"
        _save(image, root / folder / "image.nii.gz", np.float32)
        _save(labels, root / folder / "labels.nii.gz", np.uint8)
        _save(sparse, root / folder / "sparse_labels.nii.gz", np.uint8)
        rows.append({"volume": folder, "image": f"{folder}/image.nii.gz", "labels": f"{folder}/labels.nii.gz",
                     "sparse_labels": f"{folder}/sparse_labels.nii.gz",
                     "labelled_fraction": float((sparse != UNLABELLED).mean()), "foreground_fraction": float(labels.mean())})
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def _ensure(make, root: str | Path, kwargs: dict) -> Path:
    """`make(root, **kwargs)` once (`medvid_core.cache.ensure`), keyed on every argument, defaults included."""
    args = inspect.signature(make).bind(root, **kwargs)
    args.apply_defaults()
    key = dict(generator=f"lung_nodule.{make.__name__}", version=1,
               **{k: v for k, v in args.arguments.items() if k != "root"})
    return ensure(root, key, lambda tmp: make(tmp, **kwargs)) / "manifest.csv"


def ensure_nodule_cubes(root: str | Path, **kwargs) -> Path:
    return _ensure(make_nodule_cubes, root, kwargs)


def ensure_sparse_volumes(root: str | Path, **kwargs) -> Path:
    return _ensure(make_sparse_volumes, root, kwargs)
