import gzip

import nibabel as nib
import numpy as np
import pytest

from jaxsyn.data.volumes import (
    Volume,
    diagonal_affine,
    fit_cube,
    load_volume,
    resample,
    save_nifti,
    unwindow,
    window,
)
from jaxsyn.errors import DataError


def ramp(shape):
    d, h, w = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    return 5 * d + 3 * h + w


def world(volume: Volume, dhw) -> np.ndarray:
    """RAS mm of voxel [d, h, w]."""
    d, h, w = dhw
    return (volume.affine @ np.array([w, h, d, 1.0]))[:3]


def test_nifti_roundtrip_keeps_values_affine_and_spacing(tmp_path):
    vol = Volume(hu=ramp((6, 7, 8)), affine=diagonal_affine((2.5, 1.0, 0.5), (6, 7, 8)))
    save_nifti(tmp_path / "v.nii.gz", vol)
    back = load_volume(tmp_path / "v.nii.gz")
    np.testing.assert_array_equal(back.hu, vol.hu)
    np.testing.assert_allclose(back.affine, vol.affine)
    assert back.spacing == (2.5, 1.0, 0.5)
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed away


def test_lps_file_is_reoriented_to_ras(tmp_path):
    xyz = ramp((4, 5, 6)).transpose(2, 1, 0)  # stored x, y, z
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])  # x toward patient's left, y posterior
    nib.save(nib.Nifti1Image(xyz, lps), tmp_path / "lps.nii")
    vol = load_volume(tmp_path / "lps.nii")
    expected = xyz[::-1, ::-1, :].transpose(2, 1, 0)
    np.testing.assert_array_equal(vol.hu, expected)
    assert np.all(np.diag(vol.affine)[:3] > 0)
    # The same physical point keeps its value: voxel (x=0, y=0, z=0) of the file is at RAS (0, 0, 0).
    d, h, w = 0, 4, 5  # x (6 voxels) and y (5 voxels) reversed
    np.testing.assert_allclose(world(vol, (d, h, w)), [0, 0, 0])
    assert vol.hu[d, h, w] == xyz[0, 0, 0]


@pytest.mark.parametrize("shape", [(8, 8), (4, 4, 4, 3)])
def test_not_3d_is_refused(tmp_path, shape):
    nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)), tmp_path / "x.nii")
    with pytest.raises(DataError, match=r"x\.nii: image has shape .*expected a 3D volume"):
        load_volume(tmp_path / "x.nii")


def test_singleton_fourth_axis_is_a_volume(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((3, 4, 5, 1), np.float32), np.eye(4)), tmp_path / "x.nii")
    assert load_volume(tmp_path / "x.nii").shape == (5, 4, 3)


@pytest.mark.parametrize("pixdim", [[1.0, 0.0, 1.0], [1.0, 1.0, -2.0]])
def test_zero_or_negative_spacing_is_refused(tmp_path, pixdim):
    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), None)
    img.header["pixdim"][1:4] = pixdim
    nib.save(img, tmp_path / "flat.nii")
    with pytest.raises(DataError, match=r"flat\.nii: field pixdim .*expected > 0"):
        load_volume(tmp_path / "flat.nii")


def test_nan_voxels_are_refused(tmp_path):
    data = np.zeros((4, 4, 4), np.float32)
    data[1, 2, 3] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(DataError, match=r"nan\.nii\.gz: 1 voxels are NaN"):
        load_volume(tmp_path / "nan.nii.gz")


def test_truncated_and_garbage_files_are_refused(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((16, 16, 16), np.float32), np.eye(4)), tmp_path / "ok.nii.gz")
    data = (tmp_path / "ok.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.nii\.gz: "):
        load_volume(tmp_path / "cut.nii.gz")
    (tmp_path / "junk.nii.gz").write_bytes(gzip.compress(b"not a nifti header" * 30))
    with pytest.raises(DataError, match=r"junk\.nii\.gz: not a readable NIfTI"):
        load_volume(tmp_path / "junk.nii.gz")


def test_missing_path_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="nope.nii: no such file"):
        load_volume(tmp_path / "nope.nii")
    (tmp_path / "v.mha").write_bytes(b"x")
    with pytest.raises(DataError, match=r"v\.mha: unknown volume format"):
        load_volume(tmp_path / "v.mha")


def test_resample_reproduces_a_linear_ramp_at_the_same_world_points():
    vol = Volume(hu=ramp((20, 24, 28)), affine=diagonal_affine((1.0, 1.0, 1.0), (20, 24, 28)))
    half = resample(vol, (0.5, 0.5, 0.5))  # upsampling: no smoothing, linear interpolation is exact
    assert half.shape == (40, 48, 56) and half.spacing == (0.5, 0.5, 0.5)
    # value at each output voxel = ramp at its source position (inside, away from clamped edges)
    src = np.linalg.solve(vol.affine, half.affine)  # output index -> source index
    d, h, w = 17, 20, 30
    x, y, z, _ = src @ np.array([w, h, d, 1.0])
    np.testing.assert_allclose(half.hu[d, h, w], 5 * z + 3 * y + x, rtol=1e-5)
    np.testing.assert_allclose(world(half, (19.5, 23.5, 27.5)), world(vol, (9.5, 11.5, 13.5)))


def test_fit_cube_isotropic_pads_with_air_and_keeps_the_centre():
    vol = Volume(
        hu=np.zeros((40, 50, 60), np.float32), affine=diagonal_affine((2.0, 1.0, 1.0), (40, 50, 60))
    )
    cube = fit_cube(vol, 32)
    assert cube.shape == (32, 32, 32)
    np.testing.assert_allclose(
        cube.spacing, (2.5, 2.5, 2.5)
    )  # longest side (80 mm) spans 32 voxels
    assert cube.hu[16, 0, 16] == -1024 and cube.hu[16, 16, 16] == 0  # padded H axis: 20 of 32 rows
    assert (cube.hu[16, :, 16] == 0).sum() == 20
    np.testing.assert_allclose(
        world(cube, (15.5, 15.5, 15.5)), world(vol, (19.5, 24.5, 29.5)), atol=1e-6
    )


def test_fit_cube_with_fixed_spacing_crops_the_centre():
    vol = Volume(hu=ramp((64, 64, 64)), affine=diagonal_affine((1.0, 1.0, 1.0), (64, 64, 64)))
    cube = fit_cube(vol, 32, spacing=1.0)
    np.testing.assert_array_equal(cube.hu, vol.hu[16:48, 16:48, 16:48])
    np.testing.assert_allclose(cube.affine, diagonal_affine((1.0, 1.0, 1.0), (32, 32, 32)))


def test_window_maps_hu_to_unit_range_and_back():
    hu = np.array([-2000.0, -1024.0, -212.0, 600.0, 3000.0])
    x = window(hu)
    np.testing.assert_allclose(x, [-1, -1, 0, 1, 1])
    np.testing.assert_allclose(unwindow(x[1:4]), hu[1:4])
