"""Bad input by shape for the DICOM and MURA readers (the README's bad-input table, row "wrong
dimensionality"); the NIfTI reader's 2D/4D cases are in tests/test_io_nifti.py."""
import numpy as np
import pydicom
import pytest
from PIL import Image

from medvid_core.io.dicom import DicomError, read_hu
from medvid_core.io.mura import MuraError, load_radiograph
from medvid_core.synth.head_ct import write_ct_slice


def test_multi_frame_dicom_is_refused_by_name(tmp_path):
    path = tmp_path / "multi.dcm"
    hu = np.zeros((32, 32), np.float32)
    write_ct_slice(path, hu, patient="ID_p", study_uid="1.2.3", series_uid="1.2.3.4", sop_uid="1.2.3.4.5",
                   position=(0.0, 0.0, 0.0), spacing=0.5)
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 3
    ds.PixelData = ds.PixelData * 3  # three frames of the same slice: a volume, not one slice
    ds.save_as(path)
    with pytest.raises(DicomError) as err:
        read_hu(path)
    msg = str(err.value)
    assert msg == f"{path}: expected one 2D slice, got pixel data of shape (3, 32, 32)"


def test_one_pixel_high_png_is_refused_by_name(tmp_path):
    path = tmp_path / "line.png"
    Image.fromarray(np.zeros((1, 40), np.uint8)).save(path)
    with pytest.raises(MuraError) as err:
        load_radiograph(path)
    assert str(err.value) == f"{path}: expected a 2D image, got shape (1, 40)"
