"""A synthetic brain-MRI cohort shaped like Video4MRI's datasets (PPMI, ADNI, OASIS-1/2).

Real PPMI/ADNI/OASIS data need registration, so each study ships this generator. It
writes what a real cohort looks like on disk -- one T1-weighted `.nii.gz` per session
with a proper affine and voxel size, in the scanner orientation of its view -- plus a
`manifest.csv` (subject, session, path, label, view, ...). The same loader reads both.

The disease signal is the diffuse degeneration the paper describes for AD/PD, not a
blob: ventricles enlarge, sulci widen and deepen, the cortex thins and the brain pulls
away from the skull. Normal ageing does the same, more mildly, so age confounds the
label; head size, shape, position, folding pattern, scanner gain, bias field and Rician
noise vary per subject or per scan. A ground-truth atrophy map (voxels that are tissue
in the subject's disease-free twin but CSF in the scan) is written beside each volume.

Deterministic: the same preset and seed give byte-identical files (nibabel writes gzip
with a zero timestamp), and every subject draws from its own seeded stream.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.orientations import axcodes2ornt, inv_ornt_aff, ornt_transform
from scipy import ndimage

VOXEL_MM = 2.0  # 2 mm isotropic: real anatomy proportions at a laptop-friendly size
GRID = (80, 96, 80)  # canonical RAS array shape: 160 x 192 x 160 mm field of view
# Scanner storage orientation per view: the loader must undo it (nibabel canonical RAS).
STORAGE_AXCODES = {"sagittal": ("P", "S", "R"), "axial": ("L", "P", "S"), "coronal": ("L", "S", "A")}
T1 = {"bg": 0.0, "scalp": 0.75, "skull": 0.08, "csf": 0.12, "gm": 0.52, "deep_gm": 0.62, "wm": 0.85}


@dataclass(frozen=True)
class Preset:
    """Cohort shape, after Table 1 of Video4MRI (subjects patient:control, view, sessions)."""

    n_patient: int
    n_control: int
    view: str
    disease: str  # "PD" or "AD": the patient label in the manifest
    effect: float  # mean disease atrophy (0..1): how far patients sit from ageing controls
    sessions: tuple[int, int] = (1, 1)  # min, max sessions per subject


PRESETS = {
    # small laptop default: PPMI-like class ratio and view, enough subjects for a 7:3 split
    "small": Preset(n_patient=66, n_control=54, view="sagittal", disease="PD", effect=0.35),
    "ppmi": Preset(n_patient=97, n_control=81, view="sagittal", disease="PD", effect=0.3),
    "adni": Preset(n_patient=228, n_control=188, view="sagittal", disease="AD", effect=0.2),
    "oasis1": Preset(n_patient=100, n_control=136, view="axial", disease="AD", effect=0.25),
    # OASIS-2: 1368 images of 166 subjects, i.e. ~8 per subject (visits x repeated scans)
    "oasis2": Preset(n_patient=80, n_control=86, view="sagittal", disease="AD", effect=0.2,
                     sessions=(5, 11)),
}


def _grid_mm() -> np.ndarray:
    """Voxel centres in mm (RAS), shape (3, *GRID), brain centred near the origin."""
    axes = [(np.arange(n) - (n - 1) / 2) * VOXEL_MM for n in GRID]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def _smooth_field(rng: np.random.Generator, sigma: float) -> np.ndarray:
    """A smooth random field on GRID with unit std: white noise blurred at `sigma` voxels."""
    field = ndimage.gaussian_filter(rng.standard_normal(GRID, dtype=np.float32), sigma, truncate=3.0)
    return (field - field.mean()) / (field.std() + 1e-8)


@dataclass
class Anatomy:
    """What stays fixed for one subject across sessions."""

    scale: float  # head size
    radii: np.ndarray  # brain ellipsoid half-axes (mm)
    folds: np.ndarray  # gyral/sulcal pattern (smooth field)
    surface: np.ndarray  # low-frequency surface wobble
    vent_shift: np.ndarray  # ventricle asymmetry


def _anatomy(rng: np.random.Generator) -> Anatomy:
    return Anatomy(
        scale=float(rng.normal(1.0, 0.045)),
        radii=np.array([64.0, 80.0, 58.0]) * rng.normal(1.0, 0.03, 3),
        folds=_smooth_field(rng, 2.2),
        surface=_smooth_field(rng, 7.0),
        vent_shift=rng.normal(0, 1.5, 3),
    )


def _tissue(p: np.ndarray, anat: Anatomy, atrophy: float) -> np.ndarray:
    """Label map (0 bg, 1 scalp, 2 skull, 3 csf, 4 gm, 5 deep gm, 6 wm) for one atrophy level."""
    x, y, z = p / anat.scale
    rx, ry, rz = anat.radii
    rho = np.sqrt((x / rx) ** 2 + (y / ry) ** 2 + (z / rz) ** 2)
    depth = (1.0 - rho) * anat.radii.mean() + 2.0 * anat.surface  # mm below the brain surface
    lab = np.zeros(GRID, np.uint8)
    lab[rho < 1.22] = 1  # scalp
    lab[rho < 1.16] = 2  # skull
    lab[rho < 1.09] = 3  # CSF between skull and brain
    shrink = 1.0 + 5.0 * atrophy  # the brain pulls away from the skull
    brain = depth > shrink
    # sulci: CSF clefts where the folding field crosses zero, lined with cortex; atrophy
    # widens and deepens them and thins the ribbon
    fold = np.abs(anat.folds)
    sulcal_depth = 14.0 + 8.0 * atrophy
    width = 0.07 + 0.16 * atrophy
    thickness = 4.0 * (1.0 - 0.3 * atrophy)  # cortical ribbon (mm)
    lab[brain] = 6
    ribbon = (depth < shrink + thickness) | ((fold < width + 0.22) & (depth < sulcal_depth + thickness))
    lab[brain & ribbon] = 4
    lab[brain & (fold < width) & (depth < sulcal_depth)] = 3
    # deep grey matter (thalamus / basal ganglia), two ellipsoids beside the midline
    for side in (-1, 1):
        deep = ((x - side * 13) / 9) ** 2 + ((y + 2) / 13) ** 2 + ((z - 2) / 9) ** 2 < 1
        lab[deep & brain] = 5
    # lateral ventricles: curved ellipsoids that grow with atrophy; third ventricle slit
    v = 1.0 + 1.1 * atrophy
    vx, vy, vz = x - anat.vent_shift[0], y - anat.vent_shift[1], z - anat.vent_shift[2]
    for side in (-1, 1):
        arc = 12.0 - 0.006 * vy**2  # ventricles bow over the thalamus
        lat = ((vx - side * 7 * v) / (4.5 * v)) ** 2 + (vy / (26 * v**0.5)) ** 2 + ((vz - arc) / (5 * v)) ** 2 < 1
        lab[lat & (lab >= 3)] = 3
    third = (np.abs(vx) < 1.0 + 1.5 * atrophy) & ((vy + 2) ** 2 / 100 + (vz - 1) ** 2 / 49 < 1)
    lab[third & (lab >= 3)] = 3
    return lab


def _scan(rng: np.random.Generator, lab: np.ndarray, p: np.ndarray) -> np.ndarray:
    """T1 intensities of a label map: partial volume, bias field, gain, Rician noise."""
    lut = np.array([T1[k] for k in ("bg", "scalp", "skull", "csf", "gm", "deep_gm", "wm")], np.float32)
    img = ndimage.gaussian_filter(lut[lab], 0.7)  # scanner point-spread / partial volume
    coeffs = rng.normal(0, 0.12, 3)
    bias = np.exp(np.tensordot(coeffs, p / 100.0, axes=1))  # smooth multiplicative bias field
    img = img * bias * rng.normal(1.0, 0.08)  # scanner gain
    sigma = rng.uniform(0.025, 0.05)
    img = np.sqrt((img + rng.normal(0, sigma, img.shape)) ** 2 + rng.normal(0, sigma, img.shape) ** 2)
    return img.astype(np.float32)


def _rigid(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Head position in the scanner: small rotations (±4°) and shifts (±4 mm)."""
    ax, ay, az = np.deg2rad(rng.uniform(-4, 4, 3))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    shift = rng.uniform(-4, 4, 3)[:, None, None, None]
    return np.tensordot((rx @ ry @ rz).T, p, axes=1) - shift


