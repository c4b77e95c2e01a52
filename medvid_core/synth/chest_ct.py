"""A synthetic chest-CT cohort shaped like ImageCLEF 2021 Tuberculosis - TBT.

The challenge ships one NIfTI volume per patient in Hounsfield units (512x512 in-plane,
varying depth and slice thickness), an automatically computed lung mask beside each
(rough, and missing where large lesions make the lung dense), and a label CSV with the TB
type (1 Infiltrative, 2 Focal, 3 Tuberculoma, 4 Miliary, 5 Fibro-cavernous). This generator
writes the same thing:

    root/train/TRN_0001.nii.gz            int16 HU, canonical RAS (x left->right, y post->ant, z inf->sup)
    root/train/TRN_0001_lungmask.nii.gz   uint8, thresholded lung mask (what an automatic method gives)
    root/train/TRN_0001_lesions.nii.gz    uint8, ground-truth lesion mask (the generator's, not the challenge's)
    root/train_labels.csv                 FileName,TypeOfTB  (1..5, as the challenge codes it)
    root/test/TST_0001...                 the separate test set, test_labels.csv

Anatomy per patient: air outside, a body of muscle and subcutaneous fat, a table under
the patient, two lungs (parenchyma about -850 HU with vessels) narrowing to the apices,
the heart and mediastinum between them, spine, sternum and ribs (bone). Body size, lung
height, slice thickness (hence depth), scanner noise and calibration vary per patient.

Lesions follow radiological descriptions of each type, upper lobes favoured: patchy
consolidation with ground-glass margins (Infiltrative), a cluster of nodules in one
region (Focal), a few round well-defined nodules, some calcified (Tuberculoma), many
tiny nodules scattered through both lungs (Miliary), thick-walled cavities with fibrotic
streaks (Fibro-cavernous). Burdens are those of patients scanned for TB typing, large
enough to survive a laptop's coarse SIZ (v2; the v1 burdens were not learnable at 8x32x32).
Severity varies and a third of patients carry a small finding of another type, so the task
is learnable but not trivial.

Deterministic: every patient draws from its own seeded stream and nibabel writes gzip
with a zero timestamp, so the same preset and seed give byte-identical files.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from ..cache import ensure
from ..io.imageclef_tbt import TB_TYPES  # TypeOfTB 1..5, the challenge's order
from ..io.nifti import save_volume
from ..parallel import fork_map

HU = {"air": -1000.0, "lung": -850.0, "fat": -100.0, "muscle": 45.0, "blood": 40.0, "bone": 700.0, "table": 150.0}


@dataclass(frozen=True)
class Preset:
    """Cohort shape: scans per type in the training and test sets, in-plane size, slice thicknesses (mm)."""

    train: tuple[int, int, int, int, int]
    test: tuple[int, int, int, int, int]
    size: int  # in-plane voxels (512 in the challenge)
    thickness: tuple[float, ...]  # slice thicknesses drawn per scan (mm)


PRESETS = {
    # laptop default: the challenge's class proportions at 1/10 of its training set, 128x128 slices,
    # thick slices (about 25-60 per scan) so a CPU can train end to end
    "small": Preset(train=(42, 23, 10, 10, 7), test=(18, 10, 5, 4, 3), size=128, thickness=(5.0, 7.5, 10.0)),
    # the challenge: 917 training scans, 420/226/101/100/70 (what the authors' class weights imply),
    # 421 test scans in the same proportions; 512x512 slices of 1-2.5 mm, a few 5 mm scans thinner than 70
    "challenge": Preset(train=(420, 226, 101, 100, 70), test=(193, 104, 46, 46, 32), size=512,
                        thickness=(1.0, 1.25, 1.5, 2.0, 2.5, 5.0)),
}


# --------------------------------------------------------------------------- geometry
@dataclass
class _Body:
    rx: float  # body half-width (mm)
    ry: float  # body half-depth (mm)
    lung_height: float  # base to apex (mm)
    fov: float  # in-plane field of view (mm)
    thickness: float  # slice thickness = spacing along z (mm)
    z0: float  # z of the first slice relative to the lung bases (mm)
    depth: int  # slices


def _body(rng: np.random.Generator, cfg: Preset) -> _Body:
    rx, ry = rng.uniform(140, 180), rng.uniform(95, 125)
    lung_height = rng.uniform(210, 290)
    thickness = float(rng.choice(cfg.thickness))
    below, above = rng.uniform(10, 50), rng.uniform(5, 40)  # scan range past the bases and apices
    depth = int(round((lung_height + below + above) / thickness))
    return _Body(rx=rx, ry=ry, lung_height=lung_height, fov=2 * rx + rng.uniform(30, 70), thickness=thickness,
                 z0=-below, depth=depth)


def _grid(b: _Body, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Broadcastable voxel-centre coordinates in mm: x (n,1,1), y (1,n,1), z (1,1,depth)."""
    px = b.fov / n
    c = (np.arange(n, dtype=np.float32) - (n - 1) / 2) * px
    z = (b.z0 + np.arange(b.depth, dtype=np.float32) * b.thickness).astype(np.float32)
    return c[:, None, None], c[None, :, None], z[None, None, :], px


