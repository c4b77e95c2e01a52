"""A synthetic head-CT cohort on real anatomy, laid out like the RSNA Intracranial Hemorrhage data.

Anatomy comes from the MNI152 2009 template and its grey/white-matter probability maps that
ship inside nilearn's wheel (no download): parenchyma, ventricles, sulci and cisterns sit in
their real places. Around the intracranial space we grow a skull shell (dense tables, lighter
diploe) and a scalp. Each subject is warped (smooth random deformation, head size, pitch from
gantry tilt, small roll/yaw and shift), turned into Hounsfield units with per-subject tissue
offsets and noise, and cut into 5 mm axial slices. Each scan also has its own centre's look
(`MULTI_CENTRE`: field of view, positioning, noise, reconstruction kernel, calibration), shared by all its
slices: the patient signature that makes a slice-randomised split leak, as it does on real data.

Bleeds follow their subtype, in template space so that they respect the anatomy:
subdural: a crescent hugging the inner table over a wide arc; epidural: a short, thick
biconvex lens against the inner table; intraventricular: blood inside the ventricles;
subarachnoid: blood filling the sulcal CSF of a region; intraparenchymal: a lobulated blob
in the parenchyma with a hypodense rim. Some subjects have several. Calcifications (high-HU
specks) appear in negatives too, so "bright = bleed" is not enough; a headrest shell lies under
the occiput, apart from the head, for background removal to take away. A slice is labelled with
a subtype when its bleed mask for that subtype covers at least `min_area_mm2`.

On disk, exactly as RSNA: `<root>/stage_2_train/ID_<9 hex>.dcm` (one file per slice, real CT
tags; scanner profiles differ in BitsStored/PixelRepresentation/intercept), the long label CSV
`<root>/stage_2_train.csv` (`ID,Label`, rows `ID_<hex>_<subtype>`, with some duplicated
rows), some unannotated files (whole series missing from the CSV), one file with corrupt pixel
data, some compressed (RLE Lossless with pydicom's own encoder; JPEG 2000 Lossless with
pylibjpeg-openjpeg; JPEG-LS Lossless with pyjpegls), some
series with the RSNA 12-bit quirk. Ground truth beside: `<root>/masks/<PatientID>.npz`
(bleed masks as a per-pixel bit field, bit k = subtype k) and `<root>/truth.csv`.

Deterministic: the same preset and seed give the same bytes.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (CTImageStorage, ExplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless, RLELossless,
                         generate_uid)
from scipy import ndimage

from ..cache import ensure
from ..parallel import fork_map
from .exact import dot
from .mni152 import Template, axis_rotations, sample_template, template

SUBTYPES = ("epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural", "any")
BLEEDS = SUBTYPES[:5]
HU = {"air": -1000.0, "scalp": 35.0, "fat": -90.0, "table": 1500.0, "diploe": 650.0, "csf": 6.0,
      "gm": 38.0, "wm": 27.0, "blood": 68.0, "calcification": 250.0}
# scanner storage profiles: (BitsStored, PixelRepresentation, RescaleIntercept)
PROFILES = ((12, 0, -1024.0), (16, 1, -1024.0), (16, 1, 0.0))
BRAIN_CENTRE = np.array([0.0, -18.0, 12.0])  # MNI mm, roughly the centre of the intracranial space


@dataclass(frozen=True)
class Preset:
    """Cohort shape. Slice counts per subject follow from the head height and `slice_mm`."""

    n_subjects: int
    positive_fraction: float = 0.35  # subjects with at least one bleed (slices: far fewer)
    rows: int = 128  # pixels per side (RSNA: 512)
    fov_mm: float = 250.0  # field of view; pixel spacing = fov / rows (jittered per subject)
    slice_mm: float = 5.0  # slice spacing = thickness, as most RSNA series
    template_mm: float = 1.5  # resolution the MNI152 maps are resampled to before warping
    min_area_mm2: float = 20.0  # bleed area on a slice that makes the slice positive
    unannotated_fraction: float = 0.06  # series left out of the label CSV
    rle_fraction: float = 0.1  # series stored RLE Lossless
    j2k_fraction: float = 0.05  # series stored JPEG 2000 Lossless
    jls_fraction: float = 0.05  # series stored JPEG-LS Lossless
    quirk_fraction: float = 0.1  # series with the RSNA 12-bit unsigned quirk
    duplicate_rows: int = 12  # label rows written twice, as in the real CSV
    # How much one scan differs from the next: what a patient's slices share and another patient's do not
    # (multi-centre data: scanners, protocols, positioning). A slice-randomised split lets a network
    # memorise this signature; a subject-randomised split does not.
    fov_jitter: float = 0.05  # relative spread of the pixel spacing (display field of view)
    tilt_deg: float = 4.0  # roll and yaw range, degrees (pitch: gantry tilt, -14..8)
    offset_mm: float = 0.0  # extra spread of the head's in-plane position (patients are not centred)
    noise_hu: tuple[float, float] = (3.5, 6.0)  # range of the scan's noise SD (dose, scanner)
    kernel_px: tuple[float, float] = (0.5, 0.5)  # range of the reconstruction blur, pixels (soft to sharp kernels)
    calibration_hu: float = 0.0  # SD of a scan-wide HU offset (water calibration, scanner model)


#: scan-to-scan variation of a multi-centre collection such as RSNA's (several scanners, protocols and
#: positionings): display field of view 200-290 mm, heads turned up to 10 degrees and off-centre, low-dose
#: to standard noise, soft to sharp kernels, a few HU of calibration offset. Each patient's slices share
#: their scan's values, which is what a slice-randomised split lets a network recognise (tiny keeps the
#: narrow defaults, for unit tests).
MULTI_CENTRE = dict(fov_jitter=0.15, tilt_deg=10.0, offset_mm=15.0, noise_hu=(3.0, 12.0), kernel_px=(0.3, 1.2),
                    calibration_hu=8.0)

PRESETS = {
    # laptop default: 2 CPU cores generate it in under a minute. 120 subjects, so that a subject-level
    # 15 % test split holds about 17 heads with every subtype in it (40 gave 6 heads, 3 subtypes absent)
    "small": Preset(n_subjects=120, positive_fraction=0.5, rows=96, fov_mm=240.0, **MULTI_CENTRE),
    # tiny: unit tests
    "tiny": Preset(n_subjects=6, positive_fraction=0.5, rows=64, fov_mm=240.0, template_mm=2.0, duplicate_rows=3,
                   rle_fraction=0.16, j2k_fraction=0.16, jls_fraction=0.16, quirk_fraction=0.16, unannotated_fraction=0.16),
    # the seed's working size (RSNA 512 px slices downscaled to 256) on a few hundred subjects: a long job
    "paper": Preset(n_subjects=400, rows=256, template_mm=1.0, **MULTI_CENTRE),
}


# ----------------------------------------------------------------------------- one subject
def _rotation(pitch, roll, yaw) -> np.ndarray:
    rx, ry, rz = axis_rotations(pitch, roll, yaw)
    return dot(dot(rz, ry), rx)


def _unit(v):
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-9)


def _draw_bleeds(rng: np.random.Generator, tpl: Template, positive: bool) -> list[dict]:
    """Bleed descriptions (subtype + shape parameters in template space)."""
    if not positive:
        return []
    n = rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1])
    kinds = rng.choice(BLEEDS, size=n, replace=False, p=[0.06, 0.28, 0.18, 0.22, 0.26])
    out = []
    for kind in kinds:
        side = rng.choice([-1.0, 1.0])
        if kind in ("subdural", "epidural"):
            direction = _unit(np.array([side, rng.uniform(-0.8, 0.6), rng.uniform(-0.1, 0.7)]))
            wide = kind == "subdural"
            out.append(dict(kind=kind, direction=direction,
                            arc=np.deg2rad(rng.uniform(45, 75) if wide else rng.uniform(18, 30)),
                            height=rng.uniform(20, 38) if wide else rng.uniform(12, 20),  # half extent in z (mm)
                            thickness=rng.uniform(5, 11) if wide else rng.uniform(9, 18)))
        elif kind == "intraventricular":
            pts = tpl.ventricle_points
            out.append(dict(kind=kind, centre=pts[rng.integers(len(pts))], radius=rng.uniform(10, 22)))
        elif kind == "subarachnoid":
            pts = tpl.cortex_points
            out.append(dict(kind=kind, centre=pts[rng.integers(len(pts))], radius=rng.uniform(22, 40)))
        else:
            pts = tpl.parenchyma_points
            out.append(dict(kind=kind, centre=pts[rng.integers(len(pts))], radius=rng.uniform(6, 16),
                            axes=rng.uniform(0.7, 1.3, 3), lobes=rng.normal(0, 0.12, 4),
                            phase=rng.uniform(0, 2 * np.pi, 4)))
    return out


def _bleed_mask(b: dict, q: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Boolean mask of one bleed at template points q (..., 3) given the sampled maps m (4, ...)."""
    gm, wm, dist, vent = m
    inside = dist > 0
    if b["kind"] in ("subdural", "epidural"):
        ang = np.arccos(np.clip(dot(_unit(q - BRAIN_CENTRE), b["direction"]), -1, 1)) / b["arc"]
        zc = BRAIN_CENTRE[2] + 60 * b["direction"][2]
        reach = np.clip(1 - ang**2 - ((q[..., 2] - zc) / b["height"]) ** 2, 0, None)
        profile = np.sqrt(reach) if b["kind"] == "subdural" else reach  # crescent vs lens
        return inside & (dist < b["thickness"] * profile)
    r = np.linalg.norm(q - b["centre"], axis=-1)
    if b["kind"] == "intraventricular":
        return (vent > 0.5) & (r < b["radius"])
    if b["kind"] == "subarachnoid":
        csf = inside & (gm + wm < 0.45) & (vent < 0.5)
        return csf & (r < b["radius"]) & (dist < 30)
    d = (q - b["centre"]) / b["axes"]
    rr = np.linalg.norm(d, axis=-1)
    u = _unit(d)
    wobble = 1 + sum(b["lobes"][k] * np.sin(3 * u[..., k % 3] + 2 * u[..., (k + 1) % 3] + b["phase"][k])
                     for k in range(4))
    return inside & (gm + wm > 0.3) & (rr < b["radius"] * wobble)