def _save(data: np.ndarray, path: Path, view: str, dtype) -> None:
    """Write a canonical-RAS array in the view's scanner storage orientation."""
    ras_affine = np.diag([VOXEL_MM] * 3 + [1.0])
    ras_affine[:3, 3] = [-(n - 1) / 2 * VOXEL_MM for n in GRID]
    tr = ornt_transform(axcodes2ornt(("R", "A", "S")), axcodes2ornt(STORAGE_AXCODES[view]))
    stored = nib.orientations.apply_orientation(data, tr)
    affine = ras_affine @ inv_ornt_aff(tr, data.shape)
    img = nib.Nifti1Image(np.ascontiguousarray(stored).astype(dtype), affine)
    img.header.set_xyzt_units("mm")
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)


def _write_subject(root: Path, cfg: Preset, sid: int, label: str, stream: np.random.SeedSequence) -> list[dict]:
    """Every session of one subject; returns its manifest rows."""
    rng, p0 = np.random.default_rng(stream), _grid_mm()
    anat, sex = _anatomy(rng), str(rng.choice(["F", "M"]))
    age0 = rng.normal(71 if label != "NC" else 69, 7)
    disease0 = cfg.effect * rng.beta(2, 3) / 0.4 if label != "NC" else 0.0  # mean = effect
    rows = []
    for ses in range(1, int(rng.integers(cfg.sessions[0], cfg.sessions[1] + 1)) + 1):
        years = 0.75 * (ses - 1)  # visits / repeat scans spread over follow-up
        ageing = float(np.clip(0.012 * (age0 + years - 55), 0, 0.45))  # ageing confounds the label
        disease = disease0 * (1 + 0.15 * years)
        atrophy = float(np.clip(ageing + disease, 0, 1))
        p = _rigid(p0, rng)
        lab = _tissue(p, anat, atrophy)
        lost = np.zeros(GRID, bool)
        if label != "NC":  # disease-free twin: same head, same scan, ageing only
            lost = (_tissue(p, anat, ageing) >= 4) & (lab == 3)
        img = _scan(rng, lab, p)
        stem = f"sub-{sid:04d}/ses-{ses}/anat/sub-{sid:04d}_ses-{ses}"
        _save(np.round(img * 1000), root / f"{stem}_T1w.nii.gz", cfg.view, np.int16)
        _save(lost.astype(np.uint8), root / f"{stem}_atrophy.nii.gz", cfg.view, np.uint8)
        rows.append(dict(subject=f"sub-{sid:04d}", session=ses, path=f"{stem}_T1w.nii.gz", label=label,
                         view=cfg.view, age=round(age0 + years, 1), sex=sex, atrophy=round(atrophy, 3),
                         disease_atrophy=round(disease, 3), mask_path=f"{stem}_atrophy.nii.gz"))
    return rows


