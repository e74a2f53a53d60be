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
    with pytest.raises(InputError, match=r"missing t1ce; found flair p_flair.nii.gz, t1 p_t1.nii.gz, t2 p_t2.nii.gz; "
                                         r"looked for t1ce: names ending in t1ce/t1c/t1gd"):
        patient.require(("flair", "t1", "t1ce", "t2"))


def test_two_files_for_one_modality(tmp_path):
    folder = touch(tmp_path / "p", "p_flair.nii.gz", "p_flair.nii", "p_t1.nii.gz", "p_t2.nii.gz")
    with pytest.raises(InputError, match="2 files match flair"):
        discover_patient(folder)


def test_empty_folder_and_unrelated_files(tmp_path):
    with pytest.raises(InputError, match="no NIfTI files"):
        discover_patient(touch(tmp_path / "empty"))
    with pytest.raises(InputError, match="no file is named as a modality \\(notes.nii.gz\\)"):
        discover_patient(touch(tmp_path / "other", "notes.nii.gz"))


def test_explicit_paths(tmp_path):
    touch(tmp_path, "a.nii.gz", "b.nii.gz", "c.nii.gz")
    patient = patient_from_paths({"flair": tmp_path / "a.nii.gz", "t1": tmp_path / "b.nii.gz",
                                  "t2": tmp_path / "c.nii.gz", "t1ce": None})
    assert patient.missing == ("t1ce",)
    assert patient.case_id == tmp_path.name  # no role in the names: the folder names the case
    touch(tmp_path, "P7_flair.nii.gz", "P7_t2.nii.gz")
    named = patient_from_paths({"flair": tmp_path / "P7_flair.nii.gz", "t2": tmp_path / "P7_t2.nii.gz"})
    assert named.case_id == "P7"
    assert patient_from_paths({"flair": tmp_path / "P7_flair.nii.gz"}, case_id="sub-01").case_id == "sub-01"
    with pytest.raises(InputError, match=r"^missing t1: --t1 is required \(or give a patient folder\)$"):
        named.require(("flair", "t1", "t2"))
    with pytest.raises(InputError, match="file not found"):
        patient_from_paths({"flair": tmp_path / "nope.nii.gz"})


def test_a_folder_missing_modalities_lists_each_and_what_was_found(tmp_path):
    folder = touch(tmp_path / "p", "p_flair.nii.gz", "p_t2.nii.gz")
    with pytest.raises(InputError, match=r"p: missing t1 \(t1ce also absent, optional\); found flair p_flair.nii.gz, "
                                         r"t2 p_t2.nii.gz; looked for t1: names ending in"):
        discover_patient(folder).require(("flair", "t1", "t2"))


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


def roles_of(patient) -> dict[str, str]:
    return {m: p.name for m, p in patient.images.items()}


def test_plain_names_in_a_folder_of_their_own(tmp_path):
    folder = touch(tmp_path / "exam", "flair.nii.gz", "t1.nii.gz", "t1c.nii.gz", "t2.nii.gz")
    patient = discover_patient(folder)
    assert roles_of(patient) == {"flair": "flair.nii.gz", "t1": "t1.nii.gz", "t1ce": "t1c.nii.gz", "t2": "t2.nii.gz"}
    assert patient.case_id == "exam"
    assert patient.scheme == "aliases"


def test_toolkit_suffixes_and_short_names(tmp_path):
    folder = touch(tmp_path / "TCGA-DU-7294", *[f"TCGA-DU-7294_{m}_bet.nii.gz" for m in ("fla", "t1", "t1c", "t2")],
                   "TCGA-DU-7294_brain_mask.nii.gz")
    patient = discover_patient(folder)
    assert roles_of(patient)["flair"] == "TCGA-DU-7294_fla_bet.nii.gz"
    assert roles_of(patient)["t1ce"] == "TCGA-DU-7294_t1c_bet.nii.gz"
    assert roles_of(patient)["t1"] == "TCGA-DU-7294_t1_bet.nii.gz"
    assert patient.case_id == "TCGA-DU-7294"
    assert patient.seg is None


@pytest.mark.parametrize("names, expected", [
    (("P7_T2-FLAIR.nii", "P7_T1_pre.nii", "P7_T1_Gd.nii", "P7_T2W.nii"), ("flair", "t1", "t1ce", "t2")),
    (("x_FLAIR.nii.gz", "x_T1w.nii.gz", "x_ce_T1.nii.gz", "x_t2w.nii.gz"), ("flair", "t1", "t1ce", "t2")),
    (("a-t2f.nii.gz", "a-t1n.nii.gz", "a-t1post.nii.gz", "a-t2.nii.gz"), ("flair", "t1", "t1ce", "t2")),
])
def test_aliases_by_whole_tokens_and_case_insensitive(tmp_path, names, expected):
    patient = discover_patient(touch(tmp_path / "p", *names))
    assert [patient.images[m].name for m in expected] == list(names)


def test_bids_names_with_session(tmp_path):
    anat = touch(tmp_path / "sub-01" / "ses-pre" / "anat", "sub-01_ses-pre_FLAIR.nii.gz", "sub-01_ses-pre_T1w.nii.gz",
                 "sub-01_ses-pre_ce-gadolinium_T1w.nii.gz", "sub-01_ses-pre_T2w.nii.gz")
    patient = discover_patient(anat)
    assert patient.images["t1"].name == "sub-01_ses-pre_T1w.nii.gz"
    assert patient.images["t1ce"].name == "sub-01_ses-pre_ce-gadolinium_T1w.nii.gz"
    assert patient.case_id == "sub-01_ses-pre"
    assert patient.scheme == "bids"
    assert [p.case_id for p in discover_cohort(tmp_path)] == ["sub-01_ses-pre"]


def test_ambiguous_folder_names_both_files_and_the_way_out(tmp_path):
    folder = touch(tmp_path / "p", "t1.nii.gz", "T1w.nii.gz", "flair.nii.gz", "t2.nii.gz")
    with pytest.raises(InputError, match=r"2 files match t1: T1w.nii.gz, t1.nii.gz; .*--flair/--t1/--t1ce/--t2"):
        discover_patient(folder)


def test_a_case_id_token_is_not_a_modality(tmp_path):
    folder = touch(tmp_path / "p", "T2_study_flair.nii.gz", "T2_study_t1.nii.gz", "T2_study_t2.nii.gz")
    patient = discover_patient(folder)
    assert patient.case_id == "T2_study"
    assert patient.images["t2"].name == "T2_study_t2.nii.gz"
    assert patient.missing == ("t1ce",)


def test_files_that_share_no_case_prefix_take_the_folder_name(tmp_path):
    folder = touch(tmp_path / "TCGA-06-0143", "MRHR_FLAIR_AX_SE_IR_5_flair.nii.gz", "SAG_T1_3D_t1.nii.gz",
                   "AX_T1_POST_t1ce.nii.gz", "AX_T2_FSE_t2.nii.gz")
    assert discover_patient(folder).case_id == "TCGA-06-0143"
    shared = touch(tmp_path / "folder", "P7_flair.nii.gz", "P7_t1.nii.gz", "P7_t1ce.nii.gz", "P7_t2.nii.gz")
    assert discover_patient(shared).case_id == "P7"
