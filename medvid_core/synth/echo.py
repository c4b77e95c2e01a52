"""Synthetic apical four-chamber echocardiograms with a known ejection fraction, in EchoNet-Dynamic's layout.

EchoNet-Dynamic (Ouyang et al., Nature 2020) ships `FileList.csv` (FileName, EF, ESV, EDV, FrameHeight,
FrameWidth, FPS, NumberOfFrames, Split) and `Videos/<FileName>.avi`: 112x112 grey-as-RGB MJPG clips cut to
the ultrasound sector. This generator writes the same tree, plus `FrameVolumes.csv` (the drawn left-ventricular
volume of every frame) as ground truth beside it.

Each patient's heart is drawn in a sector-shaped field of view with the transducer at the top: the left
ventricle (LV) on the right is a prolate ellipsoid cut along its long axis, apex near the transducer, with a
bright myocardial wall that thickens as it contracts; the right ventricle beside it and both atria below
(filling while the ventricles empty). The LV volume follows a cardiac cycle between the end-diastolic (EDV)
and end-systolic volume (ESV), so EF = (EDV - ESV) / EDV is known exactly. For an ellipsoid the
area-length formula V = 8 A^2 / (3 pi L) (A the area of the cut, L its long axis) is exact, so the EF
measured from the drawn cavity masks equals the stated one up to pixel rasterisation
(tests/test_synth_echo.py). Heart rate, frame rate, depth (mm per pixel), position, tilt, wall thickness,
gain and speckle vary per patient; about a quarter of the patients have a reduced EF (< 40%) and dilated
ventricles. `render_beats` draws a longer clip whose EF changes from beat to beat.

Determinism: only element-wise arithmetic and square roots on the pixel grid (no BLAS, no vector
transcendental functions: see `synth.exact`), seeded streams per patient, and a single-threaded bit-exact
MJPG encoder: the same arguments give the same bytes (tested).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
from scipy import ndimage

from ..cache import ensure

SIZE = 112  # EchoNet-Dynamic's frame side in pixels
HALF_ANGLE = 38.0  # degrees either side of the sector's axis
SPLITS = ("TRAIN", "VAL", "TEST")
SYSTOLE = 0.35  # fraction of the cardiac cycle spent emptying the ventricle
REDUCED_EF = 40.0  # EF (%) below which a patient counts as reduced (heart failure with reduced EF)
# base intensities (0..1) before gain, speckle and depth attenuation
TISSUE, MYOCARDIUM, BLOOD = 0.22, 0.72, 0.05


@dataclass(frozen=True)
class Heart:
    """One patient: what stays fixed over the clip."""

    ef: float  # ejection fraction, %
    edv: float  # end-diastolic volume, mL
    heart_rate: float  # beats per minute
    fps: int  # frames per second
    depth_mm: float  # imaging depth (set to the heart's size): the sector's radius, so mm per pixel = depth / SIZE
    apex_mm: float  # distance of the LV apex from the transducer
    apex_deg: float  # the apex's angle off the sector's axis (+ right)
    tilt_deg: float  # the LV long axis's angle off vertical (+ base to the right)
    length_mm: float  # LV long axis at end diastole
    wall_mm: float  # LV wall thickness at end diastole
    gain: float  # overall brightness
    phase: float  # where in the cycle the clip starts (0 = end diastole)

    @property
    def esv(self) -> float:
        return self.edv * (1 - self.ef / 100)


def draw_heart(rng: np.random.Generator) -> Heart:
    """A patient: about 25% reduced EF (15-40%, dilated), 15% mildly reduced (40-50%), 60% normal (50-75%)."""
    kind = rng.random()
    if kind < 0.25:
        ef, edv = rng.uniform(15, 40), rng.uniform(130, 230)
    elif kind < 0.40:
        ef, edv = rng.uniform(40, 50), rng.uniform(100, 180)
    else:
        ef, edv = rng.uniform(50, 75), rng.uniform(70, 150)
    return Heart(ef=float(ef), edv=float(edv), heart_rate=float(rng.uniform(55, 110)), fps=int(rng.integers(40, 56)),
                 depth_mm=float(rng.uniform(140, 175)) * (edv / 120) ** (1 / 3), apex_mm=float(rng.uniform(18, 28)),
                 apex_deg=float(rng.uniform(-6, 3)), tilt_deg=float(rng.uniform(3, 13)),
                 length_mm=float(rng.uniform(78, 92)) * (edv / 120) ** (1 / 3), wall_mm=float(rng.uniform(8, 11)),
                 gain=float(rng.uniform(0.8, 1.2)), phase=float(rng.uniform(0, 1)))


def _filling(phase: float) -> float:
    """Fraction of the stroke volume inside the ventricle at a point of the cycle (1 at end diastole, 0 at
    end systole): a half cosine down during systole, rapid early filling, then slow filling and the atrial kick."""
    if phase < SYSTOLE:
        return 0.5 * (1 + math.cos(math.pi * phase / SYSTOLE))
    d = (phase - SYSTOLE) / (1 - SYSTOLE)
    return 0.8 * (1 - math.cos(math.pi * min(d / 0.4, 1.0))) / 2 + 0.2 * max(0.0, (d - 0.75) / 0.25)


def volume_curve(n_frames: int, fps: float, heart_rate: float, edv, esv, *, phase: float = 0.0):
    """LV volume (mL) of every frame and the beat it belongs to; beat b runs from its end diastole
    (`edv[b]`) down to `esv[b]` and fills up to the next beat's end diastole. `edv`, `esv`: one value
    per beat (scalars: every beat alike)."""
    beat_s = 60.0 / heart_rate
    n_beats = int(math.floor(phase + n_frames / fps / beat_s)) + 2
    edv = np.broadcast_to(np.asarray(edv, float), (n_beats,)) if np.ndim(edv) == 0 else np.asarray(edv, float)
    esv = np.broadcast_to(np.asarray(esv, float), (n_beats,)) if np.ndim(esv) == 0 else np.asarray(esv, float)
    if len(edv) < n_beats - 1 or len(esv) < n_beats - 1:
        raise ValueError(f"volume_curve: {n_frames} frames span {n_beats - 1} beats; "
                         f"got {len(edv)} EDVs and {len(esv)} ESVs")
    vols, beats = np.empty(n_frames), np.empty(n_frames, int)
    for t in range(n_frames):
        cycles = phase + t / fps / beat_s
        b = int(math.floor(cycles))
        p = cycles - b
        top = edv[b] if p < SYSTOLE else edv[min(b + 1, len(edv) - 1)]  # filling aims at the next end diastole
        vols[t] = esv[b] + (top - esv[b]) * _filling(p)
        beats[t] = b
    return vols, beats


def sector_mask(size: int = SIZE, half_angle: float = HALF_ANGLE) -> np.ndarray:
    """The ultrasound sector: apex at the top centre, radius the image height, `half_angle` degrees either side."""
    x, y = _pixel_grid(size)
    return (y * y + x * x <= size * size) & (np.abs(x) <= math.tan(math.radians(half_angle)) * y)


def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in pixels: x to the right of the sector's axis, y down from the transducer."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    return x + 0.5 - size / 2, y + 0.5


def _ellipse(x, y, centre, axis, half_long: float, half_short: float, soft: float):
    """Hard mask (inside the ellipse) and a soft one (a linear ramp `soft` pixels wide) of an ellipse
    whose long axis points along the unit vector `axis`. Computed on the pixels of its bounding square
    only (both are 0 beyond it), which makes no difference to a value."""
    reach = max(half_long, half_short) * (1 + soft / min(half_long, half_short)) + 2  # beyond it the ramp is 0
    cols = np.flatnonzero(np.abs(x[0] - centre[0]) <= reach)
    rows = np.flatnonzero(np.abs(y[:, 0] - centre[1]) <= reach)
    hard, ramp = np.zeros(x.shape, bool), np.zeros(x.shape)
    if len(rows) and len(cols):
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        dx, dy = x[box] - centre[0], y[box] - centre[1]
        along, across = dx * axis[0] + dy * axis[1], -dx * axis[1] + dy * axis[0]
        q = np.sqrt((along / half_long) ** 2 + (across / half_short) ** 2)
        hard[box] = q <= 1.0
        ramp[box] = np.clip((1.0 - q) * min(half_long, half_short) / soft + 0.5, 0.0, 1.0)
    return hard, ramp


def render(heart: Heart, volumes: np.ndarray, rng: np.random.Generator, *, size: int = SIZE) -> dict:
    """Frames (T, size, size) uint8, the LV cavity masks (T, size, size) bool, and per frame the drawn long
    axis (mm), the cavity's area measured from its mask (mm^2), and mm per pixel."""
    mm = heart.depth_mm / size  # mm per pixel
    x, y = _pixel_grid(size)
    sector = sector_mask(size)
    r = np.sqrt(x * x + y * y) / size
    attenuation = 1.0 - 0.45 * r  # deeper echoes come back weaker
    a = math.radians(heart.apex_deg)
    apex = np.array([heart.apex_mm * math.sin(a), heart.apex_mm * math.cos(a)]) / mm
    t = math.radians(heart.tilt_deg)
    u = np.array([math.sin(t), math.cos(t)])  # apex -> base
    v = np.array([-u[1], u[0]])  # towards the septum and the right ventricle (image left)
    radius_ed = math.sqrt(3 * heart.edv * 1000 / (2 * math.pi * heart.length_mm))
    frames = np.empty((len(volumes), size, size), np.uint8)
    masks = np.empty((len(volumes), size, size), bool)
    lengths, areas = np.empty(len(volumes)), np.empty(len(volumes))
    for k, vol in enumerate(volumes):
        f = vol / heart.edv
        length = heart.length_mm * f ** 0.2  # mm: the long axis shortens less than the short axis
        radius = math.sqrt(3 * vol * 1000 / (2 * math.pi * length))  # V = 2/3 pi r^2 L (prolate ellipsoid)
        wall = heart.wall_mm * (1 + 0.6 * (1 - f))  # the wall thickens as the cavity empties
        half_long, half_short = length / 2 / mm, radius / mm
        centre = apex + u * half_long
        cavity, cavity_soft = _ellipse(x, y, centre, u, half_long, half_short, 1.0)
        _, myo_soft = _ellipse(x, y, centre, u, half_long + wall / mm, half_short + wall / mm, 1.0)
        rv_short = 0.65 * radius_ed * (0.7 + 0.3 * f) / mm  # the right ventricle contracts with the left
        rv_centre = centre + v * (half_short + 0.7 * wall / mm + rv_short) - u * 0.1 * half_long
        _, rv_soft = _ellipse(x, y, rv_centre, u, 0.8 * half_long, rv_short, 1.0)
        atrium = (22 - 5 * f) / mm  # atria fill while the ventricles empty
        base = apex + u * (heart.length_mm / mm + heart.wall_mm / mm)
        _, la_soft = _ellipse(x, y, base + u * atrium, u, atrium, 0.9 * atrium, 1.0)
        _, ra_soft = _ellipse(x, y, base + u * atrium + v * 2.1 * atrium, u, 0.9 * atrium, 0.8 * atrium, 1.0)
        img = np.full((size, size), TISSUE)
        for soft, value in ((la_soft, BLOOD), (ra_soft, BLOOD), (rv_soft, BLOOD), (myo_soft, MYOCARDIUM),
                            (cavity_soft, BLOOD)):
            img = img * (1 - soft) + value * soft
        speckle = np.sqrt(rng.normal(size=(size, size)) ** 2 + rng.normal(size=(size, size)) ** 2) * 0.798
        speckle = ndimage.gaussian_filter(speckle, 0.6)
        img = (img * speckle + 0.02 * np.abs(rng.normal(size=(size, size)))) * attenuation * heart.gain
        frames[k] = np.where(sector, np.clip(np.round(img * 255), 0, 255), 0).astype(np.uint8)
        masks[k] = cavity & sector
        lengths[k], areas[k] = length, masks[k].sum() * mm * mm
    return {"frames": frames, "masks": masks, "length_mm": lengths, "area_mm2": areas, "mm_per_pixel": mm}


