"""Read CT slices stored as DICOM, in Hounsfield units, whatever the transfer syntax.

`read_hu(path)` decodes the pixel data (uncompressed, RLE, JPEG-LS, JPEG 2000: pydicom
decodes RLE itself, the pylibjpeg plugins do the JPEG family) and applies the modality LUT
(RescaleSlope / RescaleIntercept) with `pydicom.pixels.apply_modality_lut`.

Known quirk of the RSNA Intracranial Hemorrhage data, corrected as the public solutions do:
some slices hold 12-bit data stored unsigned (BitsStored 12, PixelRepresentation 0) whose
RescaleIntercept (> -100) does not fit them; the stored values are HU wrapped modulo 4096.
Shifting them by +1000 modulo 4096 and using an intercept of -1000 restores the HU.

Every failure is a `DicomError` (a ValueError) with one line naming the file and the problem;
a compressed file whose decoder plugin is missing names the plugin to install.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, get_decoder

# the pip package that decodes each compressed family (what to install when it is missing)
DECODER_PLUGINS = {
    "JPEG-LS": "pylibjpeg-libjpeg (with pylibjpeg) or pyjpegls",
    "JPEG 2000": "pylibjpeg-openjpeg (with pylibjpeg) or pillow",
    "RLE": "pylibjpeg-rle (pydicom's own RLE decoder is normally always there)",
    "JPEG": "pylibjpeg-libjpeg (with pylibjpeg) or pillow",
}


class DicomError(ValueError):
    """A DICOM file that cannot be used; the message names the file and the problem."""


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def has_rsna_quirk(ds: pydicom.Dataset) -> bool:
    """12-bit data stored unsigned with an intercept that does not fit (the RSNA ICH quirk)."""
    return (int(ds.get("BitsStored", 16)) == 12 and int(ds.get("PixelRepresentation", 1)) == 0
            and float(ds.get("RescaleIntercept", -1024)) > -100)


def correct_rsna_quirk(stored: np.ndarray) -> np.ndarray:
    """Stored values of a quirky slice -> the values an intercept of -1000 fits (shift +1000 mod 4096)."""
    x = stored.astype(np.int32) + 1000
    x[x >= 4096] -= 4096
    return x


def _check_decoder(ds: pydicom.Dataset, path: Path) -> None:
    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if ts is None or not ts.is_compressed:
        return
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise DicomError(f"{path}: no pixel data decoder exists for transfer syntax {ts.name}") from None
    if not decoder.is_available:
        family = next((k for k in DECODER_PLUGINS if k in ts.name), ts.name)
        missing = "; ".join(decoder.missing_dependencies) or "no plugin installed"
        raise DicomError(f"{path}: {ts.name} pixel data needs a decoder plugin: install "
                         f"{DECODER_PLUGINS.get(family, 'a pydicom decoder plugin')} ({missing})")


def read_dataset(path: str | Path, *, stop_before_pixels: bool = False) -> pydicom.Dataset:
    """`pydicom.dcmread` with one-line errors naming the file."""
    path = Path(path)
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except FileNotFoundError:
        raise DicomError(f"{path}: file not found") from None
    except InvalidDicomError as exc:
        raise DicomError(f"{path}: not a DICOM file ({_reason(exc)})") from None
    except Exception as exc:  # truncated headers raise EOFError, struct.error, OSError...
        raise DicomError(f"{path}: cannot parse DICOM header ({_reason(exc)})") from None


def read_hu(path: str | Path) -> np.ndarray:
    """One CT slice in Hounsfield units, float32 (rows, columns)."""
    path = Path(path)
    ds = read_dataset(path)
    if "PixelData" not in ds:
        raise DicomError(f"{path}: no pixel data")
    _check_decoder(ds, path)
    try:
        stored = ds.pixel_array
    except Exception as exc:  # short or garbled pixel data: ValueError, RuntimeError, ...
        raise DicomError(f"{path}: corrupt or truncated pixel data ({_reason(exc)})") from None
    if stored.ndim != 2:
        raise DicomError(f"{path}: expected one 2D slice, got pixel data of shape {stored.shape}")
    if has_rsna_quirk(ds):
        stored = correct_rsna_quirk(stored)
        ds.RescaleIntercept = -1000
    hu = apply_modality_lut(stored, ds).astype(np.float32, copy=False)
    if not np.isfinite(hu).all():
        raise DicomError(f"{path}: pixel data holds NaN or infinite values after the modality LUT")
    return hu


# header tags the slice index needs (patient, series, position along the stack)
INDEX_TAGS = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "ImagePositionPatient")


def read_header(path: str | Path) -> dict:
    """The tags that place a slice in its series: patient, study, series, z (mm), without decoding pixels."""
    path = Path(path)
    ds = read_dataset(path, stop_before_pixels=True)
    missing = [t for t in INDEX_TAGS if t not in ds]
    if missing:
        raise DicomError(f"{path}: missing tag(s) {', '.join(missing)}")
    return {"patient": str(ds.PatientID), "study": str(ds.StudyInstanceUID),
            "series": str(ds.SeriesInstanceUID), "z": float(ds.ImagePositionPatient[2])}
