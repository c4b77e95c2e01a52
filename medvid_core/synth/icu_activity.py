"""Synthetic ICU room clips from a depth camera: a patient moving between bed and chair, with the activity
of every frame.

Yeung, Salipur et al. (npj Digital Medicine 2019) detected patient mobilisation activities in ICU rooms
from depth sensors on the wall (depth keeps the patient unidentifiable). Each clip here is a long side view
of one room, a bed at one end and a chair at the other. The patient goes through four activities: *get out
of bed*, *get in bed*, *sit in chair*, *get out of chair*. Between them there is no activity: lying,
sitting or standing still, or walking between bed and chair. Getting out of bed and getting into it pass
through the same poses in opposite order; so do sitting down in the chair and getting up from it.

On disk (`make_icu_clips`), one folder per data set:

* `clips/icu_NNN.avi`: 8-bit grey frames in FFV1 (lossless) at 5 fps, read by `medvid_core.io.video.read_video`.
  Brighter is nearer the camera; 0 is a pixel without a depth reading, as depth sensors give.
* `segments.csv`: clip, start, end (frames, end exclusive), label. A clip's segments tile it: no gap,
  no overlap, from frame 0 to its last frame.
* `clips.csv`: clip, path, frames, fps, height, width, bed_side ("left" or "right": rooms are mirrored).

Determinism: every clip draws from its own seeded stream, drawing is element-wise float64 arithmetic
(no BLAS, no float32 powers; see `medvid_core.synth.exact`), angles go through `math.sin`/`math.cos`
(the C library, not NumPy's CPU-dependent vector loops), and the encoder runs single-threaded.
"""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd

from ..cache import ensure

ACTIVITIES = ("none", "get out of bed", "get in bed", "sit in chair", "get out of chair")
FPS = 5  # a depth camera's frame rate is low, and activities last seconds
HEIGHT, WIDTH = 48, 72  # the room is laid out in these pixels (side view, floor at row 44)
FLOOR = 44.0

# Poses (hip x, hip y, torso angle from upright, thigh angle from straight down, shin angle from straight
# down), radians; positive angles point towards the chair's side of the room. The bed is on the left.
LYING = (14.0, 32.0, -np.pi / 2, np.pi / 2, np.pi / 2)
SIT_BED = (24.0, 32.0, 0.0, np.pi / 2, 0.0)
STAND_BED = (32.0, 32.0, 0.0, 0.0, 0.0)
STAND_CHAIR = (48.0, 32.0, 0.0, 0.0, 0.0)
SIT_CHAIR = (57.0, 34.0, 0.2, -np.pi / 2, 0.0)

# Each activity as keyposes at fractions of its duration; "none" segments are rests, stands or walks.
ACTIVITY_POSES = {
    "get out of bed": ((0.0, LYING), (0.6, SIT_BED), (1.0, STAND_BED)),
    "get in bed": ((0.0, STAND_BED), (0.4, SIT_BED), (1.0, LYING)),
    "sit in chair": ((0.0, STAND_CHAIR), (1.0, SIT_CHAIR)),
    "get out of chair": ((0.0, SIT_CHAIR), (1.0, STAND_CHAIR)),
}
DURATIONS = {  # seconds, drawn uniformly
    "get out of bed": (4.0, 7.0), "get in bed": (4.0, 7.0), "sit in chair": (2.5, 4.5),
    "get out of chair": (2.5, 4.5), "rest": (3.0, 10.0), "stand": (1.5, 4.0), "walk": (3.0, 6.0),
}
# where the patient is (a state) -> the activity that leaves it, and where that activity ends
NEXT = {"in bed": ("get out of bed", "by bed"), "by bed": ("get in bed", "in bed"),
        "by chair": ("sit in chair", "in chair"), "in chair": ("get out of chair", "by chair")}
STILL = {"in bed": LYING, "by bed": STAND_BED, "by chair": STAND_CHAIR, "in chair": SIT_CHAIR}


def plan_segments(rng: np.random.Generator, n_frames: int) -> list[dict]:
    """The clip's script: alternating no-activity and activity segments until `n_frames` are covered
    (the last one cut). Each dict: start, end (exclusive), label, kind (the activity, or rest / stand / walk),
    and the pose state before and after."""
    state = "in bed" if rng.random() < 0.5 else "in chair"
    plan, t, first = [], 0, True
    while t < n_frames:
        if state in ("by bed", "by chair") and rng.random() < 0.6:  # walk over to the other place
            kind, after = "walk", "by chair" if state == "by bed" else "by bed"
        else:
            kind, after = ("rest" if state in ("in bed", "in chair") else "stand"), state
        seconds = rng.uniform(*DURATIONS[kind]) * (rng.uniform(0.2, 1.0) if first else 1.0)
        plan.append(dict(label="none", kind=kind, before=state, after=after, frames=max(1, round(seconds * FPS))))
        state, first = after, False
        activity, after = NEXT[state]
        plan.append(dict(label=activity, kind=activity, before=state, after=after,
                         frames=max(2, round(rng.uniform(*DURATIONS[activity]) * FPS))))
        state = after
        t = sum(p["frames"] for p in plan)
    out, start = [], 0
    for p in plan:
        end = min(start + p.pop("frames"), n_frames)
        if end > start:
            out.append(dict(start=start, end=end, **p))
        start = end
    return out


