"""A synthetic brain-MRI cohort on real anatomy, shaped like Video4MRI's datasets (PPMI, ADNI, OASIS-1/2).

Real PPMI/ADNI/OASIS data need registration, so each study ships this generator. It writes what
a real cohort looks like on disk -- one T1-weighted `.nii.gz` per session with a proper affine and
voxel size, in the scanner storage orientation of its view -- plus a `manifest.csv` (subject,
session, path, label, view, ...). The same loader reads both.

Anatomy is the MNI152 2009 template that ships inside nilearn's wheel (`synth.mni152`): its grey-
and white-matter maps put hemispheres, cortex, cerebellum, brainstem, deep grey matter, ventricles
and sulci in their real places; a skull (dark tables, brighter marrow), a scalp with its fat layer
and the neck are grown around the intracranial space. Each subject is a smooth random deformation
of that brain (head size and shape per axis, a low-frequency warp), each session a new head pose.
Tissue fractions become T1 contrast (white > grey > CSF), blurred by the scanner's point spread,
times a smooth bias field and a gain, with Rician noise.

The disease signal is the diffuse degeneration the paper describes, on that anatomy: cortex turns
to CSF from the sulcal side (thinner cortex, wider sulci, a brain pulling away from the skull),
ventricles enlarge into the tissue around them, and for AD the medial temporal lobe and
hippocampus shrink most; PD's changes are milder and frontal. Normal ageing does the same
globally, so age confounds the label. OASIS-2's visits of a subject progress. A ground-truth
atrophy map (voxels that are tissue in the subject's disease-free twin -- same head, same scan,
ageing only -- but CSF in the scan) is written beside each volume.

Deterministic: the same preset and seed give byte-identical files (nibabel writes gzip with a
zero timestamp), and every subject draws from its own seeded stream.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.orientations import axcodes2ornt, inv_ornt_aff, ornt_transform
from scipy import ndimage

from ..cache import ensure
from ..io.nifti import save_volume
from ..parallel import fork_map
from .exact import dot
from .mni152 import axis_rotations, sample_stack, template

VOXEL_MM = 2.0  # 2 mm isotropic: real anatomy at a laptop-friendly size (the template is resampled to 1.5 mm)
GRID = (86, 102, 90)  # canonical RAS array shape: a 172 x 204 x 180 mm field of view around the head
HEAD_CENTRE = np.array([0.0, -17.0, 6.0])  # MNI mm at the centre of the field of view (head incl. scalp)
TEMPLATE_MM = 1.5  # resolution of the template maps the warp samples
HEAD_SCALE = {"F": 0.89, "M": 0.93}  # MNI152 (ICV ~2.0 L) -> adult heads (ICV ~1.4 L women, ~1.6 L men)
# Scanner storage orientation per view: the loader must undo it (nibabel canonical RAS).
STORAGE_AXCODES = {"sagittal": ("P", "S", "R"), "axial": ("L", "P", "S"), "coronal": ("L", "S", "A")}
# T1-weighted (MPRAGE-like) intensities, white matter brightest; fat bright, cortical bone dark
T1 = {"csf": 0.12, "gm": 0.5, "wm": 0.85, "table": 0.06, "marrow": 0.5, "fat": 0.9, "skin": 0.42,
      "muscle": 0.33}
# centres (MNI mm, left/right mirrored) and widths of where disease bites hardest
HIPPOCAMPUS = np.array([26.0, -22.0, -14.0])
TEMPORAL = np.array([44.0, -15.0, -20.0])
PARIETAL = np.array([40.0, -60.0, 35.0])


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
    """Voxel centres in scanner mm (RAS), shape (3, *GRID), the field of view centred on the origin."""
    axes = [(np.arange(n) - (n - 1) / 2) * VOXEL_MM for n in GRID]
    return np.stack(np.meshgrid(*axes, indexing="ij")).astype(np.float32)


# ----------------------------------------------------------------------------- template maps
MAPS = ("gm", "wm", "dist", "ventricles", "ventricle_dist", "sulcal_dist", "ad_weight", "pd_weight", "hippocampus")
CVAL = np.array([0.0, 0.0, -100.0, 0.0, 100.0, 100.0, 0.0, 0.0, 0.0], np.float32)  # outside the template: no head
CH = {name: k for k, name in enumerate(MAPS)}  # channel of each map in the stack


def _gauss(q: np.ndarray, centre: np.ndarray, width) -> np.ndarray:
    """A left/right-mirrored Gaussian bump around `centre` (MNI mm), widths per axis (mm)."""
    d = np.stack([np.abs(q[..., 0]), q[..., 1], q[..., 2]], -1) - centre
    return np.exp(-0.5 * ((d / np.asarray(width)) ** 2).sum(-1))


@functools.lru_cache(maxsize=1)
def _maps() -> tuple[np.ndarray, np.ndarray, float]:
    """Channels-last template maps (X, Y, Z, len(MAPS)), their origin (MNI mm) and voxel size.

    Beyond the template's grey/white matter, distance to the inner table and ventricles: the
    distances (mm) the atrophy grows along -- from the ventricles and from sulcal CSF -- and
    where disease bites hardest. AD: medial temporal lobe and hippocampus first, then
    temporo-parietal cortex; PD: milder, frontal.
    """
    tpl = template(TEMPLATE_MM)
    gm, wm, dist, vent = tpl.maps
    ventricles = vent > 0.5
    sulcal = (dist > 0) & (gm + wm < 0.5) & ~ventricles
    q = np.stack(np.meshgrid(*[tpl.origin[k] + np.arange(n) * tpl.mm for k, n in enumerate(gm.shape)],
                             indexing="ij"), -1)
    ad = 0.5 + 2.5 * _gauss(q, TEMPORAL, (14, 28, 16)) + 0.6 * _gauss(q, PARIETAL, (20, 25, 20))
    pd_ = 0.6 + 0.8 * np.exp(-0.5 * ((q[..., 1] - 30) / 30) ** 2)
    maps = [gm, wm, dist, vent, ndimage.distance_transform_edt(~ventricles) * tpl.mm,
            ndimage.distance_transform_edt(~sulcal) * tpl.mm, ad, pd_, _gauss(q, HIPPOCAMPUS, (8, 16, 9))]
    return np.stack(maps, -1).astype(np.float32), tpl.origin, tpl.mm


# ----------------------------------------------------------------------------- one subject
@dataclass
class Anatomy:
    """What stays fixed for one subject across sessions: head size/shape, warp, skull and scalp."""

    scale: np.ndarray  # (3,) template -> subject scale per axis
    waves: np.ndarray  # (6, 3) wave vectors of the smooth deformation (rad/mm)
    amps: np.ndarray  # (6, 3) their displacements (mm)
    phases: np.ndarray  # (6,)
    skull_mm: float
    scalp_mm: float


def _anatomy(rng: np.random.Generator, sex: str = "F") -> Anatomy:
    size = HEAD_SCALE[sex] * rng.normal(1.0, 0.04)  # head size
    return Anatomy(scale=(size * rng.normal(1.0, 0.025, 3)).astype(np.float32),
                   waves=(rng.normal(0, 1, (6, 3)) * (2 * np.pi / rng.uniform(70, 140))).astype(np.float32),
                   amps=rng.normal(0, 2.5, (6, 3)).astype(np.float32), phases=rng.uniform(0, 2 * np.pi, 6),
                   skull_mm=float(rng.uniform(5.0, 7.5)), scalp_mm=float(rng.uniform(4.0, 7.0)))


def _pose(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Head position in the scanner for one session: small rotations (±4°) and shifts (±4 mm)."""
    rx, ry, rz = axis_rotations(*np.deg2rad(rng.uniform(-4, 4, 3)))
    return dot(dot(rx, ry), rz).astype(np.float32), rng.uniform(-4, 4, 3).astype(np.float32)


