"""A synthetic musculoskeletal-radiograph archive laid out exactly like Stanford's MURA-v1.1.

MURA cannot be redistributed, so this writes what the real download looks like on disk::

    root/MURA-v1.1/train/XR_WRIST/patient00007/study1_positive/image1.png
    root/MURA-v1.1/train_image_paths.csv      one image path per line, no header
    root/MURA-v1.1/train_labeled_studies.csv  "<study folder>/,<0|1>" per line, no header
    (and the same for valid)

Ground truth that MURA does not have is written beside the archive, never inside it:
``root/ground_truth/boxes.csv`` (path, kind = abnormality | flag, type, x0, y0, x1, y1 in pixels,
half-open), so attention maps and zoom crops can be scored.

The pictures are projection radiographs of the seven body parts: each bone is a capsule whose
X-ray attenuation follows its chord length (bright cortex, darker marrow, overlaps add up),
inside a soft-tissue envelope, under a per-image exposure (gain, gamma, offset), blur and noise;
pose, size, aspect and bone build vary per patient and view. Abnormal studies show metal hardware
(a plate with screws, loose screws, K-wire pins) or a displaced fracture -- the fracture is thin
and is easy to miss once the image is shrunk to the network input, which is what zooming is for.
Left/right marker "flags" (letters in a box; size, angle, position and contrast varying) sit on
most images whatever the label, as the paper found the network attending to them. Most images
are 8-bit grayscale PNGs, some are stored as RGB, as in the real archive.

Deterministic: the same preset and seed give byte-identical files; every study draws from its
own seeded stream, so the bytes do not depend on `n_jobs`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from ..cache import ensure
from ..parallel import fork_map
from .exact import dot, power

BODY_PARTS = ("ELBOW", "FINGER", "FOREARM", "HAND", "HUMERUS", "SHOULDER", "WRIST")
ARCHIVE = "MURA-v1.1"
ABNORMALITIES = ("plate", "screws", "pins", "fracture")


@dataclass(frozen=True)
class Preset:
    """Archive shape: studies per body part and split, image size range, class and flag rates."""

    train_studies: dict  # body part -> number of studies
    valid_studies: dict
    size: tuple[int, int]  # min, max image height in pixels (MURA's images are at most 512)
    positive: float = 0.4  # fraction of abnormal studies (MURA: ~40% train, ~47% valid)
    flag_rate: float = 0.85  # fraction of images with a left/right marker, whatever the label
    rgb_rate: float = 0.1  # fraction of images stored as 3-channel PNGs


def _per_part(n: int) -> dict:
    return {p: n for p in BODY_PARTS}


PRESETS = {
    # tests: a handful of studies per body part, small images
    "tiny": Preset(train_studies=_per_part(3), valid_studies=_per_part(2), size=(96, 128)),
    # CPU default: ~250 studies, ~600 images of 160-256 px, generated in seconds
    "small": Preset(train_studies=_per_part(24), valid_studies=_per_part(12), size=(160, 256)),
    # a laptop hour: ten times the studies at 256-384 px
    "laptop": Preset(train_studies=_per_part(200), valid_studies=_per_part(60), size=(256, 384)),
    # MURA-v1.1's study counts per body part (13,457 train / 1,199 valid studies), images up to 512 px
    "paper": Preset(
        train_studies=dict(ELBOW=1754, FINGER=1935, FOREARM=877, HAND=2018, HUMERUS=592, SHOULDER=2821, WRIST=3460),
        valid_studies=dict(ELBOW=158, FINGER=175, FOREARM=133, HAND=167, HUMERUS=135, SHOULDER=194, WRIST=237),
        size=(384, 512), positive=0.39),  # 5,715 of 14,656 studies abnormal
}

# ------------------------------------------------------------------ anatomy (unit square, y down)
# each bone: (x0, y0, x1, y1, radius); a zero-length segment is a round bone


def _skeleton(part: str, rng: np.random.Generator) -> list[tuple]:
    j = lambda: rng.normal(0, 0.01)  # noqa: E731  small per-patient shape jitter
    if part == "HUMERUS":
        return [(0.5, 0.1, 0.5 + j(), 0.9, 0.07), (0.5, 0.07, 0.5, 0.07, 0.11), (0.42, 0.92, 0.58, 0.92, 0.06)]
    if part == "FOREARM":
        return [(0.42, 0.04, 0.40 + j(), 0.96, 0.045), (0.58, 0.04, 0.57 + j(), 0.96, 0.04)]
    if part == "ELBOW":
        bend = rng.uniform(-0.08, 0.08)
        return [(0.5, 0.0, 0.5, 0.46, 0.07), (0.42, 0.5, 0.58, 0.5, 0.07), (0.6, 0.49, 0.6, 0.49, 0.05),
                (0.45, 0.57, 0.40 + bend, 1.0, 0.045), (0.57, 0.55, 0.58 + bend, 1.0, 0.045)]
    if part == "WRIST":
        bones = [(0.42, 0.58, 0.42 + j(), 1.0, 0.06), (0.6, 0.62, 0.6 + j(), 1.0, 0.045)]
        bones += [(0.36 + 0.07 * i, 0.47 + 0.06 * (i % 2), 0.36 + 0.07 * i, 0.47 + 0.06 * (i % 2), 0.033)
                  for i in range(5)]
        bones += [(0.34 + 0.075 * i, 0.36, 0.31 + 0.09 * i, 0.0, 0.024) for i in range(5)]
        return bones
    if part == "HAND":
        bones = [(0.4 + 0.06 * i, 0.8 + 0.04 * (i % 2), 0.4 + 0.06 * i, 0.8 + 0.04 * (i % 2), 0.03) for i in range(4)]
        bones += [(0.44, 0.92, 0.44, 1.0, 0.045), (0.58, 0.92, 0.58, 1.0, 0.035)]
        for i in range(4):  # fingers 2-5: metacarpal, proximal, middle, distal
            x = [0.40 + 0.06 * i, 0.33 + 0.1 * i, 0.30 + 0.115 * i, 0.28 + 0.125 * i, 0.27 + 0.13 * i]
            y = [0.74, 0.47, 0.30, 0.18, 0.09 + j()]
            bones += [(x[k], y[k] - 0.012 * (k > 0), x[k + 1], y[k + 1] + 0.012, 0.022) for k in range(4)]
        thumb = [(0.37, 0.76), (0.24, 0.62), (0.17, 0.5), (0.13, 0.41)]
        bones += [(*thumb[k], *thumb[k + 1], 0.026) for k in range(3)]
        return bones
    if part == "FINGER":
        y = [1.0, 0.7, 0.43, 0.24, 0.07 + j()]
        return [(0.5, y[k] - 0.02 * (k > 0), 0.5 + j(), y[k + 1] + 0.02, 0.06 - 0.005 * k) for k in range(4)]
    if part == "SHOULDER":
        return [(0.56, 0.48, 0.56, 0.48, 0.14), (0.58, 0.55, 0.62 + j(), 1.0, 0.08), (0.36, 0.3, 0.39, 0.72, 0.05),
                (0.15, 0.22, 0.36, 0.55, 0.08), (0.02, 0.14, 0.6, 0.2 + j(), 0.033), (0.44, 0.26, 0.64, 0.3, 0.03)]
    raise ValueError(f"unknown body part {part!r}; choose from: {', '.join(BODY_PARTS)}")


def _capsule_distance(xx: np.ndarray, yy: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Distance of every pixel to the segment (x0, y0, x1, y1), in pixels."""
    x0, y0, x1, y1 = seg
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
    return np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy))