def area_length_volume(area_mm2, length_mm) -> np.ndarray:
    """The area-length (single-plane ellipsoid) volume in mL: V = 8 A^2 / (3 pi L); exact for an ellipsoid."""
    return 8 * np.asarray(area_mm2) ** 2 / (3 * math.pi * np.asarray(length_mm)) / 1000


def clip_frames(heart: Heart, *, min_frames: int = 72, beats: float = 1.6) -> int:
    """Frames in a patient's clip: `beats` cardiac cycles, at least `min_frames`."""
    return max(min_frames, int(math.ceil(beats * heart.fps * 60 / heart.heart_rate)))


def render_beats(seed: int, *, beat_ef, size: int = SIZE) -> dict:
    """A long clip of one patient whose EF changes from beat to beat (`beat_ef`, %, one per beat; the
    EDV varies a little too). Returns `render`'s output plus the per-frame volume, beat index and EF of
    the beat each frame belongs to, the heart and the per-beat EF/EDV/ESV."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1_000_003]))
    heart = draw_heart(rng)
    beat_ef = np.asarray(beat_ef, float)
    edv = heart.edv * rng.uniform(0.94, 1.06, len(beat_ef) + 1)
    edv[-1] = edv[-2]
    esv = edv[:-1] * (1 - beat_ef / 100)
    n = int(round(len(beat_ef) * heart.fps * 60 / heart.heart_rate))
    vols, beats = volume_curve(n, heart.fps, heart.heart_rate, edv, np.append(esv, esv[-1]), phase=0.0)
    out = render(heart, vols, rng, size=size)
    out.update(volumes=vols, beats=beats, heart=heart, beat_ef=beat_ef, beat_edv=edv[:-1], beat_esv=esv,
               frame_ef=beat_ef[np.minimum(beats, len(beat_ef) - 1)])
    return out


def write_avi(path: str | Path, frames: np.ndarray, *, fps: int) -> None:
    """Grey frames (T, H, W) uint8 as 3-channel MJPG in AVI (EchoNet-Dynamic's container and codec):
    one encoder thread and FFmpeg's bit-exact flags, so the same frames give the same bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="avi", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("mjpeg", rate=Fraction(int(fps), 1))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuvj420p"
        stream.bit_rate = 8_000_000
        stream.codec_context.thread_count = 1
        stream.codec_context.options = {"flags": "+bitexact"}
        stream.codec_context.qmin, stream.codec_context.qmax = 1, 2  # near-lossless: speckle survives
        for grey in frames:
            rgb = np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=-1))
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def split_of(i: int) -> str:
    """EchoNet-Dynamic's proportions (about 75 / 12.5 / 12.5%): six of every eight patients train."""
    return SPLITS[0] if i % 8 < 6 else SPLITS[1] if i % 8 == 6 else SPLITS[2]