def _smooth(u: float) -> float:
    return u * u * (3 - 2 * u)


def pose_at(segment: dict, u: float, step_hz: float) -> tuple[tuple[float, ...], float]:
    """(pose, leg swing) at fraction `u` in [0, 1] of `segment`'s duration."""
    kind = segment["kind"]
    if kind in ACTIVITY_POSES:
        keys = ACTIVITY_POSES[kind]
        for (u0, p0), (u1, p1) in zip(keys, keys[1:]):
            if u <= u1:
                w = _smooth((u - u0) / (u1 - u0))
                return tuple(a + w * (b - a) for a, b in zip(p0, p1)), 0.0
    if kind == "walk":
        p0, p1 = STILL[segment["before"]], STILL[segment["after"]]
        frames = segment["end"] - segment["start"]
        swing = 0.35 * math.sin(2 * np.pi * step_hz * u * frames / FPS)
        return tuple(a + u * (b - a) for a, b in zip(p0, p1)), swing
    return STILL[segment["before"]], 0.0


def _capsule(canvas: np.ndarray, p0, p1, radius: float, value: float) -> None:
    """Paint a thick segment at depth `value` (nearer wins), inside its bounding box only."""
    h, w = canvas.shape
    (x0, y0), (x1, y1) = p0, p1
    xa, xb = max(0, int(np.floor(min(x0, x1) - radius))), min(w, int(np.ceil(max(x0, x1) + radius)) + 1)
    ya, yb = max(0, int(np.floor(min(y0, y1) - radius))), min(h, int(np.ceil(max(y0, y1) + radius)) + 1)
    if xa >= xb or ya >= yb:
        return
    yy, xx = np.mgrid[ya:yb, xa:xb].astype(np.float64)
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (dx * dx + dy * dy + 1e-9), 0.0, 1.0)
    ex, ey = xx - (x0 + t * dx), yy - (y0 + t * dy)
    inside = np.sqrt(ex * ex + ey * ey) <= radius
    region = canvas[ya:yb, xa:xb]
    region[inside] = np.maximum(region[inside], value)


def _patient(canvas: np.ndarray, pose, swing: float, scale: float, value: float, breath: float) -> None:
    hx, hy, a, b, c = pose
    hy = hy + (1 - scale) * 12.0 + breath  # a smaller patient stands lower
    torso, limb = 8.0 * scale, 6.0 * scale
    neck = (hx + math.sin(a) * torso, hy - math.cos(a) * torso)
    head = (neck[0] + math.sin(a) * 2.4 * scale, neck[1] - math.cos(a) * 2.4 * scale)
    _capsule(canvas, (hx, hy), neck, 2.4 * scale, value)
    _capsule(canvas, head, head, 2.3 * scale, value + 4)
    _capsule(canvas, (neck[0] * 0.7 + hx * 0.3, neck[1] * 0.7 + hy * 0.3),
             (hx + math.sin(a + 0.3) * 5 * scale, hy - math.cos(a + 0.3) * 3 * scale), 1.1 * scale, value + 6)  # an arm
    for side in (1.0, -1.0):
        bb, cc = b + side * swing, c + side * swing * 0.6
        knee = (hx + math.sin(bb) * limb, hy + math.cos(bb) * limb)
        foot = (knee[0] + math.sin(cc) * limb, knee[1] + math.cos(cc) * limb)
        _capsule(canvas, (hx, hy), knee, 1.7 * scale, value - 2 * side)
        _capsule(canvas, knee, foot, 1.4 * scale, value - 2 * side)