def _chord(d: np.ndarray, r: float) -> np.ndarray:
    """Path length of an X-ray through a cylinder of radius r at distance d from its axis."""
    return 2 * np.sqrt(np.clip(r * r - d * d, 0, None))


# ------------------------------------------------------------------ abnormalities (unit-square coords)


def _abnormality(kind: str, bones: list[tuple], rng: np.random.Generator) -> dict:
    """Pick the longest bones and place the abnormality on one of them.

    Returns metal capsules to add, and for a fracture the bone split into two displaced pieces.
    """
    lengths = np.array([np.hypot(b[2] - b[0], b[3] - b[1]) for b in bones])
    candidates = np.flatnonzero(lengths >= 0.5 * lengths.max())
    bi = int(rng.choice(candidates))
    x0, y0, x1, y1, r = bones[bi]
    u = np.array([x1 - x0, y1 - y0]) / max(lengths[bi], 1e-9)
    n = np.array([-u[1], u[0]])
    t = rng.uniform(0.3, 0.7)
    c = np.array([x0, y0]) + t * lengths[bi] * u
    metal: list[tuple] = []
    if kind == "plate":
        half = rng.uniform(0.1, 0.18) * lengths[bi] / 0.9
        side = c + n * r * rng.choice([-1, 1]) * 0.9
        metal.append((*(side - half * u), *(side + half * u), 0.3 * r))
        for s in np.linspace(-0.8, 0.8, int(rng.integers(3, 6))):  # screws through plate and bone
            p = c + s * half * u
            metal.append((*(p - 1.3 * r * n), *(p + 1.3 * r * n), 0.1 * r))
    elif kind == "screws":
        for _ in range(int(rng.integers(1, 4))):
            p = c + rng.uniform(-0.08, 0.08) * u
            a = rng.uniform(-0.4, 0.4)
            d = n * np.cos(a) + u * np.sin(a)
            metal.append((*(p - 1.2 * r * d), *(p + 1.2 * r * d), 0.12 * r))
            metal.append((*(p + 1.2 * r * d), *(p + 1.2 * r * d), 0.25 * r))  # screw head
    elif kind == "pins":
        for _ in range(int(rng.integers(1, 4))):
            a = rng.uniform(0.25, 0.6) * rng.choice([-1, 1])
            d = u * np.cos(a) + n * np.sin(a)
            p = c + rng.uniform(-0.05, 0.05) * u
            half = rng.uniform(0.1, 0.2)
            metal.append((*(p - half * d), *(p + half * d), 0.012))
    new_bones = list(bones)
    if kind == "fracture":  # a gap across the bone and the distal piece shifted sideways
        gap, shift = rng.uniform(0.006, 0.012), n * r * rng.uniform(0.15, 0.4) * rng.choice([-1, 1])
        a = c - gap / 2 * u
        b = c + gap / 2 * u + shift
        new_bones[bi] = (x0, y0, *a, r)
        new_bones.append((*b, x1 + shift[0], y1 + shift[1], r))
        extent = [(*a, 1.3 * r), (*b, 1.3 * r)]
    else:
        extent = [(x, y, rr) for x0_, y0_, x1_, y1_, rr in metal for x, y in ((x0_, y0_), (x1_, y1_))]
    # the ground-truth box: every drawn end point with its radius (unit-square coords)
    return dict(kind=kind, bones=new_bones, metal=metal, extent=np.array(extent))


