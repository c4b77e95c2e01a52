"""Transforms, by method: per-clip video augmentation and batch mixing, optical flow as input channels,
CT intensity windowing, volume resampling, rotation and orthogonal views, and removing boxed objects from an
image (blank, the mean of a ring around the box, inpainting from a pixel mask).

Per-clip augmentation treats a 3D scan as video recognition treats a clip (Video4MRI's recipe): one random
resized crop, brightness change and small rotation drawn per clip and applied to every frame, so the
slices stay aligned. CutMix or MixUp then mixes pairs of clips in a batch (the same box across all frames:
spatial CutMix).
"""
from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF


# --------------------------------------------------------------------------- video augmentation and batch mixing
# one draw per clip for all its frames; CutMix / MixUp of pairs of clips into soft targets.

class VideoAugment:
    """Per-clip random resized crop, brightness and rotation on (K, H, W) frames: one draw for all frames,
    so the slices of a clip stay aligned. The defaults are mild: crops keep most of the frame, +-20%
    brightness, +-15 degrees."""

    def __init__(self, *, crop_scale: tuple[float, float] = (0.8, 1.0), brightness: float = 0.2,
                 rotate_degrees: float = 15.0):
        self.crop_scale, self.brightness, self.rotate_degrees = crop_scale, brightness, rotate_degrees

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        _, h, w = frames.shape
        top, left, ch, cw = v2.RandomResizedCrop.get_params(frames, list(self.crop_scale), [3 / 4, 4 / 3])
        frames = TF.resized_crop(frames, top, left, ch, cw, [h, w], antialias=True)
        if self.brightness:
            frames = frames * float(torch.empty(1).uniform_(1 - self.brightness, 1 + self.brightness))
        if self.rotate_degrees:
            angle = float(torch.empty(1).uniform_(-self.rotate_degrees, self.rotate_degrees))
            frames = TF.rotate(frames, angle, interpolation=v2.InterpolationMode.BILINEAR)
        return frames

    def __repr__(self) -> str:
        return (f"VideoAugment(crop_scale={self.crop_scale}, brightness={self.brightness}, "
                f"rotate_degrees={self.rotate_degrees})")


class BatchMix:
    """CutMix with probability `cutmix_p`, else MixUp with `mixup_p`, else no mixing.

    Takes clips (B, C, T, H, W) and integer labels; returns mixed clips and soft targets
    (B, num_classes), which `torch.nn.functional.cross_entropy` accepts directly.
    torchvision's CutMix/MixUp do the mixing; they see the batch as a `Video`. The defaults switch between
    the two with even odds, as DeiT's recipe (timm's `switch_prob=0.5`); a paper's own odds are passed in.
    """

    def __init__(self, *, num_classes: int, cutmix_p: float = 0.5, mixup_p: float = 0.5, alpha: float = 1.0):
        if cutmix_p + mixup_p > 1 + 1e-9:
            raise ValueError(f"cutmix_p + mixup_p must be <= 1, got {cutmix_p} + {mixup_p}")
        self.num_classes, self.cutmix_p, self.mixup_p = num_classes, cutmix_p, mixup_p
        self.cutmix = v2.CutMix(num_classes=num_classes, alpha=alpha)
        self.mixup = v2.MixUp(num_classes=num_classes, alpha=alpha)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = float(torch.rand(1))
        if r < self.cutmix_p + self.mixup_p:
            mix = self.cutmix if r < self.cutmix_p else self.mixup
            video, soft = mix(tv_tensors.Video(x.transpose(1, 2)), y)  # Video is (B, T, C, H, W)
            return video.as_subclass(torch.Tensor).transpose(1, 2).contiguous(), soft
        return x, torch.nn.functional.one_hot(y, self.num_classes).float()


# --------------------------------------------------------------------------- optical flow
# dense optical flow between consecutive frames, stacked as input channels (two-stream networks).

class FlowError(ValueError):
    """Frames that optical flow cannot use; the message says why."""


