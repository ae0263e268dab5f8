"""DICOM series loading against synthetic series written with pydicom (and pydicom's CT_small).

The ground truth is the DICOM definition itself (PS3.3 C.7.6.2.1.1): every written pixel has a
patient position; the loaded volume must hold that pixel's HU at the voxel its affine maps there.
"""

import re

import nibabel as nib
import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom", minversion="3.0")  # dcmwrite(enforce_file_format=)
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import (  # noqa: E402
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from jaxsyn.data.dicom import load_dicom_series  # noqa: E402
from jaxsyn.data.volumes import load_nifti, load_volume  # noqa: E402
from jaxsyn.errors import DataError  # noqa: E402

S, R, C = 5, 6, 7  # slices, rows, columns: all different so a swapped axis shows
PIXEL_SPACING = (0.7, 0.8)  # between rows, between columns
STEP = 2.5
IPP0 = np.array([-10.0, 20.0, -30.0])
MARKER = (1, 2, 1)  # (slice, row, column), away from every centre so a flip shows
AXIAL = (1, 0, 0, 0, 1, 0)
C30, S30 = np.cos(np.pi / 6), np.sin(np.pi / 6)
ORIENTATIONS = {
    "axial": AXIAL,
    "axial-flipped": (-1, 0, 0, 0, -1, 0),
    "coronal": (1, 0, 0, 0, 0, -1),
    "sagittal": (0, 1, 0, 0, 0, -1),
    "oblique": (C30, S30, 0, -S30, C30, 0),
}


def raw_volume() -> np.ndarray:
    """[slice, row, column] int16 stored values, distinct along every axis, one bright marker."""
    s, r, c = np.meshgrid(np.arange(S), np.arange(R), np.arange(C), indexing="ij")
    raw = (100 * s + 10 * r + c).astype(np.int16)
    raw[MARKER] = 2000
    return raw


def make_slice(pixels, position, *, iop=AXIAL, slope=2, intercept=-1024, series=None, **kw):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = kw.pop("syntax", ExplicitVRLittleEndian)
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series or "1.2.826.0.1.3680043.8.498.1"
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelSpacing = list(kw.pop("spacing", PIXEL_SPACING))
    ds.ImageOrientationPatient = [float(v) for v in iop]
    ds.ImagePositionPatient = [round(float(v), 6) for v in position]
    ds.SliceThickness = STEP
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation, ds.SamplesPerPixel = 1, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<i2").tobytes()
    for name, value in kw.items():
        setattr(ds, name, value)
    return ds


def write(folder, datasets, seed=0, prefix="IM"):
    """Write `datasets` under shuffled names and instance numbers: neither says where a slice is."""
    folder.mkdir(parents=True, exist_ok=True)
    perm = np.random.default_rng(seed).permutation(len(datasets))
    for k, ds in zip(perm, datasets, strict=True):
        ds.InstanceNumber = int(k) + 1
        pydicom.dcmwrite(folder / f"{prefix}{k:04d}", ds, enforce_file_format=True)
    return folder


def write_series(folder, raw=None, *, iop=AXIAL, step=STEP, positions=None, **kw):
    raw = raw_volume() if raw is None else raw
    if positions is None:
        normal = np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float))
        positions = [IPP0 + k * step * normal for k in range(len(raw))]
    return write(
        folder, [make_slice(p, pos, iop=iop, **kw) for p, pos in zip(raw, positions, strict=True)]
    )


def assert_matches_dicom(volume, hu_srs, positions, iop, spacing=PIXEL_SPACING):
    """Every DICOM pixel (slice s, row r, column c) sits, with its HU, where volume.affine says."""
    s, r, c = np.meshgrid(*(np.arange(n) for n in hu_srs.shape), indexing="ij")
    row_cos, col_cos = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    lps = (
        np.asarray(positions, float)[s]
        + (c * spacing[1])[..., None] * row_cos
        + (r * spacing[0])[..., None] * col_cos
    )
    ras = lps * [-1, -1, 1]
    xyz = (ras - volume.affine[:3, 3]) @ np.linalg.inv(volume.affine[:3, :3]).T
    idx = np.rint(xyz).astype(int)
    np.testing.assert_allclose(xyz, idx, atol=1e-4)  # lands on a voxel centre
    assert sorted(volume.hu.shape) == sorted(hu_srs.shape)
    np.testing.assert_array_equal(volume.hu[idx[..., 2], idx[..., 1], idx[..., 0]], hu_srs)