def _subject_volume(rng: np.random.Generator, tpl: Template, preset: Preset, positive: bool):
    """HU slices (n, rows, rows), bleed bit masks (n, rows, rows) uint8, geometry, bleed list."""
    rows = preset.rows
    spacing = preset.fov_mm / rows * rng.uniform(1 - preset.fov_jitter, 1 + preset.fov_jitter)
    scale = rng.normal(1.0, 0.05)
    rot = _rotation(np.deg2rad(rng.uniform(-14, 8)), *np.deg2rad(rng.uniform(-preset.tilt_deg, preset.tilt_deg, 2)))
    centre = np.array([rng.normal(0, 3 + preset.offset_mm), rng.normal(-20, 4 + preset.offset_mm), 0.0])  # at the image centre
    waves = rng.normal(0, 1, (6, 3)) * (2 * np.pi / rng.uniform(90, 160))
    amps, phases = rng.normal(0, 2.5, (6, 3)), rng.uniform(0, 2 * np.pi, 6)
    z0 = rng.uniform(-42, -30)
    n_slices = int((rng.uniform(78, 90) - z0) // preset.slice_mm) + 1
    # patient (scanner) coordinates in LPS mm of every pixel centre; head centred in the field
    c = (np.arange(rows) - (rows - 1) / 2) * spacing
    zs = z0 + np.arange(n_slices) * preset.slice_mm
    Z, Y, X = np.meshgrid(zs, c, c, indexing="ij")
    lps = np.stack([X, Y, Z], -1)
    ras = lps * np.array([-1.0, -1.0, 1.0]) + centre
    q = dot(ras, rot) / scale  # inverse of: head = rot @ (scale * template)
    q = q.astype(np.float32)
    q = q + sum(amps[k].astype(np.float32) * np.sin(dot(q, waves[k].astype(np.float32)) + phases[k])[..., None]
                for k in range(6))
    m = sample_template(tpl, q)
    gm, wm, dist, vent = m
    bleeds = _draw_bleeds(rng, tpl, positive)
    bits = np.zeros(q.shape[:-1], np.uint8)
    for b in bleeds:
        bits |= _bleed_mask(b, q, m).astype(np.uint8) << BLEEDS.index(b["kind"])
    # tissue -> HU, with per-subject offsets (age, scanner calibration)
    off = rng.normal(0, 2.0, 3)
    inside = np.clip(dist / tpl.mm + 0.5, 0, 1)
    csf = np.clip(1 - gm - wm, 0, 1)
    brain = gm * (HU["gm"] + off[0]) + wm * (HU["wm"] + off[1]) + csf * (HU["csf"] + off[2])
    skull_t = rng.uniform(5.5, 8.0) * scale
    depth = -dist  # mm outside the inner table
    table = np.exp(-((depth - 0.2 * skull_t) / 1.2) ** 2) + np.exp(-((depth - 0.85 * skull_t) / 1.2) ** 2)
    bone = np.clip(HU["diploe"] + (HU["table"] - HU["diploe"]) * table, None, HU["table"])
    in_skull = (depth > 0) & (depth <= skull_t)
    scalp_t = skull_t + rng.uniform(4, 7)
    soft = np.where(depth - skull_t < 1.5, HU["fat"], HU["scalp"])
    hu = np.full(q.shape[:-1], HU["air"], np.float32)
    hu = np.where((depth > skull_t) & (depth <= scalp_t), soft, hu)
    hu = np.where(in_skull, bone, hu)
    hu = np.where(depth <= 0, brain * inside + bone * (1 - inside), hu)
    # calcifications (choroid plexus, pineal, falx): bright specks in anyone
    for _ in range(rng.integers(0, 4)):
        centre = tpl.ventricle_points[rng.integers(len(tpl.ventricle_points))] + rng.normal(0, 4, 3)
        speck = np.linalg.norm(q - centre, axis=-1) < rng.uniform(1.5, 3.0)
        hu = np.where(speck & (depth <= 0), HU["calcification"] * rng.uniform(0.5, 1.5), hu)
    blood = bits > 0
    if blood.any():
        level = HU["blood"] + rng.normal(0, 6)
        soft_mask = ndimage.gaussian_filter(blood.astype(np.float32), (0, 0.6, 0.6))
        rim = ndimage.gaussian_filter(blood.astype(np.float32), (0, 2.5, 2.5)) - soft_mask
        hu = np.where(depth <= 0, hu * (1 - soft_mask) + level * soft_mask - 10 * np.clip(rim, 0, 1), hu)
    # the headrest under the occiput: a curved plastic shell, apart from the head (background removal's job)
    head_y = Y[hu > -500]
    if head_y.size:
        back = head_y.max() + rng.uniform(9, 14)
        shell = np.abs(Y - (back + 0.006 * X**2)) < rng.uniform(2.0, 3.5)
        hu = np.where(shell & (np.abs(X) < 75) & (hu < -500), rng.uniform(150, 350), hu)
    hu = hu + np.where(hu > -900, rng.normal(0, rng.uniform(*preset.noise_hu), hu.shape), 0)
    blur = rng.uniform(*preset.kernel_px) if preset.kernel_px[0] != preset.kernel_px[1] else preset.kernel_px[0]
    hu = ndimage.gaussian_filter(hu, (0, blur, blur))  # reconstruction kernel
    if preset.calibration_hu:  # the scanner's offset, on everything but air
        hu = np.where(hu > -900, hu + rng.normal(0, preset.calibration_hu), hu)
    geometry = dict(spacing=spacing, zs=zs, origin_xy=(float(c[0]), float(c[0])))
    return hu.astype(np.float32), bits, geometry, bleeds


# ----------------------------------------------------------------------------- DICOM writing
def _hexid(*parts, n=9) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:n]