def farneback_flow(frames, *, pyr_scale: float = 0.5, levels: int = 3, winsize: int = 9, iterations: int = 3,
                   poly_n: int = 5, poly_sigma: float = 1.1):
    """Dense Farneback flow (OpenCV) between consecutive frames: (T, H, W) -> (T-1, 2, H, W) float32.

    Channel 0 is the horizontal displacement (+x to the right), channel 1 the vertical one (+y down), in
    pixels, such that frame[t](y, x) ~ frame[t+1](y + dy, x + dx). Float frames are put on one 0..255 scale
    for the whole clip (so brightness changes between frames stay visible). Defaults: OpenCV's documented
    example values, with a 9-pixel window for small frames.
    """
    import cv2
    import numpy as np

    f = np.asarray(frames)
    if f.ndim != 3 or f.shape[0] < 2:
        raise FlowError(f"farneback_flow: need (T>=2, H, W) grey frames, got shape {f.shape}")
    if f.dtype != np.uint8:
        lo, hi = float(f.min()), float(f.max())
        f = np.round(255 * (f - lo) / (hi - lo if hi > lo else 1.0)).astype(np.uint8)
    flows = [cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, 0)
             for a, b in zip(f[:-1], f[1:])]
    return np.stack(flows).transpose(0, 3, 1, 2).astype(np.float32)


def flow_stack(frames, *, subtract_mean: bool = False, **flow_kwargs):
    """Flow of a clip stacked as input channels, Simonyan & Zisserman's temporal-stream input:
    (T, H, W) -> (2(T-1), H, W) ordered dx_0, dy_0, dx_1, dy_1, ...

    `subtract_mean` removes each field's mean displacement, their simple compensation of camera motion
    (a shaking camera moves every pixel alike)."""
    flow = farneback_flow(frames, **flow_kwargs)
    if subtract_mean:
        flow = flow - flow.mean(axis=(2, 3), keepdims=True)
    return flow.reshape(-1, *flow.shape[2:])


# --------------------------------------------------------------------------- CT intensity windowing
# Hounsfield units -> [0, 1] through one or several (level, width) windows; background removal.

def hu_to_unit(volume, *, low: float = -1000.0, high: float = 400.0):
    """Clip Hounsfield units to [low, high] and scale to [0, 1] (float32).

    The default [-1000, 400] HU keeps air to dense soft tissue, as the ViPTT-Net code (Zunair et al.) does."""
    import numpy as np

    v = np.asarray(volume, dtype=np.float32)
    return (np.clip(v, low, high) - low) / (high - low)


# named (level, width) presets in HU of head CT
CT_WINDOWS = {"brain": (40.0, 80.0), "subdural": (80.0, 200.0), "bone": (600.0, 2800.0)}


def ct_window(hu, level: float, width: float):
    """HU -> [0, 1]: level - width/2 maps to 0, level + width/2 to 1, clipped (numpy or torch)."""
    low = level - width / 2
    out = (hu - low) / width
    return out.clip(0.0, 1.0)


def window_stack(hu, windows=("brain", "subdural", "bone")):
    """(H, W) HU -> (len(windows), H, W) float32 in [0, 1]; `windows` are names of CT_WINDOWS or (level, width).

    The default brain, subdural and bone windows as three channels is the usual input of a head-CT
    classifier (the common recipe of the RSNA Intracranial Hemorrhage challenge's solutions)."""
    import numpy as np

    hu = np.asarray(hu, dtype=np.float32)
    pairs = [CT_WINDOWS[w] if isinstance(w, str) else w for w in windows]
    return np.stack([ct_window(hu, *lw) for lw in pairs]).astype(np.float32)


def remove_background(hu, *, threshold: float = -500.0, air: float = -1000.0):
    """Keep the head only: the largest connected region above `threshold` HU (holes filled); everything
    else (headrest, table, noise, other objects) is set to `air`. Returns a new float32 array."""
    import numpy as np
    from scipy import ndimage

    hu = np.asarray(hu, dtype=np.float32)
    lab, n = ndimage.label(hu > threshold)
    if n == 0:
        return np.full_like(hu, air)
    sizes = ndimage.sum_labels(np.ones_like(hu), lab, index=np.arange(1, n + 1))
    head = ndimage.binary_fill_holes(lab == 1 + int(np.argmax(sizes)))
    return np.where(head, hu, np.float32(air))


# --------------------------------------------------------------------------- volume resampling and rotation
# spline-interpolated zoom (SIZ) to a fixed D x H x W, rotation of every slice, orthogonal views.