# ------------------------------------------------------------------ rendering


def _to_pixels(points: np.ndarray, pose: dict) -> np.ndarray:
    """Unit-square points (k, 2) -> pixel coordinates under the view's similarity transform."""
    rot = np.array([[np.cos(pose["angle"]), -np.sin(pose["angle"])], [np.sin(pose["angle"]), np.cos(pose["angle"])]])
    return dot(points - 0.5, rot.T) * pose["scale"] + pose["centre"]


def _window(seg: np.ndarray, margin: float, h: int, w: int) -> tuple[slice, slice]:
    """The pixel rows/columns within `margin` of a segment's end points' bounding box."""
    x0, x1 = sorted((seg[0], seg[2]))
    y0, y1 = sorted((seg[1], seg[3]))
    ys = slice(int(max(0, np.floor(y0 - margin))), int(min(h, np.ceil(y1 + margin) + 1)))
    xs = slice(int(max(0, np.floor(x0 - margin))), int(min(w, np.ceil(x1 + margin) + 1)))
    return ys, xs


def _render(h: int, w: int, bones: list, metal: list, pose: dict, build: dict, rng) -> np.ndarray:
    """Attenuation image -> detector intensity in [0, 1] (bright = dense, as radiographs are shown).

    Each capsule is evaluated only in the window it can reach (its radius plus the soft-tissue margin).
    """
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    s = pose["scale"]
    att = np.zeros((h, w), np.float32)
    soft = np.full((h, w), np.inf, np.float32)
    margin_t = build["tissue"] * s
    for x0, y0, x1, y1, r in bones:
        seg = _to_pixels(np.array([[x0, y0], [x1, y1]]), pose).ravel()
        rp = r * s * build["thickness"]
        win = _window(seg, rp + margin_t + 1, h, w)
        d = _capsule_distance(xx[win], yy[win], seg)
        soft[win] = np.minimum(soft[win], d - rp)
        cortex = _chord(d, rp) - _chord(d, 0.65 * rp)
        att[win] += build["cortex"] * cortex / s + build["marrow"] * _chord(d, 0.65 * rp) / s
    # soft-tissue envelope: a smooth layer around the bones
    tissue = np.clip(1 - soft / margin_t, 0, None)
    att += 0.6 * np.sqrt(tissue) * build["tissue"]
    for x0, y0, x1, y1, r in metal:
        seg = _to_pixels(np.array([[x0, y0], [x1, y1]]), pose).ravel()
        rm = max(r * s, 0.8)
        win = _window(seg, rm + 1, h, w)
        d = _capsule_distance(xx[win], yy[win], seg)
        att[win] += 4.0 * (d <= rm).astype(np.float32)
    img = 1 - np.exp(-build["gain"] * att)
    img = cv2.GaussianBlur(img, (0, 0), 0.6)
    img = build["offset"] + (1 - build["offset"]) * power(np.clip(img, 0, 1), build["gamma"])
    img += rng.normal(0, build["noise"], img.shape).astype(np.float32)
    return np.clip(img, 0, 1)