def write_ct_slice(path: str | Path, hu: np.ndarray, *, patient: str, study_uid: str, series_uid: str,
                   sop_uid: str, position: tuple[float, float, float], spacing: float, instance: int = 1,
                   slope: float = 1.0, intercept: float = -1024.0, bits_stored: int = 16,
                   pixel_representation: int = 1, syntax: str = "explicit", rsna_quirk: bool = False,
                   window: tuple[float, float] = (40.0, 80.0)) -> Path:
    """Write one axial CT slice (HU) as a DICOM file with the tags a real CT series carries.

    `syntax`: "explicit" (uncompressed), "rle" (RLE Lossless, pydicom's encoder), "j2k"
    (JPEG 2000 Lossless, pylibjpeg-openjpeg) or "jls" (JPEG-LS Lossless, pyjpegls). `rsna_quirk` stores HU wrapped modulo 4096 in
    12 unsigned bits with intercept 0, as the faulty RSNA series do.
    """
    path = Path(path)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"  # pydicom's root, fixed: same bytes
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
    ds.Modality, ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = "CT", patient, study_uid, series_uid
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [round(float(v), 3) for v in position]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [round(float(spacing), 5)] * 2
    ds.SliceThickness = 5.0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = hu.shape
    ds.WindowCenter, ds.WindowWidth = window
    if rsna_quirk:
        bits_stored, pixel_representation, intercept, slope = 12, 0, 0.0, 1.0
        stored = np.mod(np.round(np.clip(hu, -1000, 3000)), 4096).astype(np.uint16)
    else:
        lo, hi = (0, 2**bits_stored - 1) if pixel_representation == 0 else (-2**(bits_stored - 1), 2**(bits_stored - 1) - 1)
        stored = np.clip(np.round((hu - intercept) / slope), lo, hi)
        stored = stored.astype(np.uint16 if pixel_representation == 0 else np.int16)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = pixel_representation
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = intercept, slope, "HU"
    ds.PixelData = stored.tobytes()
    if syntax == "rle":
        ds.compress(RLELossless, stored, generate_instance_uid=False)
    elif syntax == "j2k":
        ds.compress(JPEG2000Lossless, stored, generate_instance_uid=False)
    elif syntax == "jls":
        ds.compress(JPEGLSLossless, stored, generate_instance_uid=False)
    elif syntax != "explicit":
        raise ValueError(f"write_ct_slice: unknown syntax {syntax!r}; use explicit, rle, j2k or jls")
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