def spline_zoom(volume, *, depth: int, height: int, width: int, order: int = 1):
    """Spline-interpolated zoom (SIZ): resample a (d, h, w) volume to (depth, height, width) with
    `scipy.ndimage.zoom` over all three axes at once.

    A volume with fewer slices than `depth` is stretched along z (interpolated), never padded. `order`
    is the spline order: 1 as in ViPTT-Net's code (Zunair et al., after `hu_to_unit`); their earlier
    uniformizing work zoomed depth only with order 3. Output is float32, clipped to the input's range (order > 1
    overshoots at edges).
    """
    import numpy as np
    from scipy import ndimage

    v = np.asarray(volume, dtype=np.float32)
    if v.ndim != 3 or min(v.shape) < 1:
        raise ValueError(f"spline_zoom: need a (d, h, w) volume, got shape {v.shape}")
    target = (depth, height, width)
    out = ndimage.zoom(v, [t / s for t, s in zip(target, v.shape)], order=order, mode="nearest", grid_mode=False)
    if out.shape != target:  # scipy rounds the output size; guard against an off-by-one
        raise ValueError(f"spline_zoom: got {out.shape}, expected {target}")
    return np.clip(out, v.min(), v.max())


def rotate_volume(volume, angle: float, *, order: int = 1):
    """Rotate every axial slice of a (D, H, W) volume by `angle` degrees about its centre (same size;
    `scipy.ndimage.rotate`, edges filled with the nearest value), result clipped to the input's range."""
    import numpy as np
    from scipy import ndimage

    v = np.asarray(volume, dtype=np.float32)
    if angle == 0:
        return v.copy()
    out = ndimage.rotate(v, angle, axes=(1, 2), reshape=False, order=order, mode="nearest")
    return np.clip(out, v.min(), v.max())


class RandomVolumeRotation:
    """Rotate a (D, H, W) volume (numpy or torch) by an angle (degrees) drawn uniformly from `angles`; the
    draw uses torch's global generator, so `seed_everything` fixes it. `angles` is the caller's protocol
    (include 0 to keep some volumes unrotated); there is no default set."""

    def __init__(self, *, angles: tuple[float, ...], order: int = 1):
        self.angles, self.order = tuple(angles), order

    def __call__(self, volume):
        angle = self.angles[int(torch.randint(len(self.angles), (1,)))]
        if isinstance(volume, torch.Tensor):
            return torch.from_numpy(rotate_volume(volume.numpy(), angle, order=self.order))
        return rotate_volume(volume, angle, order=self.order)

    def __repr__(self) -> str:
        return f"RandomVolumeRotation(angles={self.angles}, order={self.order})"


