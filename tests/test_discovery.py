"""Patient and cohort discovery across naming schemes."""

from pathlib import Path

import pytest

from recoseg_cli.errors import InputError
from recoseg_cli.io.discovery import discover_cohort, discover_patient, patient_from_paths


def touch(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


def test_brats2020_whole_suffixes_t1_is_not_t1ce(tmp_path):
    folder = touch(tmp_path / "BraTS20_Training_001", *[f"BraTS20_Training_001_{m}.nii.gz" for m in
                                                       ("flair", "t1", "t1ce", "t2", "seg")])
    patient = discover_patient(folder)
    assert patient.scheme == "brats2020"
    assert patient.case_id == "BraTS20_Training_001"
    assert patient.images["t1"].name.endswith("_t1.nii.gz")
    assert patient.images["t1ce"].name.endswith("_t1ce.nii.gz")
    assert patient.seg.name.endswith("_seg.nii.gz")


def test_brats2020_uncompressed_and_case_355_segmentation(tmp_path):
    folder = touch(tmp_path / "BraTS20_Training_355", "W39_1998.09.19_Segm.nii",
                   *[f"BraTS20_Training_355_{m}.nii" for m in ("flair", "t1", "t1ce", "t2")])
    patient = discover_patient(folder)
    assert patient.seg.name == "W39_1998.09.19_Segm.nii"
    assert set(patient.images) == {"flair", "t1", "t1ce", "t2"}


def test_brats2023_names(tmp_path):
    folder = touch(tmp_path / "BraTS-GLI-00000-000", *[f"BraTS-GLI-00000-000-{m}.nii.gz" for m in
                                                      ("t2f", "t1n", "t1c", "t2w", "seg")])
    patient = discover_patient(folder)
    assert patient.scheme == "brats2023"
    assert patient.images["flair"].name.endswith("-t2f.nii.gz")
    assert patient.images["t1ce"].name.endswith("-t1c.nii.gz")
    assert patient.seg is not None


def test_nnunet_channel_order(tmp_path):
    folder = touch(tmp_path / "case", *[f"BRATS_001_{i:04d}.nii.gz" for i in range(4)])
    patient = discover_patient(folder)
    assert patient.scheme == "nnunet"
    assert [patient.images[m].name for m in ("flair", "t1", "t1ce", "t2")] == [
        f"BRATS_001_{i:04d}.nii.gz" for i in range(4)]
    assert patient.seg is None


def test_missing_t1ce_is_reported_not_fatal_at_discovery(tmp_path):
    folder = touch(tmp_path / "p", "p_flair.nii.gz", "p_t1.nii.gz", "p_t2.nii.gz")
    patient = discover_patient(folder)
    assert patient.missing == ("t1ce",)
    with pytest.raises(InputError, match=r"missing t1ce \(looked for \*_t1ce"):
        patient.require(("flair", "t1", "t1ce", "t2"))


def test_two_files_for_one_modality(tmp_path):
    folder = touch(tmp_path / "p", "p_flair.nii.gz", "p_flair.nii", "p_t1.nii.gz", "p_t2.nii.gz")
    with pytest.raises(InputError, match="2 files match flair"):
        discover_patient(folder)


def test_empty_folder_and_unrelated_files(tmp_path):
    with pytest.raises(InputError, match="no NIfTI files"):
        discover_patient(touch(tmp_path / "empty"))
    with pytest.raises(InputError, match="no file matches"):
        discover_patient(touch(tmp_path / "other", "notes.nii.gz"))


def test_explicit_paths(tmp_path):
    touch(tmp_path, "a.nii.gz", "b.nii.gz", "c.nii.gz")
    patient = patient_from_paths({"flair": tmp_path / "a.nii.gz", "t1": tmp_path / "b.nii.gz",
                                  "t2": tmp_path / "c.nii.gz", "t1ce": None})
    assert patient.missing == ("t1ce",)
    assert patient.case_id == "a"
    with pytest.raises(InputError, match="file not found"):
        patient_from_paths({"flair": tmp_path / "nope.nii.gz"})


def test_cohort_nesting_sorting_and_depth(tmp_path):
    names = ("flair", "t1", "t1ce", "t2")
    touch(tmp_path / "MICCAI_BraTS2020_TrainingData" / "B_002", *[f"B_002_{m}.nii.gz" for m in names])
    touch(tmp_path / "MICCAI_BraTS2020_TrainingData" / "B_001", *[f"B_001_{m}.nii.gz" for m in names], "readme.txt")
    touch(tmp_path / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData" / "B_003", *[f"B_003_{m}.nii" for m in names])
    touch(tmp_path / "a" / "b" / "c" / "B_004", *[f"B_004_{m}.nii.gz" for m in names])
    cases = [p.case_id for p in discover_cohort(tmp_path)]
    assert cases == ["B_001", "B_002", "B_003"]
    with pytest.raises(InputError, match="no patient folders"):
        discover_cohort(touch(tmp_path / "nothing_here"))