def make_cohort(root: str | Path, preset: str = "small", *, seed: int = 0, n_jobs: int = 2) -> Path:
    """Write the cohort `preset` under `root`; return the manifest path.

    Layout (BIDS-like, what a real cohort converted for medvid looks like):
    `root/sub-0007/ses-1/anat/sub-0007_ses-1_T1w.nii.gz` and `..._atrophy.nii.gz`,
    `root/manifest.csv` with paths relative to `root`. Subjects are written by `n_jobs`
    processes; each has its own seeded stream, so the bytes do not depend on `n_jobs`.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown cohort preset {preset!r}; choose from: {', '.join(PRESETS)}")
    cfg, root = PRESETS[preset], Path(root)
    labels = [cfg.disease] * cfg.n_patient + ["NC"] * cfg.n_control
    order = np.random.default_rng(seed).permutation(len(labels))  # interleave classes by subject id
    streams = np.random.SeedSequence(seed).spawn(len(labels))
    jobs = [(root, cfg, sid, labels[k], streams[k]) for sid, k in enumerate(order, start=1)]
    if n_jobs > 1:
        with ProcessPoolExecutor(n_jobs, mp_context=get_context("fork")) as pool:
            per_subject = list(pool.map(_write_subject, *zip(*jobs)))
    else:
        per_subject = [_write_subject(*job) for job in jobs]
    manifest = root / "manifest.csv"
    pd.DataFrame([row for rows in per_subject for row in rows]).to_csv(manifest, index=False)
    return manifest


def ensure_cohort(root: str | Path, preset: str = "small", *, seed: int = 0) -> Path:
    """Generate the cohort on first use; reuse it when `root` already holds that preset+seed."""
    root = Path(root)
    stamp, manifest = root / "COHORT", root / "manifest.csv"
    tag = f"video4mri-brain-mri preset={preset} seed={seed} v1\n"
    if manifest.exists() and stamp.exists() and stamp.read_text() == tag:
        return manifest
    stamp.unlink(missing_ok=True)  # an interrupted run must not leave a valid-looking stamp
    make_cohort(root, preset, seed=seed)
    stamp.write_text(tag)
    return manifest