def _flag(img: np.ndarray, rng: np.random.Generator) -> tuple[str, tuple[int, int, int, int]]:
    """Burn a rotated letter marker into `img`; return its text and pixel box (x0, y0, x1, y1)."""
    h, w = img.shape
    text = str(rng.choice(["L", "R", "LT", "RT", "L PA", "R AP"], p=[0.3, 0.3, 0.12, 0.12, 0.08, 0.08]))
    scale = min(h, w) / 512 * rng.uniform(1.0, 2.2)
    thick = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = max(2, int(0.35 * th))
    patch = np.zeros((th + base + 2 * pad, tw + 2 * pad), np.uint8)  # OpenCV draws text on 8-bit only
    cv2.putText(patch, text, (pad, pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thick, cv2.LINE_AA)
    if rng.random() < 0.7:  # the marker's box outline
        cv2.rectangle(patch, (0, 0), (patch.shape[1] - 1, patch.shape[0] - 1), 255, max(1, thick // 2))
    patch = patch.astype(np.float32) / 255
    angle = rng.uniform(-35, 35)
    ph, pw = patch.shape
    m = cv2.getRotationMatrix2D((pw / 2, ph / 2), angle, 1.0)
    bw = int(np.ceil(abs(m[0, 0]) * pw + abs(m[0, 1]) * ph))
    bh = int(np.ceil(abs(m[1, 0]) * pw + abs(m[1, 1]) * ph))
    m[:, 2] += (bw - pw) / 2, (bh - ph) / 2
    rot = cv2.warpAffine(patch, m, (bw, bh))
    bh, bw = min(bh, h - 2), min(bw, w - 2)
    rot = rot[:bh, :bw]
    if rng.random() < 0.75:  # mostly in a corner band, sometimes anywhere
        x = int(rng.choice([rng.integers(0, max(1, w // 6)), rng.integers(max(1, w - w // 6 - bw), max(2, w - bw))]))
        y = int(rng.choice([rng.integers(0, max(1, h // 6)), rng.integers(max(1, h - h // 6 - bh), max(2, h - bh))]))
    else:
        x, y = int(rng.integers(0, max(1, w - bw))), int(rng.integers(0, max(1, h - bh)))
    contrast = rng.uniform(0.45, 1.0)
    region = img[y:y + bh, x:x + bw]
    if rng.random() < 0.8:  # bright lead letters
        region[:] = np.maximum(region, contrast * rot)
    else:  # dark letters on a bright tab
        tab = (cv2.dilate((rot > 0.05).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
        region[tab] = np.maximum(region[tab], contrast)
        region[:] = region - contrast * 0.8 * rot
    ys, xs = np.nonzero(rot > 0.05)
    box = (x + int(xs.min()), y + int(ys.min()), x + int(xs.max()) + 1, y + int(ys.max()) + 1)
    np.clip(img, 0, 1, out=img)
    return text, box


def _box_of(lo: np.ndarray, hi: np.ndarray, h: int, w: int) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1) around points' lower/upper corners (k, 2), clipped to the image."""
    x0, y0 = np.floor(lo.min(0)).astype(int)
    x1, y1 = np.ceil(hi.max(0)).astype(int)
    return max(0, x0), max(0, y0), min(w, x1), min(h, y1)


def _write_study(root: Path, split: str, part: str, patient: str, study: str, label: int,
                 cfg: Preset, stream: np.random.SeedSequence) -> tuple[list[str], list[dict]]:
    """All views of one study: PNGs on disk; returns (image paths, ground-truth box rows)."""
    rng = np.random.default_rng(stream)
    build0 = dict(thickness=rng.uniform(0.85, 1.2), cortex=rng.uniform(2.2, 3.2), marrow=rng.uniform(0.6, 1.0),
                  tissue=rng.uniform(0.06, 0.12))
    bones = _skeleton(part, rng)
    ab = _abnormality(str(rng.choice(ABNORMALITIES, p=[0.3, 0.2, 0.2, 0.3])), bones, rng) if label else None
    n_views = int(rng.choice([1, 2, 3, 4], p=[0.1, 0.45, 0.3, 0.15]))
    folder = f"{ARCHIVE}/{split}/XR_{part}/{patient}/{study}"
    paths, boxes = [], []
    for k in range(1, n_views + 1):
        h = int(rng.integers(cfg.size[0], cfg.size[1] + 1))
        aspect = rng.uniform(1.1, 1.6) if part == "SHOULDER" else rng.uniform(0.6, 1.0)
        w = int(round(h * aspect))
        pose = dict(angle=rng.normal(0, 0.2), scale=min(h, w) * rng.uniform(0.85, 1.05) * (h / min(h, w)) ** 0.5,
                    centre=np.array([w / 2, h / 2]) + rng.normal(0, 0.04, 2) * (w, h))
        build = dict(build0, gain=rng.uniform(0.6, 1.6), gamma=rng.uniform(0.7, 1.4),
                     offset=rng.uniform(0.0, 0.15), noise=rng.uniform(0.005, 0.03))
        img = _render(h, w, ab["bones"] if ab else bones, ab["metal"] if ab else [], pose, build, rng)
        path = f"{folder}/image{k}.png"
        if ab:
            pts, rad = _to_pixels(ab["extent"][:, :2], pose), ab["extent"][:, 2:] * pose["scale"] + 1
            box = _box_of(pts - rad, pts + rad, h, w)
            if box[2] > box[0] and box[3] > box[1]:
                boxes.append(dict(path=path, kind="abnormality", type=ab["kind"], x0=box[0], y0=box[1],
                                  x1=box[2], y1=box[3]))
        if rng.random() < cfg.flag_rate:
            text, box = _flag(img, rng)
            boxes.append(dict(path=path, kind="flag", type=text, x0=box[0], y0=box[1], x1=box[2], y1=box[3]))
        pixels = np.round(img * 255).astype(np.uint8)
        out = root / path
        out.parent.mkdir(parents=True, exist_ok=True)
        if rng.random() < cfg.rgb_rate:
            tint = np.clip(np.stack([pixels * t for t in rng.uniform(0.95, 1.0, 3)], -1), 0, 255).astype(np.uint8)
            Image.fromarray(tint, "RGB").save(out, optimize=False)
        else:
            Image.fromarray(pixels, "L").save(out, optimize=False)
        paths.append(path)
    return paths, boxes


def make_archive(root: str | Path, preset: str = "small", *, seed: int = 0, n_jobs: int = 2) -> Path:
    """Write the archive `preset` under `root`; return `root/MURA-v1.1`.

    Patients are numbered across train then valid (as MURA does: no patient in both splits);
    about a quarter of patients have two or three studies of the same body part.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown MURA preset {preset!r}; choose from: {', '.join(PRESETS)}")
    cfg, root = PRESETS[preset], Path(root)
    rng = np.random.default_rng(seed)
    jobs, patient_no, studies = [], 0, {"train": [], "valid": []}
    for split, counts in (("train", cfg.train_studies), ("valid", cfg.valid_studies)):
        for part in BODY_PARTS:
            left = counts[part]
            while left > 0:
                patient_no += 1
                n = min(left, int(rng.choice([1, 2, 3], p=[0.75, 0.18, 0.07])))
                for s in range(1, n + 1):
                    label = int(rng.random() < cfg.positive)
                    study = f"study{s}_{'positive' if label else 'negative'}"
                    jobs.append((split, part, f"patient{patient_no:05d}", study, label))
                left -= n
    streams = np.random.SeedSequence(seed).spawn(len(jobs))
    args = [(root, *job, cfg, st) for job, st in zip(jobs, streams)]
    results = fork_map(_write_study, args, n_jobs=n_jobs, chunksize=8)
    archive = root / ARCHIVE
    boxes = []
    for split in ("train", "valid"):
        paths, labelled = [], []
        for job, (img_paths, img_boxes) in zip(jobs, results):
            if job[0] != split:
                continue
            paths += img_paths
            labelled.append(f"{ARCHIVE}/{split}/XR_{job[1]}/{job[2]}/{job[3]}/,{job[4]}")
            boxes += img_boxes
        (archive / f"{split}_image_paths.csv").write_text("\n".join(paths) + "\n")
        (archive / f"{split}_labeled_studies.csv").write_text("\n".join(labelled) + "\n")
    gt = root / "ground_truth"
    gt.mkdir(exist_ok=True)
    pd.DataFrame(boxes, columns=["path", "kind", "type", "x0", "y0", "x1", "y1"]).to_csv(gt / "boxes.csv", index=False)
    return archive


def ensure_archive(root: str | Path, preset: str = "small", *, seed: int = 0, n_jobs: int = 2) -> Path:
    """Generate the archive on first use (`medvid_core.cache.ensure`); reuse it while `root` holds this
    preset (its values, not just its name) and seed. Returns `root/MURA-v1.1`."""
    if preset not in PRESETS:
        raise ValueError(f"unknown MURA preset {preset!r}; choose from: {', '.join(PRESETS)}")
    # bump the version whenever the pictures change, so an archive cached by an older generator is made
    # again (v2: windowed capsule drawing redrew pixels of 9 `small` images; v3: CPU-independent gamma)
    key = dict(generator="radiograph", version=3, preset=preset, values=asdict(PRESETS[preset]), seed=seed)
    return ensure(root, key, lambda tmp: make_archive(tmp, preset, seed=seed, n_jobs=n_jobs)) / ARCHIVE


def load_boxes(root: str | Path) -> pd.DataFrame:
    """The ground-truth boxes written beside the archive (`root/ground_truth/boxes.csv`)."""
    return pd.read_csv(Path(root) / "ground_truth" / "boxes.csv")
