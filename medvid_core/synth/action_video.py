"""Synthetic action videos shaped like a UCF50 subset: real AVI files, one folder per class.

UCF50 (Reddy & Shah 2013) ships `UCF50/<Class>/v_<Class>_gNN_cNN.avi`: 320x240 colour clips
at 25 fps, MPEG-4 (DivX/XviD) in AVI, grouped (gNN: clips cut from one long video share
actor and background) and numbered (cNN). This generator writes the same tree with PyAV.

Each class is a small scene whose *motion* is what tells it apart: a rotating object
(Mixing), one arm swinging through an arc (TennisSwing), a large figure translating with
a bounce (HorseRiding), a hopping figure inside a rotating rope (JumpRope), limbs opening
and closing together (JumpingJack), a wind-up and throw with a ball leaving the hand
(BaseballPitch), oars sweeping back and forth (Rowing), a figure gliding on a board
(SkateBoarding), a walker with alternating legs and a dog beside (WalkingWithDog), a small
craft weaving fast across water (Skijet). Background (horizon, colours, texture), actor
size, colour, position, speed and phase vary per group and clip; every frame gets camera
jitter and sensor noise, and clips vary in length.

`render_clip(action, seed=..., frames=..., height=..., width=...)` returns the frames in
memory (uint8, (T, H, W, 3)), for code that needs clips without files.

Determinism: every clip draws from its own seeded stream, so decoded frames depend only on
(preset, seed); the MPEG-4 encoder runs single-threaded and the files were checked
byte-identical across runs on this PyAV/FFmpeg build (tests/test_synth_action_video.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
from scipy import ndimage

from ..cache import ensure

# The ten UCF50 classes the ViPTT-Net authors pretrained on, spelt as UCF50's folders are.
ACTIONS = ("Mixing", "TennisSwing", "HorseRiding", "JumpRope", "JumpingJack", "BaseballPitch", "Rowing",
           "SkateBoarding", "WalkingWithDog", "Skijet")
FPS = 25  # UCF50's frame rate
WIDTH, HEIGHT = 320, 240  # UCF50's frame size


@dataclass(frozen=True)
class Preset:
    """Tree shape: groups per class, clips per group, clip length range in frames (inclusive)."""

    groups: int
    clips_per_group: tuple[int, int]  # min, max clips cut from one group's video
    frames: tuple[int, int]
    width: int = WIDTH
    height: int = HEIGHT


PRESETS = {
    # laptop default: 10 classes x 8 clips of 20-40 frames (those shorter than the kept depth get dropped)
    "small": Preset(groups=4, clips_per_group=(2, 2), frames=(20, 40)),
    # the paper's subset: 1366 clips over 10 classes (UCF50 has 25 groups of 4-7 clips per class);
    # lengths as UCF50's (about 2-10 s), some under the 70 frames the authors keep, so dropped
    "paper": Preset(groups=25, clips_per_group=(5, 6), frames=(60, 250)),
}


# ---------------------------------------------------------------- drawing (numpy, anti-aliased)
def _capsule(canvas: np.ndarray, p0, p1, radius: float, color) -> None:
    """Paint a thick line segment (a limb) with soft edges, inside its bounding box only."""
    h, w, _ = canvas.shape
    x0, y0 = p0
    x1, y1 = p1
    pad = radius + 2
    xa, xb = int(max(0, np.floor(min(x0, x1) - pad))), int(min(w, np.ceil(max(x0, x1) + pad)))
    ya, yb = int(max(0, np.floor(min(y0, y1) - pad))), int(min(h, np.ceil(max(y0, y1) + pad)))
    if xa >= xb or ya >= yb:
        return
    yy, xx = np.mgrid[ya:yb, xa:xb].astype(np.float32)
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (dx * dx + dy * dy + 1e-6), 0, 1)
    d = np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy))
    alpha = np.clip(radius - d + 0.5, 0, 1)[..., None]
    region = canvas[ya:yb, xa:xb]
    region += alpha * (np.asarray(color, np.float32) - region)


def _ellipse(canvas: np.ndarray, centre, rx: float, ry: float, color, angle: float = 0.0) -> None:
    """Paint a filled, rotated ellipse with soft edges."""
    h, w, _ = canvas.shape
    cx, cy = centre
    r = max(rx, ry) + 2
    xa, xb = int(max(0, np.floor(cx - r))), int(min(w, np.ceil(cx + r)))
    ya, yb = int(max(0, np.floor(cy - r))), int(min(h, np.ceil(cy + r)))
    if xa >= xb or ya >= yb:
        return
    yy, xx = np.mgrid[ya:yb, xa:xb].astype(np.float32)
    c, s = np.cos(angle), np.sin(angle)
    u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
    rho = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
    alpha = np.clip((1 - rho) * min(rx, ry) + 0.5, 0, 1)[..., None]
    region = canvas[ya:yb, xa:xb]
    region += alpha * (np.asarray(color, np.float32) - region)


def _figure(canvas, hip, scale, color, *, arms, legs, lean=0.0) -> None:
    """A stick figure: hip point, limb angles (radians from straight down) for (left, right) arms/legs."""
    hx, hy = hip
    torso = 34 * scale
    neck = (hx + np.sin(lean) * torso, hy - np.cos(lean) * torso)
    shoulder = (hx + np.sin(lean) * torso * 0.85, hy - np.cos(lean) * torso * 0.85)
    limb = 4.5 * scale
    _capsule(canvas, hip, neck, 5.5 * scale, color)
    _ellipse(canvas, (neck[0], neck[1] - 9 * scale), 8 * scale, 9 * scale, color)
    for a in legs:
        knee = (hx + np.sin(a) * 20 * scale, hy + np.cos(a) * 20 * scale)
        foot = (knee[0] + np.sin(a * 0.6) * 19 * scale, knee[1] + np.cos(a * 0.6) * 19 * scale)
        _capsule(canvas, hip, knee, limb, color)
        _capsule(canvas, knee, foot, limb * 0.9, color)
    for a in arms:
        elbow = (shoulder[0] + np.sin(a) * 16 * scale, shoulder[1] + np.cos(a) * 16 * scale)
        hand = (elbow[0] + np.sin(a) * 15 * scale, elbow[1] + np.cos(a) * 15 * scale)
        _capsule(canvas, shoulder, elbow, limb * 0.85, color)
        _capsule(canvas, elbow, hand, limb * 0.75, color)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Sky/ground split at a random horizon, random tints, blurred texture and a few props."""
    sky, ground = rng.uniform(40, 230, 3), rng.uniform(30, 200, 3)
    horizon = rng.uniform(0.3, 0.7) * h
    yy = np.arange(h, dtype=np.float32)[:, None, None]
    mix = np.clip((yy - horizon) / 6 + 0.5, 0, 1)
    bg = (1 - mix) * sky + mix * ground + np.zeros((h, w, 3), np.float32)
    texture = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), rng.uniform(1.5, 5))
    bg += (texture / (texture.std() + 1e-6) * rng.uniform(4, 14))[..., None]
    for _ in range(int(rng.integers(2, 6))):  # trees, posts, buildings: static clutter
        x, top = rng.uniform(0, w), rng.uniform(0.1, 0.6) * h
        bw = rng.uniform(6, 30)
        bg[int(top) : int(horizon) + 5, int(max(0, x - bw)) : int(min(w, x + bw))] = rng.uniform(20, 220, 3)
    return bg.astype(np.float32)


