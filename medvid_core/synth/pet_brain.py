"""Synthetic amino-acid (18F-FET-like) brain PET with glioma-like lesions, spatially normalised to MNI152, with
lesion masks beside.

After Blanc-Durand et al. (PLoS One 2018): dynamic 18F-FET PET of glioma patients, normalised onto the
MNI template and resized to 64x64x40 voxels, the lesion's ground truth thresholded at 1.3 x the background
uptake; 37 training and 11 evaluation volumes as the lecture's slide lists them (the paper's abstract counts
37 patients in all, 26 of them for training).

Anatomy is nilearn's packaged MNI152 template (`synth.mni152`), warped a little per patient (a normalised scan
never fits the template exactly). Normal FET uptake is low and nearly flat: grey matter a little above
white matter, cerebrospinal fluid and ventricles low, scalp and muscle moderate; every level is a fraction of
the patient's background uptake B (SUV-like units), and the whole background model stays below 1.25 B. One
lesion per patient (a second in some) is an irregular blob in the parenchyma whose uptake is at least
1.4 B at its rim and peaks at 1.6-3.5 B (tumour-to-background ratio), some with a colder necrotic core that
stays above 1.4 B. So the mask, written beside each volume, is exactly the voxels whose noise-free uptake
exceeds 1.3 B: the paper's definition. Then the scanner: a Gaussian point spread function (about 6 mm FWHM)
and noise that grows with the signal.

Writes `pet/<name>.nii.gz` (float32), `masks/<name>.nii.gz` (uint8) and `manifest.csv` (name, paths, split
train/eval, background B, peak TBR, lesion volume in mL, number of lesions). Deterministic: element-wise
arithmetic only on the grid (see `synth.exact`), seeded streams per volume, gzip without a timestamp.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from ..cache import ensure
from ..io.nifti import save_volume
from .exact import dot
from .mni152 import sample_stack, template

SHAPE = (64, 64, 40)  # the paper's resized volume, voxels (x, y, z)
#: field of view (MNI mm) the 64x64x40 grid covers: the whole brain with a margin
FOV = ((-80.0, 80.0), (-118.0, 86.0), (-62.0, 84.0))
N_TRAIN, N_EVAL = 37, 11  # the lecture's slide: 37 training and 11 evaluation scans
THRESHOLD = 1.3  # the ground truth: uptake above 1.3 x background
RIM = 1.4  # lowest noise-free uptake inside a lesion (x background)
TEMPLATE_MM = 2.0  # template resolution the volumes are sampled from
# background uptake of each compartment (x B): FET's grey/white contrast is small
UPTAKE = {"grey": 1.15, "white": 0.85, "csf": 0.25, "scalp": 0.7}


def voxel_mm() -> tuple[float, float, float]:
    return tuple((hi - lo) / n for (lo, hi), n in zip(FOV, SHAPE))


def affine() -> np.ndarray:
    """Voxel -> MNI mm (RAS) of the grid."""
    a = np.diag([*voxel_mm(), 1.0])
    a[:3, 3] = [lo + v / 2 for (lo, _), v in zip(FOV, voxel_mm())]
    return a


@functools.lru_cache(maxsize=1)
def _grid() -> np.ndarray:
    """MNI mm of every voxel centre, (X, Y, Z, 3) float32."""
    axes = [np.float32(lo) + (np.arange(n, dtype=np.float32) + np.float32(0.5)) * np.float32(v)
            for (lo, _), n, v in zip(FOV, SHAPE, voxel_mm())]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1)


@functools.lru_cache(maxsize=1)
def _maps():
    tpl = template(TEMPLATE_MM)
    return np.ascontiguousarray(np.moveaxis(tpl.maps, 0, -1)), tpl.origin, tpl.mm, tpl.parenchyma_points


def background(m: np.ndarray, b: float) -> np.ndarray:
    """Normal FET uptake from the sampled template maps (..., 4): grey, white matter, distance to the inner
    table (mm, + inside); the ventricles need no map of their own (no grey or white matter: CSF)."""
    gm, wm, dist = m[..., 0], m[..., 1], m[..., 2]
    inside = np.clip(dist / 2.0 + 0.5, 0, 1)  # the intracranial space, a voxel-wide edge
    csf = np.clip(1 - gm - wm, 0, 1) * inside
    brain = UPTAKE["grey"] * gm + UPTAKE["white"] * wm + UPTAKE["csf"] * csf
    scalp = UPTAKE["scalp"] * ((dist < 0) & (dist > -12))  # skull and scalp: muscle and skin take up some FET
    return (b * np.minimum(brain * inside + scalp * (1 - inside), 1.2)).astype(np.float32)


def _warp(rng: np.random.Generator, q: np.ndarray) -> np.ndarray:
    """A smooth deformation of the template (a few mm): what spatial normalisation leaves."""
    waves = rng.normal(0, 1, (4, 3)) * (2 * np.pi / rng.uniform(80, 140))
    amps, phases = rng.normal(0, 1.5, (4, 3)), rng.uniform(0, 2 * np.pi, 4)
    out = q.copy()
    for k in range(4):
        wave = np.sin(dot(q, waves[k].astype(np.float32)) + np.float32(phases[k]))
        out += amps[k].astype(np.float32) * wave[..., None]
    return out


def _lesion(rng: np.random.Generator, q: np.ndarray, centre: np.ndarray, tbr: float) -> np.ndarray:
    """Uptake (x B) of one lesion: 0 outside, >= RIM inside, peaking at `tbr`; irregular (lobulated
    ellipsoid), a colder necrotic core in about a third of them."""
    radii = rng.uniform(9, 18) * rng.uniform(0.7, 1.0, 3)
    rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    local = dot(q - centre.astype(np.float32), rot.astype(np.float32)) / radii.astype(np.float32)
    d2 = (local * local).sum(-1)
    lobes = 1 + 0.25 * ndimage.gaussian_filter(rng.normal(size=SHAPE), 2.5) / 0.08
    d = np.sqrt(d2) / np.clip(lobes, 0.6, 1.4)
    inside = d <= 1
    profile = RIM + (tbr - RIM) * np.clip(1 - d * d, 0, 1)
    if rng.random() < 0.35:  # necrosis: a colder centre, still above the rim
        core = np.clip(1 - d / 0.45, 0, 1)
        profile = profile - (profile - RIM) * 0.8 * core
    return np.where(inside, profile, 0).astype(np.float32)


def render_volume(rng: np.random.Generator) -> dict:
    """One patient: `clean` noise-free uptake, its `background`, the `mask` (clean > 1.3 B), the scanned
    `pet` (PSF + noise), B and the lesions' parameters."""
    maps, origin, mm, parenchyma = _maps()
    q = _warp(rng, _grid())
    m = sample_stack(maps, origin, mm, q, np.array([0, 0, -100, 0], np.float32))
    b = float(rng.uniform(0.9, 1.4))
    bg = background(m, b)
    n_lesions = 2 if rng.random() < 0.15 else 1
    lesion = np.zeros(SHAPE, np.float32)
    tbrs = []
    for _ in range(n_lesions):
        centre = parenchyma[rng.integers(len(parenchyma))] + rng.uniform(-4, 4, 3)
        tbrs.append(float(rng.uniform(1.6, 3.5)))
        lesion = np.maximum(lesion, _lesion(rng, q, centre, tbrs[-1]))
    clean = np.where(lesion > 0, np.float32(b) * lesion, bg)
    sigma = 6.0 / 2.355 / np.array(voxel_mm())  # 6 mm FWHM point spread
    blurred = ndimage.gaussian_filter(clean.astype(np.float64), sigma)
    noise = rng.normal(size=SHAPE) * np.sqrt(np.maximum(blurred, 0) * b) * rng.uniform(0.06, 0.12)
    pet = np.maximum(blurred + noise, 0).astype(np.float32)
    return {"pet": pet, "clean": clean.astype(np.float32), "background": bg, "mask": clean > THRESHOLD * b,
            "lesion": lesion > 0, "b": b, "tbr": max(tbrs), "n_lesions": n_lesions}