def _template_points(p: np.ndarray, anat: Anatomy, rot: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Scanner points (3, ...) -> template (MNI mm) points (..., 3): undo pose, size, then the warp."""
    q = dot(np.moveaxis(p - shift[:, None, None, None], 0, -1), rot)  # rot.T applied to each point
    q = q / anat.scale + HEAD_CENTRE.astype(np.float32)
    warp = sum(anat.amps[k] * np.sin(dot(q, anat.waves[k]) + np.float32(anat.phases[k]))[..., None] for k in range(6))
    return q + warp


VENTRICLE_GROWTH = {"AD": 1.0, "PD": 0.7}  # disease weight of ventricular enlargement


def _tissue(m: np.ndarray, ageing: float, disease: float, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Grey and white matter fractions after ageing + disease atrophy (what turns to CSF is the rest)."""
    gm, wm, vdist, sdist = (m[..., CH[k]] for k in ("gm", "wm", "ventricle_dist", "sulcal_dist"))
    w = m[..., CH["ad_weight" if kind == "AD" else "pd_weight"]]
    thin = np.minimum(4.0 * (ageing + disease * w), 3.0)  # mm of cortex given to CSF from the sulcal side (at most ~its thickness)
    cortex = np.clip(thin - sdist + 0.5, 0, 1)
    grow = min(10.0 * (ageing + disease * VENTRICLE_GROWTH[kind]), 9.0)  # mm the ventricles grow into the tissue around them
    periventricular = np.clip(grow - vdist + 0.5, 0, 1)
    gm = gm * (1 - cortex) * (1 - periventricular)
    wm = wm * (1 - periventricular)
    if kind == "AD":  # hippocampal volume loss
        gm = gm * (1 - min(1.5 * disease, 0.8) * m[..., CH["hippocampus"]])
    return gm, wm


def _t1(gm: np.ndarray, wm: np.ndarray, m: np.ndarray, q: np.ndarray, anat: Anatomy) -> np.ndarray:
    """T1 intensities before the scanner: brain, CSF, skull (tables, marrow), scalp (fat, skin), neck."""
    dist = m[..., CH["dist"]]
    inside = np.clip(dist / TEMPLATE_MM + 0.5, 0, 1)
    csf = np.clip(1 - gm - wm, 0, 1)
    brain = gm * T1["gm"] + wm * T1["wm"] + csf * T1["csf"]
    depth, skull = -dist, anat.skull_mm  # mm outside the inner table
    tables = np.exp(-((depth - 0.2 * skull) / 1.2) ** 2) + np.exp(-((depth - 0.85 * skull) / 1.2) ** 2)
    bone = T1["marrow"] - (T1["marrow"] - T1["table"]) * np.clip(tables, 0, 1)
    scalp = np.where(depth - skull < 0.6 * anat.scalp_mm, T1["fat"], T1["skin"])
    img = np.zeros(dist.shape, np.float32)
    # the neck below the skull base: muscle in a domed column, the spinal cord in its CSF down the middle
    x, y, z = q[..., 0], q[..., 1], q[..., 2]
    taper = 1 + np.clip(-60 - z, 0, None) / 80  # wider towards the shoulders
    neck = (x / (40 * taper)) ** 2 + ((y + 35) / (45 * taper)) ** 2 + (np.clip(z + 64, 0, None) / 12) ** 2 < 1
    img = np.where(neck, T1["muscle"], img)
    cord = np.where(z < -68, x**2 + (y + 45) ** 2, np.inf)
    img = np.where(cord < 8**2, T1["csf"], img)
    img = np.where(cord < 5**2, 0.5 * (T1["wm"] + T1["gm"]), img)
    img = np.where((depth > skull) & (depth <= skull + anat.scalp_mm), scalp, img)
    img = np.where((depth > 0) & (depth <= skull), bone, img)
    return np.where(depth <= 0, brain * inside + bone * (1 - inside), img).astype(np.float32)


def _scan(rng: np.random.Generator, img: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The scanner: point spread / partial volume, smooth bias field, gain, Rician noise."""
    img = ndimage.gaussian_filter(img, 0.6)
    coeffs = rng.normal(0, 0.12, 3).astype(np.float32)
    bias = np.exp(dot(np.moveaxis(p / 100.0, 0, -1), coeffs))  # smooth multiplicative bias field
    img = img * bias * np.float32(rng.normal(1.0, 0.08))  # scanner gain
    sigma = rng.uniform(0.025, 0.05)
    noise = rng.normal(0, sigma, (2, *img.shape)).astype(np.float32)
    return np.sqrt((img + noise[0]) ** 2 + noise[1] ** 2)


def _save(data: np.ndarray, path: Path, view: str, dtype) -> None:
    """Write a canonical-RAS array in the view's scanner storage orientation."""
    ras_affine = np.diag([VOXEL_MM] * 3 + [1.0])
    ras_affine[:3, 3] = [-(n - 1) / 2 * VOXEL_MM for n in GRID]
    tr = ornt_transform(axcodes2ornt(("R", "A", "S")), axcodes2ornt(STORAGE_AXCODES[view]))
    stored = nib.orientations.apply_orientation(data, tr)
    save_volume(stored, path, ras_affine @ inv_ornt_aff(tr, data.shape), dtype)


def render_session(rng: np.random.Generator, anat: Anatomy, *, ageing: float, disease: float = 0.0,
                   kind: str = "AD") -> dict[str, np.ndarray]:
    """One scan of one subject: a new head pose, atrophy, T1 contrast and the scanner.

    Returns canonical-RAS arrays on GRID: `t1` (float32), `atrophy` (bool: tissue in the
    disease-free twin, CSF in the scan), `gm` and `wm` fractions after atrophy, and `inside`
    (the intracranial space).
    """
    maps, origin, mm = _maps()
    p = _grid_mm()
    rot, shift = _pose(rng)
    q = _template_points(p, anat, rot, shift)
    m = sample_stack(maps, origin, mm, q, CVAL, skip=(CH["dist"], -25.0))  # dist < -25 mm: air or neck
    gm, wm = _tissue(m, ageing, disease, kind)
    lost = np.zeros(GRID, bool)
    if disease > 0:  # the disease-free twin: same head, same scan, ageing only
        gm0, wm0 = _tissue(m, ageing, 0.0, kind)
        lost = (gm0 + wm0 >= 0.5) & (gm + wm < 0.5)
    t1 = _scan(rng, _t1(gm, wm, m, q, anat), p)
    return dict(t1=t1, atrophy=lost, gm=gm, wm=wm, inside=m[..., CH["dist"]] > 0)


def _write_subject(root: Path, cfg: Preset, sid: int, label: str, stream: np.random.SeedSequence) -> list[dict]:
    """Every session of one subject; returns its manifest rows."""
    rng = np.random.default_rng(stream)
    sex = str(rng.choice(["F", "M"]))
    anat = _anatomy(rng, sex)
    age0 = rng.normal(71 if label != "NC" else 69, 7)
    # disease level: mean = effect, never ~0 for a patient (a label needs some disease behind it)
    disease0 = cfg.effect * (0.3 + 0.7 * rng.beta(2, 3) / 0.4) if label != "NC" else 0.0
    rows = []
    for ses in range(1, int(rng.integers(cfg.sessions[0], cfg.sessions[1] + 1)) + 1):
        years = 0.75 * (ses - 1)  # visits / repeat scans spread over follow-up
        ageing = float(np.clip(0.012 * (age0 + years - 55), 0, 0.45))  # ageing confounds the label
        disease = disease0 * (1 + 0.15 * years)  # patients progress over visits
        scan = render_session(rng, anat, ageing=ageing, disease=disease, kind=cfg.disease)
        stem = f"sub-{sid:04d}/ses-{ses}/anat/sub-{sid:04d}_ses-{ses}"
        _save(np.round(scan["t1"] * 1000), root / f"{stem}_T1w.nii.gz", cfg.view, np.int16)
        _save(scan["atrophy"].astype(np.uint8), root / f"{stem}_atrophy.nii.gz", cfg.view, np.uint8)
        rows.append(dict(subject=f"sub-{sid:04d}", session=ses, path=f"{stem}_T1w.nii.gz", label=label,
                         view=cfg.view, age=round(age0 + years, 1), sex=sex,
                         atrophy=round(float(np.clip(ageing + disease, 0, 1)), 3),
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
    _maps()  # build the template maps once, before the workers fork
    per_subject = fork_map(_write_subject, jobs, n_jobs=n_jobs)
    manifest = root / "manifest.csv"
    pd.DataFrame([row for rows in per_subject for row in rows]).to_csv(manifest, index=False)
    return manifest


def ensure_cohort(root: str | Path, preset: str = "small", *, seed: int = 0) -> Path:
    """Generate the cohort on first use (`medvid_core.cache.ensure`); reuse it while `root` holds this
    preset (its values, not just its name) and seed. Returns the manifest path."""
    if preset not in PRESETS:
        raise ValueError(f"unknown cohort preset {preset!r}; choose from: {', '.join(PRESETS)}")
    key = dict(generator="brain_mri", version="v3-mni152-exact",  # v3: BLAS-free products (synth.exact)
               preset=preset, values=asdict(PRESETS[preset]), seed=seed)
    return ensure(root, key, lambda tmp: make_cohort(tmp, preset, seed=seed)) / "manifest.csv"