@dataclass
class _Look:
    """What one group (one source video) fixes: actor colour, size, place, tempo, direction."""

    color: np.ndarray
    prop: np.ndarray
    scale: float
    x: float
    y: float
    speed: float  # cycles per second of the action's main motion
    direction: float  # +1 / -1: which way the actor faces or travels
    phase: float


def _look(rng: np.random.Generator, h: int, w: int) -> _Look:
    return _Look(color=rng.uniform(0, 255, 3), prop=rng.uniform(0, 255, 3), scale=rng.uniform(0.8, 1.25) * h / 240,
                 x=rng.uniform(0.35, 0.65) * w, y=rng.uniform(0.55, 0.7) * h, speed=rng.uniform(0.7, 1.4),
                 direction=float(rng.choice([-1.0, 1.0])), phase=rng.uniform(0, 2 * np.pi))


def _wrap(x: float, w: int, margin: float = 90.0) -> float:
    """A travelling actor leaves one side of the frame and comes back in on the other."""
    return (x + margin) % (w + 2 * margin) - margin


def _draw(action: str, canvas: np.ndarray, t: float, lk: _Look) -> None:
    """Paint the actor of `action` at time `t` seconds onto the (padded) canvas."""
    w = canvas.shape[1]
    s, d, x, y = lk.scale, lk.direction, lk.x, lk.y
    ph = 2 * np.pi * lk.speed * t + lk.phase
    down = 0.15
    if action == "Mixing":  # a bowl and a whisk circling inside it
        _ellipse(canvas, (x, y + 10 * s), 55 * s, 24 * s, lk.prop)
        tip = (x + 32 * s * np.cos(2 * ph), y + 8 * s + 10 * s * np.sin(2 * ph))
        _capsule(canvas, (x + 10 * s * np.cos(2 * ph), y - 70 * s), tip, 4 * s, lk.color)
        _ellipse(canvas, tip, 9 * s, 6 * s, lk.color, angle=2 * ph)
    elif action == "TennisSwing":  # one arm sweeps a racket through a wide arc, then recovers
        swing = np.sin(ph) * 1.6 * d
        _figure(canvas, (x, y), s, lk.color, arms=(-0.3 * d, swing + 1.3 * d), legs=(-0.25, 0.25))
        shoulder = (x, y - 29 * s)
        a = swing + 1.3 * d
        hand = (shoulder[0] + np.sin(a) * 31 * s, shoulder[1] + np.cos(a) * 31 * s)
        head = (hand[0] + np.sin(a) * 22 * s, hand[1] + np.cos(a) * 22 * s)
        _capsule(canvas, hand, head, 2.5 * s, lk.prop)
        _ellipse(canvas, head, 9 * s, 12 * s, lk.prop, angle=a)
    elif action == "HorseRiding":  # a big body galloping across the frame, rider bobbing
        hx = _wrap(x + d * (60 * t * lk.speed - 60) * s, w)
        bob = 6 * s * np.abs(np.sin(2 * ph))
        _ellipse(canvas, (hx, y - bob), 48 * s, 20 * s, lk.prop)
        _capsule(canvas, (hx + d * 40 * s, y - 8 * s - bob), (hx + d * 60 * s, y - 35 * s - bob), 9 * s, lk.prop)
        for k, off in enumerate((-30, -18, 18, 30)):
            a = 0.5 * np.sin(2 * ph + k * np.pi / 2)
            _capsule(canvas, (hx + off * s, y + 10 * s - bob), (hx + off * s + 30 * s * np.sin(a),
                     y + 10 * s + 30 * s * np.cos(a)), 4 * s, lk.prop)
        _figure(canvas, (hx, y - 22 * s - bob), 0.7 * s, lk.color, arms=(0.8 * d, 0.9 * d), legs=(0.9, -0.9))
    elif action == "JumpRope":  # hops twice per rope turn; the rope loops over and under
        hop = 14 * s * np.abs(np.sin(2 * ph))
        _figure(canvas, (x, y - hop), s, lk.color, arms=(-0.5, 0.5), legs=(-down, down))
        rope_y = y - hop - 15 * s + 55 * s * np.cos(ph)
        for side in (-1, 1):
            _capsule(canvas, (x + side * 24 * s, y - hop - 12 * s), (x + side * 12 * s, rope_y), 1.8 * s, lk.prop)
        _capsule(canvas, (x - 12 * s, rope_y), (x + 12 * s, rope_y), 1.8 * s, lk.prop)
    elif action == "JumpingJack":  # arms and legs open and close together, with a small hop
        opening = 0.5 - 0.5 * np.cos(ph)
        arm, leg = 0.3 + 2.4 * opening, down + 0.35 * opening
        hop = 8 * s * np.abs(np.sin(ph))
        _figure(canvas, (x, y - hop), s, lk.color, arms=(-arm, arm), legs=(-leg, leg))
    elif action == "BaseballPitch":  # one wind-up and throw per clip; the ball flies off afterwards
        prog = (t * lk.speed * 0.8 + lk.phase / (2 * np.pi) * 0.3) % 1.6
        throw = np.clip(prog / 0.8, 0, 1)
        a = d * (-0.4 + 3.6 * throw ** 2)
        knee = d * 0.9 * np.sin(np.pi * min(prog / 0.5, 1))
        _figure(canvas, (x - d * 20 * s * throw, y), s, lk.color, arms=(a, -0.6 * d),
                legs=(-0.2 + 0.8 * max(knee, 0), 0.2), lean=0.3 * d * throw)
        if prog > 0.8:
            fly = (prog - 0.8) * 400 * s
            _ellipse(canvas, (x - d * (20 * s + fly), y - 45 * s + 0.05 * fly), 4 * s, 4 * s, (250, 250, 250))
    elif action == "Rowing":  # a long hull; oars sweep, rower leans forward and back
        stroke = np.sin(ph)
        _ellipse(canvas, (x, y + 12 * s), 80 * s, 10 * s, lk.prop)
        _figure(canvas, (x, y), 0.8 * s, lk.color, arms=(1.3 * d + 0.4 * stroke, 1.3 * d + 0.4 * stroke),
                legs=(1.4 * d, 1.3 * d), lean=0.4 * stroke * d)
        for side in (-1, 1):
            tip = (x + d * 50 * s * stroke, y + 25 * s + side * 6 * s)
            _capsule(canvas, (x - d * 10 * s * stroke, y - 10 * s), tip, 2.5 * s, lk.prop)
    elif action == "SkateBoarding":  # a crouched figure glides steadily, occasionally ollies
        gx = _wrap(x + d * (90 * t * lk.speed - 80) * s, w)
        jump = 18 * s * max(0.0, np.sin(ph * 0.7)) ** 4
        _capsule(canvas, (gx - 22 * s, y + 38 * s - jump), (gx + 22 * s, y + 38 * s - jump), 3.5 * s, lk.prop)
        _figure(canvas, (gx, y - jump), s, lk.color, arms=(-1.2, 1.2), legs=(-0.35, 0.35), lean=0.15 * d)
    elif action == "WalkingWithDog":  # slow walk, legs alternate; a dog trots ahead on a lead
        wx = _wrap(x + d * (35 * t * lk.speed - 40) * s, w)
        stride = 0.45 * np.sin(ph * 1.5)
        _figure(canvas, (wx, y), s, lk.color, arms=(-stride * 0.6, stride * 0.6 + 0.3 * d), legs=(stride, -stride))
        dog = (wx + d * 55 * s, y + 28 * s)
        _ellipse(canvas, dog, 18 * s, 8 * s, lk.prop)
        _ellipse(canvas, (dog[0] + d * 18 * s, dog[1] - 8 * s), 7 * s, 6 * s, lk.prop)
        for k in (-1, 1):
            a = 0.5 * np.sin(3 * ph + k)
            _capsule(canvas, (dog[0] + k * 10 * s, dog[1]), (dog[0] + k * 10 * s + 10 * s * np.sin(a),
                     dog[1] + 12 * s), 2.5 * s, lk.prop)
        _capsule(canvas, (wx + d * 25 * s, y - 15 * s), (dog[0] + d * 15 * s, dog[1] - 8 * s), 1.2 * s, (30, 30, 30))
    elif action == "Skijet":  # a small craft weaving fast along a sine path, spray behind
        jx = _wrap(x + d * (160 * t * lk.speed - 120) * s, w)
        jy = y + 25 * s * np.sin(ph * 1.3)
        heading = np.arctan2(25 * s * 1.3 * 2 * np.pi * lk.speed * np.cos(ph * 1.3), d * 160 * lk.speed * s)
        _ellipse(canvas, (jx, jy), 26 * s, 8 * s, lk.prop, angle=heading)
        _figure(canvas, (jx, jy - 10 * s), 0.55 * s, lk.color, arms=(1.2 * d, 1.4 * d), legs=(0.6, -0.4))
        for k in range(4):
            _ellipse(canvas, (jx - d * (30 + 9 * k) * s, jy + 2 * s), (7 - k) * s, (4 - 0.7 * k) * s, (235, 240, 245))
    else:
        raise ValueError(f"unknown action {action!r}; choose from: {', '.join(ACTIONS)}")