# ----------------------------------------------------------------------------- the cohort
def _write_subject(s: int, positive: bool, syntax: str, quirk: bool, unannotated: bool, profile: int, *,
                   tpl: Template, p: Preset, seed: int, dcm_dir: Path, mask_dir: Path):
    """One subject's DICOM series and bleed masks; returns (truth rows, label CSV rows)."""
    truth, labels = [], []
    rng = np.random.default_rng([seed, s, 17])
    hu, bits, geo, bleeds = _subject_volume(rng, tpl, p, positive)
    patient = f"ID_{_hexid(seed, s, 'patient', n=8)}"
    study_uid = generate_uid(entropy_srcs=[str(seed), patient, "study"])
    series_uid = generate_uid(entropy_srcs=[str(seed), patient, "series"])
    bits_stored, pixrep, intercept = PROFILES[profile]
    min_px = p.min_area_mm2 / geo["spacing"] ** 2
    ids = []
    for k in range(len(hu)):
        image = f"ID_{_hexid(seed, s, k)}"
        ids.append(image)
        pos = (geo["origin_xy"][0], geo["origin_xy"][1], geo["zs"][k])
        write_ct_slice(dcm_dir / f"{image}.dcm", hu[k], patient=patient, study_uid=study_uid,
                       series_uid=series_uid, sop_uid=generate_uid(entropy_srcs=[str(seed), image]),
                       position=pos, spacing=geo["spacing"], instance=k + 1, intercept=intercept,
                       bits_stored=bits_stored, pixel_representation=pixrep, syntax=syntax,
                       rsna_quirk=quirk)
        area = [int(((bits[k] >> j) & 1).sum()) for j in range(5)]
        lab = [int(a >= min_px) for a in area]
        lab.append(int(any(lab)))
        truth.append(dict(image=image, patient=patient, slice=k, z=float(geo["zs"][k]),
                          syntax=syntax, rsna_quirk=quirk, annotated=not unannotated,
                          corrupt=False, **{f"{t}_px": a for t, a in zip(BLEEDS, area)},
                          **dict(zip(SUBTYPES, lab))))
        if not unannotated:
            labels += [(f"{image}_{t}", v) for t, v in zip(SUBTYPES, lab)]
    np.savez_compressed(mask_dir / f"{patient}.npz", images=np.array(ids), bits=bits)
    return truth, labels