def test_axial_series_exact_layout_hu_spacing_affine(tmp_path):
    folder = write_series(tmp_path / "axial")
    (folder / "README").write_text("not DICOM")  # skipped: not DICOM
    (folder / "sub").mkdir()  # skipped: not a file
    meta = FileMetaDataset()  # a DICOMDIR-like instance without pixels, of another series
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = "1.2.840.10008.1.3.10", "1.2"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    other = Dataset()
    other.file_meta, other.SeriesInstanceUID = meta, "9.9"
    pydicom.dcmwrite(folder / "DICOMDIR", other, enforce_file_format=True)

    volume = load_dicom_series(folder)
    hu = 2.0 * raw_volume() - 1024
    # Canonical RAS+: columns run to the patient's left and rows to posterior in DICOM, so both flip.
    assert volume.hu.dtype == np.float32 and volume.shape == (S, R, C)
    np.testing.assert_array_equal(volume.hu, hu[:, ::-1, ::-1])
    d, h, w = np.unravel_index(np.argmax(volume.hu), volume.shape)
    assert (d, h, w) == (1, R - 1 - 2, C - 1 - 1) and volume.hu[d, h, w] == 2 * 2000 - 1024
    assert volume.spacing == pytest.approx((2.5, 0.7, 0.8))
    expected = np.array(
        [
            [0.8, 0, 0, -(IPP0[0] + (C - 1) * 0.8)],
            [0, 0.7, 0, -(IPP0[1] + (R - 1) * 0.7)],
            [0, 0, 2.5, IPP0[2]],
            [0, 0, 0, 1],
        ]
    )
    np.testing.assert_allclose(volume.affine, expected, atol=1e-6)
    # The marker's RAS position, straight from its DICOM header: column 1, row 2 of slice 1.
    marker_lps = IPP0 + [1 * 0.8, 2 * 0.7, 1 * 2.5]
    np.testing.assert_allclose(volume.affine @ [w, h, d, 1], [*(marker_lps * [-1, -1, 1]), 1])
    assert volume.source == str(folder)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("slope", [1, 2])
def test_matches_nifti_of_same_data(tmp_path, syntax, slope):
    folder = write_series(tmp_path / "ct", slope=slope, syntax=syntax)
    hu = slope * raw_volume().astype(np.float32) - 1024
    # The same voxels as NIfTI in DICOM (column, row, slice) order with the LPS->RAS affine.
    affine = np.array(
        [[-0.8, 0, 0, -IPP0[0]], [0, -0.7, 0, -IPP0[1]], [0, 0, 2.5, IPP0[2]], [0, 0, 0, 1.0]]
    )
    nib.save(nib.Nifti1Image(hu.transpose(2, 1, 0), affine), tmp_path / "ct.nii.gz")
    from_dicom, from_nifti = load_dicom_series(folder), load_nifti(tmp_path / "ct.nii.gz")
    np.testing.assert_array_equal(from_dicom.hu, from_nifti.hu)
    np.testing.assert_allclose(from_dicom.affine, from_nifti.affine, atol=1e-6)
    assert load_volume(folder).hu.tobytes() == from_dicom.hu.tobytes()  # load_volume dispatches


@pytest.mark.parametrize("name", ORIENTATIONS)
@pytest.mark.parametrize("direction", [1, -1], ids=["ascending", "descending"])
def test_orientations_put_every_pixel_at_its_patient_position(tmp_path, name, direction):
    iop = ORIENTATIONS[name]
    folder = write_series(tmp_path / name, iop=iop, step=direction * STEP)
    normal = np.cross(iop[:3], iop[3:])
    positions = [IPP0 + k * direction * STEP * normal for k in range(S)]
    volume = load_dicom_series(folder)
    assert_matches_dicom(volume, 2.0 * raw_volume() - 1024, positions, iop)


def test_coronal_layout(tmp_path):
    volume = load_dicom_series(write_series(tmp_path / "cor", iop=ORIENTATIONS["coronal"]))
    # Coronal: rows run inferior, columns to the left, slices posterior; all three flip.
    hu = (2.0 * raw_volume() - 1024).transpose(1, 0, 2)[::-1, ::-1, ::-1]
    np.testing.assert_array_equal(volume.hu, hu)
    assert volume.spacing == pytest.approx((0.7, 2.5, 0.8))


