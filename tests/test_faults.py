"""Faults registration cannot repair: another patient's sequence, a header mirrored left-right."""

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

import recoseg_cli
from conftest import run_cli
from recoseg_cli.data.clinical_exam import simulate_exam
from recoseg_cli.prepare.exam import PreparedExam
from recoseg_cli.prepare.faults import RELATIVE_FLOOR, mirrored, structure_matches

REAL_CASES = Path(__file__).resolve().parents[2] / "shared" / "real" / "cases"
needs_real = pytest.mark.skipif(not REAL_CASES.is_dir(), reason="the real BraTS cases are not beside this checkout")


def blobs(seed: int, shape=(40, 48, 44)) -> np.ndarray:
    """A smooth random 'anatomy' inside a box."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.random(shape).astype(np.float32), 2.0) * 100


def test_the_anatomy_match_is_one_for_any_contrast_of_the_same_anatomy_and_low_for_another():
    anatomy, brain = blobs(0), np.ones((40, 48, 44), bool)
    inverted_contrast = 300 - 2 * anatomy  # edges in the same places, opposite polarity
    matches = structure_matches(anatomy, {"same": inverted_contrast, "other": blobs(1),
                                          "mirrored": anatomy[:, :, ::-1].copy()}, brain)
    assert matches["same"] == pytest.approx(1.0, abs=1e-3)
    assert abs(matches["other"]) < 0.1 and abs(matches["mirrored"]) < 0.1
    assert np.isnan(structure_matches(anatomy, {"tiny": anatomy}, np.zeros_like(brain))["tiny"])


def test_the_anatomy_match_in_the_brains_box_equals_the_whole_grids():
    from scipy import ndimage

    shape = (60, 70, 64)
    anatomy, other = blobs(0, shape), blobs(1, shape)
    brain = np.zeros(shape, bool)
    brain[12:50, 15:58, 3:40] = True  # one side near the grid's border, the others far from it

    def whole_grid(image: np.ndarray) -> np.ndarray:
        inside = ndimage.binary_erosion(brain, iterations=4)
        edges = ndimage.gaussian_gradient_magnitude(image, 1.5)[inside]
        return (edges - edges.mean()) / edges.std()

    expected = float(np.mean(whole_grid(anatomy) * whole_grid(other)))
    assert structure_matches(anatomy, {"other": other}, brain)["other"] == pytest.approx(expected, abs=1e-6)


def test_mirrored_flips_the_voxels_along_the_world_left_right_axis_and_keeps_the_header():
    image = sitk.GetImageFromArray(blobs(2))
    image.SetDirection((0, 0, 1, 1, 0, 0, 0, 1, 0))  # a sagittal grid: the voxel k axis runs along world x
    image.SetOrigin((3.0, -2.0, 5.0))
    flipped = mirrored(image)
    assert flipped.GetDirection() == image.GetDirection() and flipped.GetOrigin() == image.GetOrigin()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(flipped), sitk.GetArrayFromImage(image)[::-1])


def faulty_exam(tmp_path: Path, fault: str) -> Path:
    """A thick-slice exam simulated from a real case, with one fault put in."""
    case, other = "Brats18_TCIA03_265_1", "Brats18_2013_3_1"
    exam = tmp_path / "exam" / case
    simulate_exam(REAL_CASES / case, exam)
    (exam / f"{case}_truth_t1ce_grid.nii.gz").unlink()
    if fault == "mirrored t2":
        t2 = nib.load(str(exam / f"{case}_t2.nii.gz"))
        axis = int(np.argmax(np.abs(t2.affine[0, :3])))
        nib.save(nib.Nifti1Image(np.flip(np.asarray(t2.dataobj), axis).copy(), t2.affine, t2.header),
                 str(exam / f"{case}_t2.nii.gz"))
    else:
        simulate_exam(REAL_CASES / other, tmp_path / "other")
        shutil.copy(tmp_path / "other" / f"{other}_flair.nii.gz", exam / f"{case}_flair.nii.gz")
    return exam


@needs_real
@pytest.mark.slow
def test_a_mirrored_sequence_is_refused_naming_it_and_force_segments_it_with_a_warning(tmp_path, capsys):
    exam = faulty_exam(tmp_path, "mirrored t2")
    output = tmp_path / "mask.nii.gz"
    code, _, err = run_cli(["segment", exam, "-o", output, "--device", "cpu", "-q", "--keep-prepared",
                            tmp_path / "kept"], capsys)
    assert code == 2 and "_t2.nii.gz (t2): looks mirrored left-right" in err and "--force" in err
    assert not output.exists()
    prepared = PreparedExam.read(tmp_path / "kept" / exam.name)  # --force segments it, the fault a warning
    result = recoseg_cli.Segmenter(device="cpu", force=True)(prepared)
    assert any("looks mirrored left-right" in warning for warning in result.warnings) and result.labels.any()


@needs_real
@pytest.mark.slow
def test_another_patients_sequence_is_warned_about_by_name(tmp_path, capsys):
    exam = faulty_exam(tmp_path, "another patient's flair")
    report = tmp_path / "report.json"
    code, _, err = run_cli(["segment", exam, "-o", tmp_path / "mask.nii.gz", "--device", "cpu", "-q",
                            "--report", report], capsys)
    assert code == 0 and "_flair.nii.gz (flair): lines up with the T1CE much less well" in err
    matches = json.loads(report.read_text())["preparation"]["anatomy_match"]
    assert matches["flair"]["as is"] < RELATIVE_FLOOR * min(matches["t1"]["as is"], matches["t2"]["as is"])
