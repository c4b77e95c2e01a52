"""Read NIfTI volumes the way every medvid study expects them: 3D, canonical RAS, float32; and write them.

Errors name the file and the problem in one line (`VolumeError`), so a bad row of a
real dataset's manifest is easy to find. `save_volume` is the one writer the synthetic
generators share.
"""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


class VolumeError(ValueError):
    """A volume that cannot be used; the message names the file."""


def load_volume(path: str | Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Return (array in canonical RAS orientation, voxel size in mm).

    nibabel's `as_closest_canonical` undoes the scanner storage order (sagittal scans are
    often stored PSR or ASL), so axis 0 is always left->right, 1 posterior->anterior,
    2 inferior->superior. A 4D file with a single volume is squeezed; any other 4D is an error.
    """
    path = Path(path)
    if not path.exists():
        raise VolumeError(f"{path}: file not found")
    try:
        img = nib.as_closest_canonical(nib.load(path))
        kind = img.get_data_dtype().kind
        if kind not in "biuf":  # complex or structured (RGB) voxels: a cast would drop information silently
            raise VolumeError(f"{path}: voxels of type {img.get_data_dtype()} are not scalar intensities")
        data = np.asarray(img.dataobj, dtype=np.float32)
    except VolumeError:
        raise
    except Exception as exc:  # nibabel raises many types for truncated/garbled files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VolumeError(f"{path}: cannot read NIfTI ({reason})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise VolumeError(f"{path}: expected a 3D volume, got {data.ndim}D with shape {data.shape}")
    if not np.isfinite(data).all():
        raise VolumeError(f"{path}: volume contains NaN or infinite values")
    return data, tuple(float(z) for z in img.header.get_zooms()[:3])


def save_volume(data: np.ndarray, path: str | Path, affine: np.ndarray, dtype=None, *,
                xform_code: int | None = 1) -> Path:
    """Write `data` (cast to `dtype` when given) as NIfTI-1 at `path`, creating its folder; return `path`.

    Voxel units are mm. `xform_code` 1 (scanner anatomical) records `affine` as both qform and sform,
    as a scanner's converter does; None keeps nibabel's defaults (sform "aligned", no qform). A
    `.nii.gz` is gzipped with a zero timestamp, so the same array gives the same bytes.
    """
    path = Path(path)
    data = np.ascontiguousarray(data)
    img = nib.Nifti1Image(data if dtype is None else data.astype(dtype), affine)
    img.header.set_xyzt_units("mm")
    if xform_code is not None:
        img.header.set_qform(affine, code=xform_code)
        img.header.set_sform(affine, code=xform_code)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
    return path
