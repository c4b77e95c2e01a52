"""Bad input for the NIfTI reader, by voxel type (the README's bad-input table, row "wrong dtype").

tests/test_io_nifti.py covers missing, truncated, garbage and wrong-dimensionality files; these
are the voxel types a 3D scalar volume cannot have.
"""
import nibabel as nib
import numpy as np
import pytest

from medvid_core.io.nifti import VolumeError, load_volume


def test_rgb_voxels_are_refused_by_name(tmp_path):
    path = tmp_path / "rgb.nii.gz"
    rgb = np.zeros((4, 4, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), path)
    with pytest.raises(VolumeError) as err:
        load_volume(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: voxels of type") and "not scalar intensities" in msg and "\n" not in msg


def test_complex_voxels_are_refused_by_name(tmp_path):
    path = tmp_path / "complex.nii.gz"
    data = np.zeros((4, 4, 4), np.complex64)
    data[0, 0, 0] = 1 + 2j
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    with pytest.raises(VolumeError, match="complex"):
        load_volume(path)