def test_descending_positions_same_volume_as_ascending(tmp_path):
    raw = raw_volume()
    up = write_series(tmp_path / "up", raw)
    top = IPP0 + [0, 0, (S - 1) * STEP]  # instance 1 at the top, as many scanners write
    down = write_series(
        tmp_path / "down", raw[::-1], positions=[top - [0, 0, k * STEP] for k in range(S)]
    )
    a, b = load_dicom_series(up), load_dicom_series(down)
    np.testing.assert_array_equal(a.hu, b.hu)
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-6)


def raises(folder, pattern):
    with pytest.raises(DataError, match=pattern) as info:
        load_dicom_series(folder)
    assert str(folder) in str(info.value) and "\n" not in str(info.value)
    return str(info.value)


def test_two_series_in_one_folder(tmp_path):
    folder = write_series(tmp_path / "mixed", series="1.2.3")
    other = [
        make_slice(p, IPP0 + [0, 0, k], series="4.5.6") for k, p in enumerate(raw_volume()[:2])
    ]
    write(folder, other, prefix="OTHER")
    message = raises(folder, "series")
    assert "1.2.3" in message and "4.5.6" in message and "one series per folder" in message


def test_missing_slice(tmp_path):
    positions = [IPP0 + [0, 0, z] for z in (0, 2.5, 5, 10, 12.5)]  # 7.5 missing
    message = raises(write_series(tmp_path / "gap", positions=positions), "gap of 5 mm")
    assert "expected 2.5 mm" in message


def test_single_slice(tmp_path):
    raises(write_series(tmp_path / "one", raw_volume()[:1]), "expected a 3D volume")


def test_duplicate_position(tmp_path):
    positions = [IPP0 + [0, 0, z] for z in (0, 2.5, 2.5, 5, 7.5)]
    raises(write_series(tmp_path / "dup", positions=positions), "share position")


def test_gantry_tilt(tmp_path):
    positions = [IPP0 + [0, 0.5 * k, 2.5 * k] for k in range(S)]  # y drifts as z advances
    raises(write_series(tmp_path / "tilt", positions=positions), "gantry tilt")


def test_inconsistent_grid(tmp_path):
    raw = raw_volume()
    datasets = [make_slice(p, IPP0 + [0, 0, 2.5 * k]) for k, p in enumerate(raw)]
    datasets[3] = make_slice(raw[3, :, :-1], IPP0 + [0, 0, 7.5])
    raises(write(tmp_path / "grid", datasets), "Columns is 6; expected 7")
    datasets = [make_slice(p, IPP0 + [0, 0, 2.5 * k]) for k, p in enumerate(raw)]
    datasets[2].PixelSpacing = [0.7, 0.9]
    raises(write(tmp_path / "spacing", datasets), "PixelSpacing")


def test_empty_and_non_dicom_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    raises(tmp_path / "empty", "no DICOM image files")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "readme.txt").write_text("hello")
    raises(tmp_path / "text", re.escape("(1 other files)"))


def test_without_pydicom(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pydicom", None)  # import now fails
    raises(tmp_path, re.escape("pip install 'jaxsyn[dicom]'"))


def ct_small():
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")  # ships in the wheel: no download
    if path is None:
        pytest.skip("pydicom's CT_small.dcm test file is not installed")
    return pydicom.dcmread(path)


def test_real_single_ct_slice_is_not_a_volume(tmp_path):
    write(tmp_path / "real", [ct_small()])
    raises(tmp_path / "real", "expected a 3D volume")


def test_real_ct_slices_stacked(tmp_path):
    datasets = [ct_small(), ct_small()]
    ipp0 = np.array([float(v) for v in datasets[0].ImagePositionPatient])
    datasets[1].ImagePositionPatient = list(ipp0 + [0, 0, 5.0])
    datasets[1].SOPInstanceUID = generate_uid()
    volume = load_dicom_series(write(tmp_path / "real", datasets))
    raw = datasets[0].pixel_array.astype(np.float32)
    hu = np.stack([raw, raw]) * float(datasets[0].RescaleSlope) + float(
        datasets[0].RescaleIntercept
    )
    assert volume.shape == (2, 128, 128) and volume.hu.min() > -1100 and volume.hu.max() < 1300
    iop = [float(v) for v in datasets[0].ImageOrientationPatient]
    spacing = [float(v) for v in datasets[0].PixelSpacing]
    assert_matches_dicom(volume, hu, [ipp0, ipp0 + [0, 0, 5.0]], iop, spacing)
    assert volume.spacing == pytest.approx((5.0, *spacing), abs=1e-5)