def _lungs(b: _Body, x, y, z, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Left/right lung masks: ellipses that widen from the apex down, a domed diaphragm below."""
    u = z / b.lung_height  # 0 at the bases, 1 at the apices
    shape = np.sqrt(np.clip(1 - u, 0, 1)) * (0.75 + 0.25 * np.clip(u / 0.2, 0, 1))
    lungs = []
    for side in (-1, 1):
        cx = side * b.rx * rng.uniform(0.44, 0.5)
        cy = b.ry * rng.uniform(-0.05, 0.08)
        ax, ay = b.rx * rng.uniform(0.37, 0.42) * shape + 1e-3, b.ry * rng.uniform(0.72, 0.8) * shape + 1e-3
        inside = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 < 1
        dome = 0.12 * b.lung_height * (1 - ((x - cx) / (b.rx * 0.4)) ** 2 - ((y - cy) / (b.ry * 0.8)) ** 2)
        lungs.append(inside & (z > np.maximum(dome, 0)) & (u < 1))
    return lungs[0], lungs[1]


def _anatomy(b: _Body, n: int, rng: np.random.Generator):
    """HU volume of the healthy chest and its lung mask."""
    x, y, z, px = _grid(b, n)
    shape = (n, n, b.depth)
    vol = np.full(shape, HU["air"], np.float32)
    body = (x / b.rx) ** 2 + (y / b.ry) ** 2 < 1
    body = np.broadcast_to(body, shape)
    vol[body] = HU["fat"]
    fat = rng.uniform(0.85, 0.93)
    vol[np.broadcast_to((x / (b.rx * fat)) ** 2 + (y / (b.ry * fat)) ** 2 < 1, shape)] = HU["muscle"]
    table = (y < -b.ry - 12) & (y > -b.ry - 22) & (np.abs(x) < b.fov * 0.45)
    vol[np.broadcast_to(table, shape)] = HU["table"]
    left, right = _lungs(b, x, y, z, rng)
    lung = left | right
    # parenchyma with a soft texture and vessels (bright thin structures, denser near the hila)
    texture = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), (2.0, 2.0, 1.0))
    texture /= texture.std() + 1e-6
    vessel_field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 1.2 * 2.5 / px)
    vessel_field /= vessel_field.std() + 1e-6
    hilum = np.exp(-((np.abs(x) - b.rx * 0.25) ** 2 + y**2) / (2 * (0.35 * b.rx) ** 2))
    vessels = vessel_field > (2.6 - 0.8 * hilum)
    parenchyma = HU["lung"] + rng.uniform(-30, 30) + 25 * texture
    vol = np.where(lung, parenchyma, vol)
    vol = np.where(lung & vessels, HU["blood"] - 200 * rng.random(), vol)
    # heart in the lower anterior mediastinum, slightly to the left; it indents the left lung
    u = z / b.lung_height
    heart = (((x + 0.12 * b.rx) / (0.35 * b.rx)) ** 2 + ((y - 0.25 * b.ry) / (0.5 * b.ry)) ** 2
             + ((u - 0.2) / 0.28) ** 2 < 1)
    vol[heart] = HU["blood"]
    lung &= ~heart
    # spine posterior, sternum anterior, ribs as rings near the body wall every ~25 mm
    spine = (x / 18) ** 2 + ((y + 0.72 * b.ry) / 16) ** 2 < 1
    vol[np.broadcast_to(spine, shape)] = HU["bone"] + rng.uniform(-100, 100)
    sternum = (x / 14) ** 2 + ((y - 0.85 * b.ry) / 6) ** 2 < 1
    vol[np.broadcast_to(sternum & (u > 0.1) & (u < 0.85), shape)] = HU["bone"]
    ring = np.abs(np.sqrt((x / (b.rx * 0.82)) ** 2 + (y / (b.ry * 0.82)) ** 2) - 1) < 4.0 / b.ry
    rib_phase = rng.uniform(0, 25)
    ribs = ring & (np.abs(((z + rib_phase) % 25) - 12.5) < 4) & (y < 0.8 * b.ry) & (u > -0.1) & (u < 1.05)
    vol[ribs] = HU["bone"]
    return vol, lung, (x, y, z, px)


# --------------------------------------------------------------------------- lesions
def _ball(vol, mask, coords, centre, radius, hu, soft=0.6) -> None:
    """Paint a sphere (mm) with a soft edge, inside its bounding box only."""
    x, y, z, px = coords
    xs, ys, zs = x[:, 0, 0], y[0, :, 0], z[0, 0, :]
    r = radius + 2 * px
    sl = []
    for axis, c in zip((xs, ys, zs), centre):
        idx = np.nonzero(np.abs(axis - c) <= max(r, (axis[1] - axis[0]) / 2 if axis.size > 1 else r))[0]
        if idx.size == 0:
            return
        sl.append(slice(idx[0], idx[-1] + 1))
    d = np.sqrt((xs[sl[0], None, None] - centre[0]) ** 2 + (ys[None, sl[1], None] - centre[1]) ** 2
                + (zs[None, None, sl[2]] - centre[2]) ** 2)
    alpha = np.clip((radius - d) / (soft * px) + 0.5, 0, 1)
    region = vol[sl[0], sl[1], sl[2]]
    region += alpha * (hu - region)
    mask[sl[0], sl[1], sl[2]] |= alpha > 0.5


def _lung_points(rng, lung, coords, k, *, upper=0.0, near=None, within=None) -> np.ndarray:
    """k random points (mm) inside the lungs; `upper` biases toward the apices; `near`/`within` a region."""
    x, y, z, _ = coords
    idx = np.flatnonzero(lung)
    if idx.size == 0:
        return np.zeros((0, 3))
    ii, jj, kk = np.unravel_index(idx, lung.shape)
    pts = np.stack([x[ii, 0, 0], y[0, jj, 0], z[0, 0, kk]], 1)
    w = np.ones(len(pts))
    if upper:
        zr = (pts[:, 2] - pts[:, 2].min()) / (np.ptp(pts[:, 2]) + 1e-6)
        w *= np.exp(upper * zr)
    if near is not None:
        w *= np.exp(-np.sum((pts - near) ** 2, 1) / (2 * within**2))
    w /= w.sum()
    return pts[rng.choice(len(pts), size=k, p=w)] + rng.uniform(-0.5, 0.5, (k, 3)) * coords[3]


def _lesions(kind: int, vol, lung, coords, rng, severity: float) -> np.ndarray:
    """Paint the lesions of TB type `kind` (0..4); return the lesion mask.

    Burdens are those of patients sick enough to be scanned for TB typing, large enough to survive a
    coarse SIZ (8x32x32 on a laptop): at the v1 burdens (0.1-2% of the lungs) a network that fitted the
    small cohort's 73 training scans scored test kappa about 0.
    """
    mask = np.zeros(vol.shape, bool)
    px = coords[3]
    floor = 0.9 * px  # smaller than this vanishes on the grid
    if kind == 0:  # Infiltrative: extensive patchy consolidation, both lungs often
        for seed in _lung_points(rng, lung, coords, int(rng.integers(3, 5 + int(3 * severity))), upper=1.0):
            size = rng.uniform(30, 45 + 30 * severity)
            for c in seed + rng.normal(0, size / 2.5, (int(rng.integers(5, 10)), 3)):
                _ball(vol, mask, coords, c, max(floor, rng.uniform(0.35, 0.6) * size), rng.uniform(-550, -400), soft=3)
                _ball(vol, mask, coords, c, max(floor, rng.uniform(0.2, 0.4) * size), rng.uniform(-80, 30), soft=1.5)
    elif kind == 1:  # Focal: many nodules clustered in one region, tree-in-bud around them
        centre = _lung_points(rng, lung, coords, 1, upper=1.0)[0]
        within = rng.uniform(18, 30)
        for c in _lung_points(rng, lung, coords, int(rng.integers(25, 40 + int(30 * severity))), near=centre, within=within):
            _ball(vol, mask, coords, c, max(floor, rng.uniform(3.0, 7.0)), rng.uniform(-60, 40))
    elif kind == 2:  # Tuberculoma: 1-3 large round sharp nodules, mostly calcified
        for c in _lung_points(rng, lung, coords, int(rng.integers(1, 3 + int(severity > 0.5))), upper=1.0):
            r = rng.uniform(12, 18 + 8 * severity)
            _ball(vol, mask, coords, c, r, rng.uniform(20, 60), soft=0.4)
            if rng.random() < 0.8:
                _ball(vol, mask, coords, c + rng.normal(0, r / 5, 3), max(floor, r * rng.uniform(0.35, 0.6)),
                      rng.uniform(400, 900), soft=0.4)
    elif kind == 3:  # Miliary: innumerable tiny nodules; at CT resolution their partial volume hazes both lungs
        if severity > 0:  # a secondary finding (severity 0) is a handful of nodules, no haze
            vol[lung] += rng.uniform(80, 160 + 80 * severity)
        for c in _lung_points(rng, lung, coords, int(rng.integers(600, 1200 + int(800 * severity)))):
            _ball(vol, mask, coords, c, max(floor, rng.uniform(1.0, 2.5)), rng.uniform(-150, 20))
    elif kind == 4:  # Fibro-cavernous: large thick-walled upper-lobe cavities, fibrotic bands to the hilum
        for c in _lung_points(rng, lung, coords, int(rng.integers(1, 3 + int(severity > 0.6))), upper=3.0):
            r, wall = rng.uniform(16, 24 + 12 * severity), rng.uniform(5, 9)
            _ball(vol, mask, coords, c, r, rng.uniform(0, 50), soft=0.8)
            _ball(vol, mask, coords, c, max(floor, r - wall), rng.uniform(-990, -900), soft=0.8)
            hilum = np.array([np.sign(c[0]) * 40.0, 0.0, c[2] - rng.uniform(30, 70)])
            for _ in range(int(rng.integers(4, 8))):
                end = hilum + rng.normal(0, 15, 3)
                for t in np.linspace(0, 1, 12):
                    _ball(vol, mask, coords, c + t * (end - c), max(floor, rng.uniform(2.0, 3.5)), rng.uniform(-150, -50))
    return mask


def _auto_lung_mask(vol: np.ndarray, lung: np.ndarray, px: float) -> np.ndarray:
    """What a threshold-based segmentation returns: air-like voxels inside the chest, opened, rough.

    Dense lesions (consolidation, large nodules, cavity walls) are above the threshold, so
    the mask misses them, as the challenge's automatic masks do.
    """
    smooth = ndimage.gaussian_filter(vol, (1.0, 1.0, 0.5))
    air_like = smooth < -500
    chest = ndimage.binary_dilation(lung, iterations=2)
    mask = ndimage.binary_opening(air_like & chest, iterations=1)
    return ndimage.binary_fill_holes(mask, structure=np.ones((3, 3, 1))) & chest & (smooth < -300)


def _save(data: np.ndarray, path: Path, spacing: tuple[float, float, float], dtype) -> None:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-(n - 1) / 2 * s for n, s in zip(data.shape, spacing)]
    save_volume(data, path, affine, dtype)


def _write_patient(root: Path, cfg: Preset, name: str, kind: int, stream: np.random.SeedSequence) -> dict:
    rng = np.random.default_rng(stream)
    b = _body(rng, cfg)
    vol, lung, coords = _anatomy(b, cfg.size, rng)
    severity = float(rng.beta(2, 2))
    lesions = _lesions(kind, vol, lung, coords, rng, severity)
    if rng.random() < 0.33:  # a small finding of another type: real TB types overlap
        other = int(rng.choice([k for k in range(5) if k != kind]))
        lesions |= _lesions(other, vol, lung, coords, rng, severity=0.0)
    px = coords[3]
    vol = ndimage.gaussian_filter(vol, (0.5, 0.5, 0.3))  # scanner point-spread
    vol = vol * rng.normal(1.0, 0.01) + rng.normal(0, 8)  # calibration
    vol += rng.normal(0, rng.uniform(10, 35), vol.shape).astype(np.float32)  # quantum noise
    vol = np.clip(vol, -1024, 3071)
    auto = _auto_lung_mask(vol, lung, px)
    spacing = (px, px, b.thickness)
    folder = root / ("train" if name.startswith("TRN") else "test")
    _save(np.round(vol), folder / f"{name}.nii.gz", spacing, np.int16)
    _save(auto, folder / f"{name}_lungmask.nii.gz", spacing, np.uint8)
    _save(lesions, folder / f"{name}_lesions.nii.gz", spacing, np.uint8)
    return dict(FileName=f"{name}.nii.gz", TypeOfTB=kind + 1, depth=b.depth, thickness_mm=b.thickness,
                pixel_mm=round(px, 4), severity=round(severity, 3), lesion_voxels=int(lesions.sum()))


def make_cohort(root: str | Path, preset: str = "small", *, seed: int = 0, n_jobs: int = 2) -> Path:
    """Write the cohort `preset` under `root`; return `root`.

    `train_labels.csv` / `test_labels.csv` hold the challenge's columns (FileName, TypeOfTB 1..5);
    `train_truth.csv` / `test_truth.csv` add what the generator knows (depth, thickness, severity,
    lesion size). Patients are written by `n_jobs` processes, each from its own seeded stream, so
    the bytes do not depend on `n_jobs`.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown chest-CT preset {preset!r}; choose from: {', '.join(PRESETS)}")
    cfg, root = PRESETS[preset], Path(root)
    root.mkdir(parents=True, exist_ok=True)
    jobs = []
    for split, counts, prefix, offset in (("train", cfg.train, "TRN", 0), ("test", cfg.test, "TST", 1)):
        kinds = np.repeat(np.arange(5), counts)
        kinds = kinds[np.random.default_rng([seed, offset]).permutation(len(kinds))]  # classes interleaved
        streams = np.random.SeedSequence([seed, offset]).spawn(len(kinds))
        jobs += [(root, cfg, f"{prefix}_{i + 1:04d}", int(k), streams[i]) for i, k in enumerate(kinds)]
    rows = fork_map(_write_patient, jobs, n_jobs=n_jobs)
    table = pd.DataFrame(rows)
    for split, prefix in (("train", "TRN"), ("test", "TST")):
        part = table[table.FileName.str.startswith(prefix)]
        part[["FileName", "TypeOfTB"]].to_csv(root / f"{split}_labels.csv", index=False)
        part.to_csv(root / f"{split}_truth.csv", index=False)
    return root


def ensure_cohort(root: str | Path, preset: str = "small", *, seed: int = 0, n_jobs: int = 2) -> Path:
    """Generate the cohort on first use (`medvid_core.cache.ensure`); reuse it while `root` holds this
    preset (its values, not just its name) and seed. Returns `root`."""
    if preset not in PRESETS:
        raise ValueError(f"unknown chest-CT preset {preset!r}; choose from: {', '.join(PRESETS)}")
    key = dict(generator="chest_ct", version="v2", preset=preset, values=asdict(PRESETS[preset]), seed=seed)
    return ensure(root, key, lambda tmp: make_cohort(tmp, preset, seed=seed, n_jobs=n_jobs))
