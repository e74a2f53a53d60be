"""NIfTI loading to canonical orientation and writing back with the source geometry."""

import gzip

import nibabel as nib
import numpy as np
import pytest

from conftest import write_nifti
from recoseg_cli.errors import InputError
from recoseg_cli.io.nifti import load_volume, save_volume

AXCODES = [("R", "A", "S"), ("L", "A", "S"), ("L", "P", "S"), ("P", "S", "R"), ("I", "L", "A")]


def affine_for(axcodes, zooms=(1.0, 1.2, 2.5), origin=(10.0, -20.0, 5.0)) -> np.ndarray:
    ornt = nib.orientations.axcodes2ornt(axcodes)
    affine = np.zeros((4, 4))
    for file_axis, (ras_axis, flip) in enumerate(ornt.astype(int)):
        affine[ras_axis, file_axis] = flip * zooms[file_axis]
    affine[:3, 3] = origin
    affine[3, 3] = 1
    return affine


@pytest.mark.parametrize("axcodes", AXCODES)
def test_round_trip_keeps_data_affine_codes_and_zooms(tmp_path, axcodes):
    data = np.random.default_rng(0).integers(0, 5, (7, 9, 11)).astype(np.uint8)
    source = write_nifti(tmp_path / "in.nii.gz", data, affine_for(axcodes))
    canonical, geometry = load_volume(source)
    assert nib.aff2axcodes(nib.as_closest_canonical(nib.load(str(source))).affine) == ("R", "A", "S")
    assert canonical.dtype == np.float32
    out = save_volume(canonical, geometry, tmp_path / "out.nii.gz", np.uint8)
    original, written = nib.load(str(source)), nib.load(str(out))
    assert written.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), data)
    np.testing.assert_allclose(written.affine, original.affine, atol=1e-6)
    assert written.header.get_zooms() == pytest.approx(original.header.get_zooms())
    assert int(written.header["qform_code"]) == 1 and int(written.header["sform_code"]) == 1
    assert nib.aff2axcodes(written.affine) == axcodes


def test_canonical_zooms_follow_axes(tmp_path):
    source = write_nifti(tmp_path / "in.nii.gz", np.ones((4, 5, 6), np.float32), affine_for(("P", "S", "R")))
    canonical, geometry = load_volume(source)
    assert canonical.shape == (6, 4, 5)
    assert geometry.canonical_zooms == pytest.approx((2.5, 1.0, 1.2))


def test_codes_zero_are_kept(tmp_path):
    image = nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.diag([2.0, 2.0, 2.0, 1.0]))
    image.set_qform(None, code=0)
    image.set_sform(image.affine, code=2)
    nib.save(image, str(tmp_path / "in.nii"))
    canonical, geometry = load_volume(tmp_path / "in.nii")
    written = nib.load(str(save_volume(canonical, geometry, tmp_path / "out.nii", np.float32)))
    assert int(written.header["qform_code"]) == 0 and int(written.header["sform_code"]) == 2
    np.testing.assert_allclose(written.affine, image.affine)


def test_bad_files_give_input_errors(tmp_path):
    write_nifti(tmp_path / "four_d.nii.gz", np.zeros((4, 4, 4, 2), np.float32))
    with pytest.raises(InputError, match="expected a 3D image"):
        load_volume(tmp_path / "four_d.nii.gz")
    nan = np.ones((4, 4, 4), np.float32)
    nan[1, 1, 1] = np.nan
    write_nifti(tmp_path / "nan.nii.gz", nan)
    with pytest.raises(InputError, match="1 voxels are NaN or infinite"):
        load_volume(tmp_path / "nan.nii.gz")
    (tmp_path / "text.nii.gz").write_text("hello")
    with pytest.raises(InputError, match="text.nii.gz: not a readable NIfTI"):
        load_volume(tmp_path / "text.nii.gz")
    write_nifti(tmp_path / "full.nii.gz", np.random.default_rng(0).random((40, 40, 40)).astype(np.float32))
    raw = gzip.decompress((tmp_path / "full.nii.gz").read_bytes())
    (tmp_path / "cut.nii.gz").write_bytes(gzip.compress(raw)[: len(raw) // 3])
    with pytest.raises(InputError, match="cut.nii.gz"):
        load_volume(tmp_path / "cut.nii.gz")


def test_failed_write_leaves_nothing(tmp_path):
    canonical, geometry = load_volume(write_nifti(tmp_path / "in.nii.gz", np.ones((4, 4, 4), np.float32)))
    with pytest.raises(ValueError):
        save_volume(np.ones((3, 3, 3)), geometry, tmp_path / "out.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nii.gz"]
