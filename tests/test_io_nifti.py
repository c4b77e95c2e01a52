"""load_volume: canonical RAS whatever the storage order, and one-line errors naming the file."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform

from medvid_core.io.nifti import VolumeError, load_volume

RAS_ZOOMS = (1.0, 2.0, 3.0)  # anisotropic, so a wrong reordering shows


def ras_volume(shape=(4, 5, 6)) -> np.ndarray:
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)


def write(path, data: np.ndarray, axcodes=("R", "A", "S"), zooms=RAS_ZOOMS, dtype=np.float32):
    """Write a RAS array stored in `axcodes` order, with an affine saying so."""
    ras_affine = np.diag([*zooms, 1.0])
    tr = ornt_transform(axcodes2ornt(("R", "A", "S")), axcodes2ornt(axcodes))
    stored = apply_orientation(data, tr)
    affine = ras_affine @ inv_ornt_aff(tr, data.shape)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(stored).astype(dtype), affine), path)
    return path


def assert_one_line_naming(err: pytest.ExceptionInfo, path) -> str:
    msg = str(err.value)
    assert "\n" not in msg, msg
    assert str(path) in msg, msg
    return msg


@pytest.mark.parametrize("axcodes", [("P", "S", "R"), ("L", "P", "S"), ("L", "S", "A"), ("R", "A", "S")])
def test_non_ras_storage_is_returned_as_ras(tmp_path, axcodes):
    data = ras_volume()
    path = write(tmp_path / "v.nii.gz", data, axcodes)
    img = nib.load(path)
    assert nib.aff2axcodes(img.affine) == axcodes
    if axcodes != ("R", "A", "S"):
        assert img.shape != data.shape or not np.array_equal(np.asarray(img.dataobj), data)
    out, zooms = load_volume(path)
    assert out.dtype == np.float32
    assert out.shape == data.shape
    np.testing.assert_array_equal(out, data)
    assert zooms == RAS_ZOOMS
    assert all(isinstance(z, float) for z in zooms)


def test_accepts_str_and_int_storage(tmp_path):
    data = ras_volume()
    path = write(tmp_path / "v.nii", data, ("P", "S", "R"), dtype=np.int16)
    out, _ = load_volume(str(path))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, data)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "scan.nii.gz"
    with pytest.raises(VolumeError) as err:
        load_volume(path)
    assert "not found" in assert_one_line_naming(err, path)


def test_truncated_gzip(tmp_path):
    path = write(tmp_path / "cut.nii.gz", np.random.default_rng(0).random((20, 20, 20)).astype(np.float32))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(VolumeError) as err:
        load_volume(path)
    assert "cannot read" in assert_one_line_naming(err, path)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_garbage_file(tmp_path):
    path = tmp_path / "junk.nii"
    path.write_bytes(b"this is not a nifti file\nat all\n" * 20)
    with pytest.raises(VolumeError) as err:
        load_volume(path)
    assert "cannot read" in assert_one_line_naming(err, path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.nii.gz"
    path.write_bytes(b"")
    with pytest.raises(VolumeError) as err:
        load_volume(path)
    assert_one_line_naming(err, path)


def test_4d_is_an_error(tmp_path):
    path = tmp_path / "four.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), path)
    with pytest.raises(VolumeError) as err:
        load_volume(path)
    msg = assert_one_line_naming(err, path)
    assert "4D" in msg and "(4, 4, 4, 3)" in msg


def test_2d_is_an_error(tmp_path):
    path = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4), np.float32), np.eye(4)), path)
    with pytest.raises(VolumeError) as err:
        load_volume(path)
    assert "2D" in assert_one_line_naming(err, path)


def test_4d_single_volume_is_squeezed(tmp_path):
    data = ras_volume((4, 4, 4))
    path = tmp_path / "one.nii.gz"
    nib.save(nib.Nifti1Image(data[..., None], np.diag([*RAS_ZOOMS, 1.0])), path)
    out, zooms = load_volume(path)
    assert out.shape == (4, 4, 4)
    np.testing.assert_array_equal(out, data)
    assert zooms == RAS_ZOOMS


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_is_an_error(tmp_path, bad):
    data = ras_volume()
    data[1, 2, 3] = bad
    path = write(tmp_path / "nan.nii.gz", data)
    with pytest.raises(VolumeError) as err:
        load_volume(path)
    assert "NaN" in assert_one_line_naming(err, path)


def test_volume_error_is_a_value_error():
    assert issubclass(VolumeError, ValueError)
