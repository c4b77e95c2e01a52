"""Real anatomy for the synthetic cohorts: nilearn's packaged MNI152 2009 template (no download).

The T1 template's brain mask and its grey/white-matter probability maps, resampled to `mm`, plus
what the generators derive from them: the intracranial space (brain with its sulci and outer CSF
closed over), the signed distance to its inner table, and the lateral ventricles. `sample` reads
any stack of such maps at warped template points, so each generator draws its subjects as smooth
deformations of one real brain. Used by the head-CT (RSNA-like) and brain-MRI (Video4MRI-like)
generators.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass
class Template:
    """MNI152 maps at `mm` resolution plus what the warp needs to sample them."""

    maps: np.ndarray  # (4, X, Y, Z) float32: grey matter, white matter, signed distance to inner table (mm, + inside), ventricles
    origin: np.ndarray  # MNI mm of voxel (0, 0, 0)
    mm: float
    ventricle_points: np.ndarray  # (n, 3) MNI mm inside the ventricles
    parenchyma_points: np.ndarray  # (n, 3) MNI mm deep in the parenchyma
    cortex_points: np.ndarray  # (n, 3) MNI mm near the surface, under the sulci


@functools.lru_cache(maxsize=2)
def template(mm: float = 1.5) -> Template:
    """Real anatomy from nilearn's packaged MNI152 2009 template (no download)."""
    from nilearn import datasets

    t1 = datasets.load_mni152_template(resolution=1)
    gm = datasets.load_mni152_gm_template(resolution=1).get_fdata(dtype=np.float32)
    wm = datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32)
    brain = t1.get_fdata(dtype=np.float32) > 0.01
    origin = t1.affine[:3, 3].astype(float)
    if mm != 1.0:
        f = 1.0 / mm
        gm, wm = ndimage.zoom(gm, f, order=1), ndimage.zoom(wm, f, order=1)
        brain = ndimage.zoom(brain.astype(np.float32), f, order=1) > 0.5
    # intracranial space: the skull-stripped brain with its sulci and outer CSF closed over
    r = max(2, int(round(5 / mm)))
    ball = np.linalg.norm(np.mgrid[-r:r + 1, -r:r + 1, -r:r + 1], axis=0) <= r
    pad = r + 1
    ic = ndimage.binary_closing(np.pad(brain, pad), ball)[pad:-pad, pad:-pad, pad:-pad]
    ic = ndimage.binary_fill_holes(ndimage.binary_dilation(ic, iterations=max(1, int(round(1.5 / mm)))))
    dist = (ndimage.distance_transform_edt(ic) - ndimage.distance_transform_edt(~ic)) * mm
    csf = ic & (gm + wm < 0.4)
    ventricles = csf & (dist > 22) & (np.abs(_mm_axis(origin, mm, gm.shape, 0)) < 30)
    lab, n = ndimage.label(ventricles)
    if n:  # keep the big connected pieces (lateral ventricles), drop small deep CSF specks
        sizes = ndimage.sum(ventricles, lab, range(1, n + 1))
        ventricles = np.isin(lab, 1 + np.flatnonzero(sizes >= 0.1 * sizes.max()))
    maps = np.stack([gm, wm, dist.astype(np.float32), ventricles.astype(np.float32)])
    grid = lambda m: origin + np.argwhere(m) * mm  # noqa: E731
    sulcal = csf & ~ventricles & (dist > 3) & (dist < 25)
    deep = (gm + wm > 0.9) & (dist > 20)
    return Template(maps=maps, origin=origin, mm=mm, ventricle_points=grid(ventricles)[::7],
                    parenchyma_points=grid(deep)[::50], cortex_points=grid(sulcal)[::20])


def _mm_axis(origin, mm, shape, axis) -> np.ndarray:
    """MNI coordinate along `axis`, broadcastable to a volume of `shape`."""
    view = [1, 1, 1]
    view[axis] = shape[axis]
    return (origin[axis] + np.arange(shape[axis]) * mm).reshape(view)


def axis_rotations(ax: float, ay: float, az: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rotations by `ax`, `ay`, `az` radians about x, y and z; each generator composes its head pose from them."""
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rx, ry, rz


def sample(maps: np.ndarray, origin: np.ndarray, mm: float, pts: np.ndarray, cval: tuple[float, ...]) -> np.ndarray:
    """Maps (k, X, Y, Z) at MNI points (..., 3) -> (k, ...), trilinear; outside the grid each map reads its `cval`."""
    idx = ((pts - origin) / mm).reshape(-1, 3).T
    out = np.empty((len(maps), idx.shape[1]), np.float32)
    for k in range(len(maps)):
        out[k] = ndimage.map_coordinates(maps[k], idx, order=1, cval=cval[k], prefilter=False)
    return out.reshape(len(maps), *pts.shape[:-1])


def sample_template(tpl: Template, pts: np.ndarray) -> np.ndarray:
    """The template's four maps at MNI points (..., 3) -> (4, ...); outside: no head."""
    return sample(tpl.maps, tpl.origin, tpl.mm, pts, (0.0, 0.0, -100.0, 0.0))


def sample_stack(stack: np.ndarray, origin: np.ndarray, mm: float, pts: np.ndarray, cval: np.ndarray,
                 *, skip: tuple[int, float] | None = None) -> np.ndarray:
    """Channels-last maps (X, Y, Z, k) at points (..., 3) -> (..., k), trilinear, `cval` (k,) outside.

    One gather of all k channels per cube corner: several times faster than `sample` (one
    `map_coordinates` pass per map) when a generator reads many maps at a million points.
    `skip=(channel, below)`: points whose nearest voxel has that channel under `below` (e.g. far
    outside the head) read `cval` without interpolating.
    """
    f = (pts.reshape(-1, 3) - origin.astype(np.float32)) / np.float32(mm)
    i0 = np.floor(f).astype(np.int64)
    shape = np.array(stack.shape[:3])
    flat = stack.reshape(-1, stack.shape[3])
    valid = np.all((i0 >= 0) & (i0 < shape - 1), axis=1)
    if skip is not None:
        near = np.clip(np.rint(f).astype(np.int64), 0, shape - 1)
        channel, below = skip
        valid &= flat[(near[:, 0] * shape[1] + near[:, 1]) * shape[2] + near[:, 2], channel] >= below
    out = np.empty((len(f), stack.shape[3]), np.float32)
    out[:] = cval
    keep = np.flatnonzero(valid)
    i0, t = i0[keep], (f[keep] - i0[keep]).astype(np.float32)
    base = (i0[:, 0] * shape[1] + i0[:, 1]) * shape[2] + i0[:, 2]
    acc = np.zeros((len(keep), stack.shape[3]), np.float32)
    for dx in (0, 1):
        wx = t[:, 0] if dx else 1 - t[:, 0]
        for dy in (0, 1):
            wxy = wx * (t[:, 1] if dy else 1 - t[:, 1])
            for dz in (0, 1):
                w = wxy * (t[:, 2] if dz else 1 - t[:, 2])
                acc += w[:, None] * np.take(flat, base + (dx * shape[1] + dy) * shape[2] + dz, axis=0)
    out[keep] = acc
    return out.reshape(*pts.shape[:-1], stack.shape[3])