def _render(action: str, rng: np.random.Generator, frames: int, height: int, width: int,
            look: _Look | None = None, background: np.ndarray | None = None) -> np.ndarray:
    """Frames of one clip drawn on a padded canvas, then cropped with camera jitter, plus noise."""
    pad = max(4, int(round(0.04 * max(height, width))))  # room for camera shake
    if look is None:
        look = _look(rng, height, width)
    if background is None:
        background = _background(rng, height + 2 * pad, width + 2 * pad)
    # the canvas origin is the padded frame's corner: shift the actor by pad
    look = _Look(**{**look.__dict__, "x": look.x + pad, "y": look.y + pad})
    t0 = rng.uniform(0, 1.0)  # where in the action this clip starts
    drift = np.cumsum(rng.normal(0, 0.6, (frames, 2)), axis=0)  # hand-held camera: a random walk...
    drift = np.clip(drift + rng.normal(0, 0.8, (frames, 2)), -pad, pad)  # ...plus shake, within the pad
    gain = rng.uniform(0.85, 1.15)
    noise = rng.uniform(2, 8)
    out = np.empty((frames, height, width, 3), np.uint8)
    for i in range(frames):
        canvas = background.copy()
        _draw(action, canvas, t0 + i / FPS, look)
        dy, dx = int(round(pad + drift[i, 0])), int(round(pad + drift[i, 1]))
        frame = canvas[dy : dy + height, dx : dx + width] * gain + rng.normal(0, noise, (height, width, 1))
        out[i] = np.clip(frame, 0, 255).astype(np.uint8)
    return out