def orthogonal_views(volume, *, center=None):
    """The three orthogonal planes through `center` (default: the middle) of a (D, H, W) cube, as Ciompi
    et al. feed a 2D network: (3, S, S) for a cube of side S, ordered axial (z), coronal (y), sagittal (x)."""
    import numpy as np

    v = np.asarray(volume)
    if v.ndim != 3 or len(set(v.shape)) != 1:
        raise ValueError(f"orthogonal_views: need a cube (S, S, S), got shape {v.shape}")
    z, y, x = center if center is not None else [s // 2 for s in v.shape]
    return np.stack([v[z], v[:, y], v[:, :, x]])


# --------------------------------------------------------------------------- removing boxed objects from images
# blank a box, fill it with the mean of a ring around it, or inpaint a pixel mask (OpenCV). Boxes are
# (x0, y0, x1, y1) in pixels, half-open, as a detector gives them (floats are widened to whole pixels).

def pixel_box(box, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """A box widened to whole pixels (floor the start, ceil the end) and clipped to an (h, w) image."""
    import math

    h, w = shape
    x0, y0, x1, y1 = box
    return (max(0, math.floor(x0)), max(0, math.floor(y0)), min(w, math.ceil(x1)), min(h, math.ceil(y1)))


def boxes_mask(shape: tuple[int, int], boxes) -> "np.ndarray":
    """The (h, w) boolean mask of the union of `boxes`."""
    import numpy as np

    mask = np.zeros(shape, bool)
    for box in boxes:
        x0, y0, x1, y1 = pixel_box(box, shape)
        mask[y0:y1, x0:x1] = True
    return mask


def blank_boxes(image, boxes, *, value: float = 0.0):
    """Every box set to `value` (black by default): the plain blanking whose sharp edges Huschauer's
    Fig. 5c shows. Returns a new array."""
    import numpy as np

    out = np.array(image, copy=True)
    out[boxes_mask(out.shape[:2], boxes)] = value
    return out


def ring_mean_fill(image, boxes, *, ring: int = 4):
    """Each box filled with the mean of the `ring` pixels around it (inside the image, outside every box), as
    Huschauer proposes instead of blanking. A box whose ring holds no pixel gets the image's mean outside
    the boxes (or the whole image's). Returns a new array of the input's dtype."""
    import numpy as np

    img = np.asarray(image)
    out = img.copy()
    covered = boxes_mask(img.shape[:2], boxes)
    h, w = img.shape[:2]
    for box in boxes:
        x0, y0, x1, y1 = pixel_box(box, (h, w))
        if x1 <= x0 or y1 <= y0:
            continue
        ys, xs = slice(max(0, y0 - ring), min(h, y1 + ring)), slice(max(0, x0 - ring), min(w, x1 + ring))
        around = img[ys, xs][~covered[ys, xs]]
        if not around.size:
            around = img[~covered] if (~covered).any() else img
        out[y0:y1, x0:x1] = np.round(around.mean()) if np.issubdtype(img.dtype, np.integer) else around.mean()
    return out


def outlier_mask(image, boxes, *, ring: int = 4, k: float = 3.0, grow: int = 1, min_sigma: float = 0.02):
    """A pixel mask of what stands out inside each box: pixels farther than `k` robust standard deviations
    (1.4826 x the median absolute deviation, at least `min_sigma`) from the median of the box's `ring`,
    grown by `grow` pixels and kept inside the box. Marker letters on a smooth background are found; the
    box's background is not, so an inpainting of this mask leaves the rest of the box as it was. Values
    are taken as they come (a float image in [0, 1] suits the default `min_sigma`)."""
    import cv2
    import numpy as np

    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape[:2]
    covered = boxes_mask((h, w), boxes)
    mask = np.zeros((h, w), bool)
    for box in boxes:
        x0, y0, x1, y1 = pixel_box(box, (h, w))
        if x1 <= x0 or y1 <= y0:
            continue
        ys, xs = slice(max(0, y0 - ring), min(h, y1 + ring)), slice(max(0, x0 - ring), min(w, x1 + ring))
        around = img[ys, xs][~covered[ys, xs]]
        if not around.size:
            mask[y0:y1, x0:x1] = True  # nothing around to compare with: the whole box
            continue
        centre = np.median(around)
        sigma = max(1.4826 * np.median(np.abs(around - centre)), min_sigma)
        inside = np.abs(img[y0:y1, x0:x1] - centre) > k * sigma
        if grow > 0:
            inside = cv2.dilate(inside.astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) > 0
        mask[y0:y1, x0:x1] |= inside
    return mask


def inpaint(image, mask, *, radius: int = 3, method: str = "telea"):
    """The pixels of `mask` filled from their surroundings by OpenCV's inpainting (`cv2.inpaint`: "telea",
    Telea 2004, or "ns", Navier-Stokes); every other pixel is returned unchanged. A float image is taken as
    [0, 1] and inpainted on 8 bits (what `cv2.inpaint` takes); the result keeps the input's dtype."""
    import cv2
    import numpy as np

    flags = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
    if method not in flags:
        raise ValueError(f"inpaint: method must be one of {', '.join(flags)}, got {method!r}")
    img = np.asarray(image)
    m = np.asarray(mask, bool)
    if m.shape != img.shape[:2]:
        raise ValueError(f"inpaint: mask {m.shape} does not match image {img.shape[:2]}")
    out = img.copy()
    if not m.any():
        return out
    u8 = img if img.dtype == np.uint8 else np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    filled = cv2.inpaint(np.ascontiguousarray(u8), m.astype(np.uint8), radius, flags[method])
    out[m] = filled[m] if img.dtype == np.uint8 else (filled[m] / 255.0).astype(img.dtype)
    return out