def generate_cohort(root: str | Path, *, preset: str = "small", seed: int = 0, n_jobs: int = 2) -> Path:
    """Write the cohort under `root` on first use (`medvid_core.cache.ensure`: reused while `root` holds
    this preset's values and seed, otherwise rebuilt from scratch). Returns `root`."""
    key = dict(generator="head_ct", version=2, preset=preset, values=asdict(PRESETS[preset]), seed=seed)
    return ensure(root, key, lambda tmp: make_cohort(tmp, preset=preset, seed=seed, n_jobs=n_jobs))


def make_cohort(root: str | Path, *, preset: str = "small", seed: int = 0, n_jobs: int = 2) -> Path:
    """Write the cohort under `root` (always; `generate_cohort` caches). Returns `root`.

    Subjects are written by `n_jobs` processes, each subject from its own seeded stream, so the files
    are the same whatever `n_jobs` is."""
    root = Path(root)
    p = PRESETS[preset]
    tpl = template(p.template_mm)
    master = np.random.default_rng([seed, 4004])
    n = p.n_subjects
    n_pos = int(round(p.positive_fraction * n))
    positive = master.permutation(np.arange(n) < n_pos)
    count = lambda frac: int(np.ceil(frac * n)) if frac > 0 else 0  # noqa: E731  (at least one when asked)
    syntax = np.array(["explicit"] * n, dtype=object)
    order = master.permutation(n)
    syntax[order[:count(p.rle_fraction)]] = "rle"
    syntax[order[count(p.rle_fraction):count(p.rle_fraction) + count(p.j2k_fraction)]] = "j2k"
    n_jls = count(p.rle_fraction) + count(p.j2k_fraction)
    syntax[order[n_jls:n_jls + count(p.jls_fraction)]] = "jls"  # taken from series that were uncompressed before
    quirk = np.isin(np.arange(n), master.permutation(n)[:count(p.quirk_fraction)])
    unannotated = np.isin(np.arange(n), master.permutation(n)[:count(p.unannotated_fraction)])
    profiles = master.integers(len(PROFILES), size=n)
    dcm_dir, mask_dir = root / "stage_2_train", root / "masks"
    dcm_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(exist_ok=True)
    jobs = [(s, bool(positive[s]), str(syntax[s]), bool(quirk[s]), bool(unannotated[s]), int(profiles[s]))
            for s in range(n)]
    work = partial(_write_subject, tpl=tpl, p=p, seed=seed, dcm_dir=dcm_dir, mask_dir=mask_dir)
    done = fork_map(work, jobs, n_jobs=n_jobs)  # each subject draws from its own stream
    truth = [row for rows, _ in done for row in rows]
    labels = [row for _, rows in done for row in rows]
    truth = pd.DataFrame(truth)
    # one (annotated if possible) uncompressed slice gets pixel data of the wrong length (as RSNA's ID_6431af929)
    # candidates as before JPEG-LS series existed (they were uncompressed), so the same slice is corrupted
    plain = truth.index[truth["syntax"].isin(["explicit", "jls"]) & truth["annotated"]]
    plain = plain if len(plain) else truth.index[truth["syntax"].isin(["explicit", "jls"])]
    bad = plain[master.integers(len(plain))]
    truth.loc[bad, "corrupt"] = True
    f = dcm_dir / f"{truth.loc[bad, 'image']}.dcm"
    ds = pydicom.dcmread(f)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]
    ds.save_as(f, enforce_file_format=True)
    label_df = pd.DataFrame(labels, columns=["ID", "Label"])
    dup = label_df.iloc[master.choice(len(label_df), size=min(p.duplicate_rows, len(label_df)), replace=False)]
    label_df = pd.concat([label_df, dup]).sort_index(kind="stable")
    label_df.to_csv(root / "stage_2_train.csv", index=False)
    truth.to_csv(root / "truth.csv", index=False)
    return root