def make_pet_cohort(root: str | Path, *, n_train: int = N_TRAIN, n_eval: int = N_EVAL, seed: int = 0) -> Path:
    """Write `n_train + n_eval` volumes, their masks and `manifest.csv` under `root`; return the manifest."""
    root = Path(root)
    rows = []
    voxel_ml = float(np.prod(voxel_mm())) / 1000
    for i in range(n_train + n_eval):
        out = render_volume(np.random.default_rng(np.random.SeedSequence([seed, i])))
        name = f"pet_{i:03d}"
        save_volume(out["pet"], root / "pet" / f"{name}.nii.gz", affine(), np.float32)
        save_volume(out["mask"].astype(np.uint8), root / "masks" / f"{name}.nii.gz", affine(), np.uint8)
        rows.append({"name": name, "pet": f"pet/{name}.nii.gz", "mask": f"masks/{name}.nii.gz",
                     "split": "train" if i < n_train else "eval", "background": round(out["b"], 4),
                     "tbr_max": round(out["tbr"], 4), "lesion_ml": round(float(out["mask"].sum()) * voxel_ml, 3),
                     "n_lesions": out["n_lesions"]})
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def ensure_pet_cohort(root: str | Path, *, n_train: int = N_TRAIN, n_eval: int = N_EVAL, seed: int = 0) -> Path:
    """`make_pet_cohort` once under `root` (`medvid_core.cache.ensure`), keyed on every argument."""
    key = dict(generator="pet_brain.make_pet_cohort", version=1, n_train=n_train, n_eval=n_eval, seed=seed,
               shape=list(SHAPE))
    root = ensure(root, key, lambda tmp: make_pet_cohort(tmp, n_train=n_train, n_eval=n_eval, seed=seed))
    return root / "manifest.csv"