def make_echonet(root: str | Path, *, n_clips: int = 120, seed: int = 0, size: int = SIZE) -> Path:
    """Write `root/FileList.csv`, `root/Videos/<FileName>.avi` and `root/FrameVolumes.csv`; return `root`."""
    root = Path(root)
    rows, volumes = [], []
    for i in range(n_clips):
        rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
        heart = draw_heart(rng)
        n = clip_frames(heart)
        vols, beats = volume_curve(n, heart.fps, heart.heart_rate, heart.edv, heart.esv, phase=heart.phase)
        out = render(heart, vols, rng, size=size)
        name = f"0X{seed:04X}{i:012X}"
        write_avi(root / "Videos" / f"{name}.avi", out["frames"], fps=heart.fps)
        rows.append({"FileName": name, "EF": round(heart.ef, 4), "ESV": round(heart.esv, 4), "EDV": round(heart.edv, 4),
                     "FrameHeight": size, "FrameWidth": size, "FPS": heart.fps, "NumberOfFrames": n,
                     "Split": split_of(i)})
        volumes.append(pd.DataFrame({"FileName": name, "Frame": np.arange(n), "Beat": beats,
                                     "Volume": np.round(vols, 4)}))
    pd.DataFrame(rows).to_csv(root / "FileList.csv", index=False)
    pd.concat(volumes).to_csv(root / "FrameVolumes.csv", index=False)
    return root


def ensure_echonet(root: str | Path, *, n_clips: int = 120, seed: int = 0, size: int = SIZE) -> Path:
    """`make_echonet` once under `root` (`medvid_core.cache.ensure`), keyed on every argument."""
    key = dict(generator="echo.make_echonet", version=1, n_clips=n_clips, seed=seed, size=size)
    return ensure(root, key, lambda tmp: make_echonet(tmp, n_clips=n_clips, seed=seed, size=size))
