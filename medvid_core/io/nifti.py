"""Read NIfTI volumes the way every medvid study expects them: 3D, canonical RAS, float32.

Errors name the file and the problem in one line (`VolumeError`), so a bad row of a
real dataset's manifest is easy to find.
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