def render_clip(action: str, *, seed: int, frames: int = 70, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """One synthetic clip of `action` in memory: uint8 RGB frames shaped (frames, height, width, 3).

    Deterministic in (action, seed, frames, height, width). No file is written.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; choose from: {', '.join(ACTIONS)}")
    if frames < 1 or height < 16 or width < 16:
        raise ValueError(f"render_clip: need frames >= 1 and height, width >= 16, got {frames}x{height}x{width}")
    stream = np.random.SeedSequence([seed, ACTIONS.index(action)])
    return _render(action, np.random.default_rng(stream), frames, height, width)


def write_avi(path: str | Path, frames: np.ndarray, *, fps: int = FPS, bit_rate: int = 800_000) -> None:
    """Encode RGB uint8 frames (T, H, W, 3) as MPEG-4 Part 2 in AVI, UCF50's container and codec."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(fps, 1))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bit_rate
        stream.codec_context.thread_count = 1  # one thread: the same bytes on every run
        stream.codec_context.options = {"flags": "+bitexact"}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_group(root: Path, cfg: Preset, action: str, group: int, stream: np.random.SeedSequence) -> list[dict]:
    """Every clip of one group: one actor look and one background, different cuts and lengths."""
    rng = np.random.default_rng(stream)
    h, w = cfg.height, cfg.width
    pad = max(4, int(round(0.04 * max(h, w))))
    look, background = _look(rng, h, w), _background(rng, h + 2 * pad, w + 2 * pad)
    rows = []
    n_clips = int(rng.integers(cfg.clips_per_group[0], cfg.clips_per_group[1] + 1))
    for clip in range(1, n_clips + 1):
        n = int(rng.integers(cfg.frames[0], cfg.frames[1] + 1))
        frames = _render(action, rng, n, h, w, look=look, background=background)
        rel = f"UCF50/{action}/v_{action}_g{group:02d}_c{clip:02d}.avi"
        write_avi(root / rel, frames)
        rows.append(dict(path=rel, label=action, group=group, clip=clip, frames=n))
    return rows


def make_action_videos(root: str | Path, preset: str = "small", *, seed: int = 0) -> Path:
    """Write the UCF50-shaped tree `root/UCF50/<Class>/*.avi` and `root/clips.csv` (ground truth).

    Returns the `UCF50` folder. The CSV (path relative to `root`, label, group, clip, frames)
    is what the generator knows; readers of a real UCF50 folder list the tree instead.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown video preset {preset!r}; choose from: {', '.join(PRESETS)}")
    cfg, root = PRESETS[preset], Path(root)
    streams = np.random.SeedSequence(seed).spawn(len(ACTIONS) * cfg.groups)
    rows = []
    for a, action in enumerate(ACTIONS):
        for g in range(cfg.groups):
            rows += _write_group(root, cfg, action, g + 1, streams[a * cfg.groups + g])
    pd.DataFrame(rows).to_csv(root / "clips.csv", index=False)
    return root / "UCF50"


def ensure_action_videos(root: str | Path, preset: str = "small", *, seed: int = 0) -> Path:
    """Generate the tree on first use (`medvid_core.cache.ensure`); reuse it while `root` holds this
    preset (its values, not just its name) and seed. Returns `root/UCF50`."""
    if preset not in PRESETS:
        raise ValueError(f"unknown video preset {preset!r}; choose from: {', '.join(PRESETS)}")
    key = dict(generator="action_video", version=1, preset=preset, values=asdict(PRESETS[preset]), seed=seed)
    return ensure(root, key, lambda tmp: make_action_videos(tmp, preset, seed=seed)) / "UCF50"
