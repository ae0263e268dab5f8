"""2D image folders: PNG (8/16-bit, RGB), NPY (multi-channel), DICOM, resizing, clear errors."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from jaxsyn.data.images import load_images, read_image
from jaxsyn.data.phantoms import cxr
from jaxsyn.errors import DataError


def test_cxr_phantom_folder_loads_in_label_order(tmp_path):
    labels = cxr.write_cohort(tmp_path, n=4, size=32, seed=1, progress=False)
    images, table = load_images(tmp_path, progress=False)
    assert images.shape == (4, 32, 32, 1) and images.dtype == np.float32
    assert list(table["image_id"]) == list(labels["image_id"])
    expected = np.asarray(Image.open(tmp_path / "X00002.png"), np.float32) / 255
    np.testing.assert_allclose(images[2, ..., 0], expected)
    small, _ = load_images(tmp_path, size=16, progress=False)
    assert small.shape == (4, 16, 16, 1)
    np.testing.assert_allclose(small.mean(), images.mean(), atol=0.01)  # antialiased, not sampled


def test_formats(tmp_path):
    grey16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "a.png")
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 1] = 255
    Image.fromarray(rgb).save(tmp_path / "b.png")
    stack = np.linspace(0, 1, 8 * 8 * 9, dtype=np.float32).reshape(8, 8, 9)
    np.save(tmp_path / "c.npy", stack)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "c.png")  # c's preview
    np.testing.assert_allclose(read_image(tmp_path / "a.png")[..., 0], grey16 / 65535, rtol=1e-6)
    np.testing.assert_array_equal(read_image(tmp_path / "b.png")[0, 0], [0, 1, 0])
    pd.DataFrame({"image_id": ["c"], "label": [1]}).to_csv(tmp_path / "labels.csv", index=False)
    images, _ = load_images(tmp_path, progress=False)
    np.testing.assert_array_equal(images[0], stack)  # the .npy, not its preview


def test_dicom(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    image = read_image(path)
    ds = pydicom.dcmread(path)
    assert image.shape == (*ds.pixel_array.shape, 1)
    assert 0 <= image.min() < image.max() <= 1


def test_errors(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_images(tmp_path / "nope")
    with pytest.raises(DataError, match="labels.csv: no such file"):
        load_images(tmp_path)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "x1.png")
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(tmp_path / "x2.png")
    pd.DataFrame({"image_id": ["x1", "x3"]}).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataError, match=r"1 ids have no image file, e.g. \['x3'\]"):
        load_images(tmp_path)
    pd.DataFrame({"image_id": ["x1", "x2"]}).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataError, match="expected one shape"):
        load_images(tmp_path)
    assert load_images(tmp_path, size=8, progress=False)[0].shape == (2, 8, 8, 1)
    (tmp_path / "x2.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="several files for id 'x2'"):
        load_images(tmp_path)
    (tmp_path / "x2.png").unlink()
    with pytest.raises(DataError, match="x2.jpg: unreadable image"):
        load_images(tmp_path)
