"""read_hu: HU through the modality LUT, compressed syntaxes, the RSNA quirk, one-line errors naming the file."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.pixels import get_decoder
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from medvid_core.io.dicom import DicomError, has_rsna_quirk, modality_lut, read_header, read_hu
from medvid_core.synth.head_ct import write_ct_slice


def hu_image(shape=(64, 48)) -> np.ndarray:  # JPEG 2000 wants >= 32 px a side
    """A slice with air, brain, blood and bone values, all different so a wrong LUT shows."""
    rng = np.random.default_rng(0)
    hu = rng.integers(-20, 90, shape).astype(np.float32)
    hu[:3] = -1000.0
    hu[-3:] = 1500.0
    return hu


def write(path, hu, **kw):
    meta = dict(patient="ID_p", study_uid="1.2.3", series_uid="1.2.3.4", sop_uid="1.2.3.4.5",
                position=(-100.0, -100.0, 12.5), spacing=0.5)
    return write_ct_slice(path, hu, **{**meta, **kw})


def one_line_naming(err, path) -> str:
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


def test_hu_with_non_trivial_slope_and_intercept(tmp_path):
    hu = hu_image()
    hu[5, 5] = 40.5  # representable with slope 0.5
    path = write(tmp_path / "a.dcm", hu, slope=0.5, intercept=-1000.0)
    ds = pydicom.dcmread(path)
    assert float(ds.RescaleSlope) == 0.5 and float(ds.RescaleIntercept) == -1000.0
    stored = ds.pixel_array
    assert stored[5, 5] == (40.5 + 1000) / 0.5  # the file really holds scaled values
    out = read_hu(path)
    assert out.dtype == np.float32 and out.shape == hu.shape
    np.testing.assert_array_equal(out, hu)


@pytest.mark.parametrize("profile", [(12, 0, -1024.0), (16, 1, -1024.0), (16, 1, 0.0)])
def test_scanner_profiles_round_trip(tmp_path, profile):
    bits, rep, intercept = profile
    hu = hu_image()
    path = write(tmp_path / "p.dcm", hu, bits_stored=bits, pixel_representation=rep, intercept=intercept)
    np.testing.assert_array_equal(read_hu(path), hu)


def test_rsna_quirk_is_corrected(tmp_path):
    hu = hu_image()
    path = write(tmp_path / "q.dcm", hu, rsna_quirk=True)
    ds = pydicom.dcmread(path)
    assert has_rsna_quirk(ds) and ds.BitsStored == 12 and ds.PixelRepresentation == 0
    naive = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds)
    assert naive[0, 0] == 3096  # air read without the correction: nonsense
    np.testing.assert_array_equal(read_hu(path), hu)


@pytest.mark.parametrize("syntax,uid", [("rle", RLELossless), ("j2k", JPEG2000Lossless), ("jls", JPEGLSLossless)])
def test_compressed_syntaxes_decode(tmp_path, syntax, uid):
    hu = hu_image()
    path = write(tmp_path / f"{syntax}.dcm", hu, syntax=syntax)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == uid
    np.testing.assert_array_equal(read_hu(path), hu)


@pytest.mark.parametrize("slope,intercept", [(1.0, -1024.0), (0.5, -1000.0), (2.5, 7.25), (1.0, 0.0)])
def test_modality_lut_is_pydicoms_rescale_in_float32(slope, intercept):
    ds = pydicom.Dataset()
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    stored = np.random.default_rng(1).integers(-2000, 4000, (16, 16)).astype(np.int16)
    out = modality_lut(stored, ds)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, pydicom.pixels.apply_modality_lut(stored, ds), rtol=1e-6)


def test_modality_lut_sequence_goes_through_pydicom():
    ds = pydicom.Dataset()
    item = pydicom.Dataset()
    item.LUTDescriptor, item.ModalityLUTType = [4, 0, 16], "HU"
    item.LUTData = [0, 500, 1000, 2000]
    ds.ModalityLUTSequence = [item]
    out = modality_lut(np.array([[0, 1], [2, 3]], np.uint16), ds)
    np.testing.assert_array_equal(out, [[0, 500], [1000, 2000]])


def test_non_finite_rescale_is_one_line_naming_the_file(tmp_path):
    ds = pydicom.Dataset()
    ds.RescaleSlope, ds.RescaleIntercept = float("nan"), -1024.0
    with pytest.raises(DicomError, match="x.dcm: RescaleSlope nan"):
        modality_lut(np.zeros((2, 2), np.int16), ds, tmp_path / "x.dcm")


@pytest.mark.parametrize("syntax", ["rle", "j2k", "jls"])
def test_truncated_compressed_stream_is_refused(tmp_path, syntax):
    """A cut codestream is an error naming the file, never a silently wrong slice (JPEG-LS decoders return one)."""
    path = write(tmp_path / f"t_{syntax}.dcm", hu_image(), syntax=syntax)
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(DicomError) as err:
        read_hu(path)
    assert "truncated" in one_line_naming(err, path) or "corrupt" in str(err.value)


def test_missing_decoder_plugin_is_named(tmp_path, monkeypatch):
    path = write(tmp_path / "j.dcm", hu_image(), syntax="j2k")
    decoder = get_decoder(JPEG2000Lossless)
    monkeypatch.setattr(decoder, "_available", {})  # as if pylibjpeg-openjpeg and pillow were absent
    with pytest.raises(DicomError) as err:
        read_hu(path)
    assert "pylibjpeg-openjpeg" in one_line_naming(err, path)


def test_corrupt_pixel_data_is_one_line_naming_the_file(tmp_path):
    path = write(tmp_path / "c.dcm", hu_image())
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData[:100]
    ds.save_as(path)
    with pytest.raises(DicomError) as err:
        read_hu(path)
    assert "pixel data" in one_line_naming(err, path)


def test_truncated_file(tmp_path):
    path = write(tmp_path / "t.dcm", hu_image())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 300])
    with pytest.raises(DicomError) as err:
        read_hu(path)
    one_line_naming(err, path)


def test_garbled_compressed_data(tmp_path):
    path = write(tmp_path / "g.dcm", hu_image(), syntax="j2k")
    data = bytearray(path.read_bytes())
    start = data.index(b"\xff\x4f\xff\x51")  # the JPEG 2000 codestream's SOC + SIZ markers
    data[start + 4: start + 60] = b"\x00" * 56
    path.write_bytes(bytes(data))
    with pytest.raises(DicomError) as err:
        read_hu(path)
    one_line_naming(err, path)


def test_not_dicom_and_missing(tmp_path):
    bad = tmp_path / "x.dcm"
    bad.write_text("hello")
    with pytest.raises(DicomError) as err:
        read_hu(bad)
    one_line_naming(err, bad)
    with pytest.raises(DicomError) as err:
        read_hu(tmp_path / "nope.dcm")
    one_line_naming(err, tmp_path / "nope.dcm")


def test_header_without_pixels(tmp_path):
    path = write(tmp_path / "h.dcm", hu_image())
    assert read_header(path) == {"patient": "ID_p", "study": "1.2.3", "series": "1.2.3.4", "z": 12.5}