def _room(rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The static scene (wall, floor, bed, chair) as nearness, and the clip's look."""
    look = dict(patient=rng.uniform(165, 200), scale=rng.uniform(0.9, 1.1), noise=rng.uniform(1.5, 4.0),
                holes=rng.uniform(0.003, 0.02), step_hz=rng.uniform(0.8, 1.3), breath_hz=rng.uniform(0.2, 0.4),
                bed_side="left" if rng.random() < 0.5 else "right")
    wall, bed, chair = rng.uniform(30, 60), rng.uniform(105, 135), rng.uniform(95, 125)
    yy = np.arange(HEIGHT, dtype=np.float64)[:, None] + np.zeros((1, WIDTH))
    scene = np.where(yy < FLOOR, wall, wall + 25 + (yy - FLOOR) * 12)  # the floor nears the camera downwards
    scene[34:38, 1:28] = bed  # mattress
    scene[38:int(FLOOR), 3:5] = bed - 10  # bed legs
    scene[38:int(FLOOR), 24:26] = bed - 10
    scene[24:38, 0:2] = bed - 5  # headboard
    scene[36:38, 50:63] = chair  # seat
    scene[23:38, 62:65] = chair - 5  # backrest
    scene[38:int(FLOOR), 51:53] = chair - 10
    scene[38:int(FLOOR), 60:62] = chair - 10
    return scene, look


def render_icu_clip(seed: int, *, seconds: float = 60.0) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """One clip in memory: uint8 frames (T, HEIGHT, WIDTH), its segments (start, end, label, kind) and
    its look (bed_side, ...). Deterministic in (seed, seconds)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7001]))
    n = int(round(seconds * FPS))
    if n < 1:
        raise ValueError(f"render_icu_clip: need at least one frame, got seconds={seconds}")
    scene, look = _room(rng)
    plan = plan_segments(rng, n)
    frames = np.empty((n, HEIGHT, WIDTH), np.uint8)
    for seg in plan:
        for i in range(seg["start"], seg["end"]):
            u = (i - seg["start"] + 0.5) / (seg["end"] - seg["start"])
            pose, swing = pose_at(seg, u, look["step_hz"])
            canvas = scene.copy()
            breath = 0.3 * math.sin(2 * np.pi * look["breath_hz"] * i / FPS)
            _patient(canvas, pose, swing, look["scale"], look["patient"], breath)
            canvas += rng.normal(0.0, look["noise"], canvas.shape)
            canvas[rng.random(canvas.shape) < look["holes"]] = 0.0  # no reading
            frame = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
            frames[i] = frame[:, ::-1] if look["bed_side"] == "right" else frame
    segments = pd.DataFrame([{k: s[k] for k in ("start", "end", "label", "kind")} for s in plan])
    return frames, segments, look


def write_grey_avi(path: str | Path, frames: np.ndarray, *, fps: int = FPS) -> None:
    """Encode uint8 grey frames (T, H, W) losslessly (FFV1 in AVI), one thread: the same bytes every run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="avi") as container:
        stream = container.add_stream("ffv1", rate=Fraction(fps, 1))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "gray"
        stream.codec_context.thread_count = 1
        stream.codec_context.options = {"flags": "+bitexact"}
        for grey in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(grey), format="gray")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_icu_clips(root: str | Path, *, n_clips: int, seconds: float = 60.0, seed: int = 0) -> Path:
    """Write `n_clips` clips under `root/clips/`, `root/segments.csv` and `root/clips.csv`; returns `root`."""
    root = Path(root)
    rows, segs = [], []
    for k in range(n_clips):
        frames, segments, look = render_icu_clip(seed * 100_000 + k, seconds=seconds)
        name = f"icu_{k:03d}"
        write_grey_avi(root / "clips" / f"{name}.avi", frames)
        rows.append(dict(clip=name, path=f"clips/{name}.avi", frames=len(frames), fps=FPS, height=HEIGHT,
                         width=WIDTH, bed_side=look["bed_side"]))
        segs.append(segments[["start", "end", "label"]].assign(clip=name))
    pd.DataFrame(rows).to_csv(root / "clips.csv", index=False)
    pd.concat(segs)[["clip", "start", "end", "label"]].to_csv(root / "segments.csv", index=False)
    return root


def ensure_icu_clips(root: str | Path, *, n_clips: int, seconds: float = 60.0, seed: int = 0) -> Path:
    """Generate the clips on first use (`medvid_core.cache.ensure`) and reuse them while `root` holds the
    same (n_clips, seconds, seed). Returns `root`."""
    key = dict(generator="icu_activity", version=1, n_clips=n_clips, seconds=seconds, seed=seed)
    return ensure(root, key, lambda tmp: make_icu_clips(tmp, n_clips=n_clips, seconds=seconds, seed=seed))


def frame_labels(segments: pd.DataFrame, n_frames: int) -> np.ndarray:
    """One clip's segments (start, end, label) -> the activity index (into ACTIVITIES) of every frame."""
    y = np.full(n_frames, -1, np.int64)
    for s in segments.itertuples():
        y[s.start : s.end] = ACTIVITIES.index(s.label)
    if (y < 0).any():
        raise ValueError(f"frame_labels: frames {np.flatnonzero(y < 0)[:5].tolist()}... have no segment")
    return y
