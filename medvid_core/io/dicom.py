"""Read CT slices stored as DICOM, in Hounsfield units, whatever the transfer syntax.

`read_hu(path)` decodes the pixel data (uncompressed, RLE, JPEG-LS, JPEG 2000: pydicom
decodes RLE itself, the pylibjpeg plugins do the JPEG family) and applies the modality LUT:
a Modality LUT Sequence with `pydicom.pixels.apply_modality_lut`, the usual RescaleSlope /
RescaleIntercept as that function's rescale branch in float32 (`modality_lut`).

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
from pydicom.encaps import generate_frames
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


def _transfer_syntax(ds: pydicom.Dataset):
    """The file's TransferSyntaxUID, or None for a dataset without file meta."""
    return ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None


def _check_decoder(ds: pydicom.Dataset, ts, path: Path) -> None:
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


def _check_codestream(ds: pydicom.Dataset, ts, path: Path) -> None:
    """A JPEG-family frame must end with its end-of-image marker (FFD9).

    Some decoders return an image from a truncated JPEG-LS stream without complaint (seen with this
    project's plugins: a third of the stream decoded to values off by up to 138 HU), so a cut file
    would pass as a valid slice. Fragments are padded to even length, hence the stripped zeros.
    """
    if ts is None or not ts.is_encapsulated or "JPEG" not in ts.name:
        return
    try:
        frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))
    except Exception as exc:
        raise DicomError(f"{path}: corrupt encapsulated pixel data ({_reason(exc)})") from None
    for k, frame in enumerate(frames):
        if frame.rstrip(b"\0")[-2:] != b"\xff\xd9":
            raise DicomError(f"{path}: truncated {ts.name} pixel data (frame {k + 1} has no end-of-image marker)")


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
    ts = _transfer_syntax(ds)
    _check_decoder(ds, ts, path)
    _check_codestream(ds, ts, path)
    try:
        stored = ds.pixel_array
    except Exception as exc:  # short or garbled pixel data: ValueError, RuntimeError, ...
        raise DicomError(f"{path}: corrupt or truncated pixel data ({_reason(exc)})") from None
    if stored.ndim != 2:
        raise DicomError(f"{path}: expected one 2D slice, got pixel data of shape {stored.shape}")
    if has_rsna_quirk(ds):
        stored = correct_rsna_quirk(stored)
        ds.RescaleIntercept = -1000
    return modality_lut(stored, ds, path)


def modality_lut(stored: np.ndarray, ds: pydicom.Dataset, path: str | Path = "") -> np.ndarray:
    """Stored values -> HU (float32). A Modality LUT Sequence goes through pydicom's `apply_modality_lut`;
    the usual linear rescale is that function's rescale branch (stored * slope + intercept) done in
    float32, without its float64 round trip and repeated tag lookups: the bulk of `read_hu`'s cost
    over a raw decode on small slices."""
    if "ModalityLUTSequence" in ds:
        hu = apply_modality_lut(stored, ds).astype(np.float32, copy=False)
        if not np.isfinite(hu).all():
            raise DicomError(f"{path}: pixel data holds NaN or infinite values after the modality LUT")
        return hu
    slope, intercept = float(ds.get("RescaleSlope", 1.0) or 1.0), float(ds.get("RescaleIntercept", 0.0) or 0.0)
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        raise DicomError(f"{path}: RescaleSlope {slope} / RescaleIntercept {intercept} are not finite numbers")
    hu = stored.astype(np.float32)
    if slope != 1.0:
        hu *= np.float32(slope)
    if intercept != 0.0:
        hu += np.float32(intercept)
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
