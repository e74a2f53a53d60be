"""DICOM studies in, the mask on the T1ce series' grid and a DICOM SEG out; roles from the series' tags; bad
studies refused in one line."""

import json
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

import recoseg_cli
from conftest import TINY, run_cli, write_nifti
from recoseg_cli.data.dicom_study import SERIES_TAGS, StudyIds, write_study
from recoseg_cli.dicom.roles import assign_roles, role_of
from recoseg_cli.dicom.segmentation import write_segmentation
from recoseg_cli.dicom.study import read_study
from recoseg_cli.dicom.volume import read_series
from recoseg_cli.errors import InputError
from recoseg_cli.metrics import dice

REAL_CASES = Path(__file__).resolve().parents[2] / "shared" / "real" / "cases"
CASE = "Brats18_TCIA03_265_1"
ROLES = ("flair", "t1", "t1ce", "t2")


def tiny_exam(folder: Path, tiny_volumes, affine=None) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {role: folder / f"P_{role}.nii.gz" for role in ROLES}
    for role, path in paths.items():
        write_nifti(path, (tiny_volumes[role] * 100).astype(np.float32), TINY.affine if affine is None else affine)
    return paths


def test_roles_are_read_from_the_tags_and_the_localizer_and_text_files_are_skipped(tmp_path, tiny_volumes):
    uids = write_study(tiny_exam(tmp_path / "nifti", tiny_volumes), tmp_path / "study")
    study = read_study(tmp_path / "study")
    assert [s.number for s in study.series] == [1, 3, 4, 5, 7] and role_of(study.series[0]) is None
    roles = assign_roles(study, {})
    assert {role: s.uid for role, s in roles.items()} == uids
    assert assign_roles(study, {"t1": "7", "t1ce": "3"})["t1"].uid == uids["t1ce"]  # a user's choice wins


def test_the_stacked_series_lies_on_the_grid_of_its_slices_positions(tmp_path, tiny_volumes):
    oblique = TINY.affine.copy()  # rotated 20 degrees about z: an oblique acquisition
    angle = np.deg2rad(20)
    oblique[:3, :3] = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                                [0, 0, 1]]) @ TINY.affine[:3, :3]
    source = tiny_exam(tmp_path / "nifti", tiny_volumes, oblique)
    write_study(source, tmp_path / "study")
    t1ce = assign_roles(read_study(tmp_path / "study"), {})["t1ce"]
    volume, original = read_series(t1ce), sitk.ReadImage(str(source["t1ce"]))
    corners = [(0, 0, 0), (47, 0, 0), (0, 47, 0), (0, 0, 31), (47, 47, 31)]
    for corner in corners:  # world coordinates of voxel centres agree with the NIfTI the study was made from
        assert np.allclose(volume.TransformIndexToPhysicalPoint(corner), original.TransformIndexToPhysicalPoint(corner),
                           atol=1e-3)
    assert np.array_equal(sitk.GetArrayFromImage(volume), sitk.GetArrayFromImage(original).astype(np.int16))


def test_bad_studies_are_refused_in_one_line(tmp_path, tiny_volumes):
    exam = tiny_exam(tmp_path / "nifti", tiny_volumes)
    write_study(exam, tmp_path / "two", ids=StudyIds("A"), seed=1)
    write_study(exam, tmp_path / "two", ids=StudyIds("B"), seed=2)
    with pytest.raises(InputError, match=r"two: holds 2 patients \(A, B\)"):
        read_study(tmp_path / "two")
    ambiguous = dict(SERIES_TAGS, t2=dict(SERIES_TAGS["t1"], number=9, description="T1 SE SAG"))
    write_study(exam, tmp_path / "ambiguous", tags=ambiguous)
    with pytest.raises(InputError, match=r"several T1 series \(3 \(T1 SE AX\), 9 \(T1 SE SAG\)\).*choose with --t1"):
        assign_roles(read_study(tmp_path / "ambiguous"), {})
    write_study(exam, tmp_path / "gap")
    t2 = assign_roles(read_study(tmp_path / "gap"), {})["t2"]
    middle = t2.sorted_files()[len(t2.files) // 2]
    middle.unlink()
    with pytest.raises(InputError, match=r"series 4 \(T2 TSE AX\): uneven slice spacing .*missing slices"):
        assign_roles(read_study(tmp_path / "gap"), {})["t2"].sorted_files()
    middle.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage")  # a corrupt file: named and skipped
    assert any(str(middle) in w and "skipped" in w for w in read_study(tmp_path / "gap").warnings)
    whole = assign_roles(read_study(tmp_path / "gap"), {})["flair"].sorted_files()[3]
    whole.write_bytes(whole.read_bytes()[:-500])  # a transfer cut short: the series' pixels cannot be read
    with pytest.raises(InputError, match=r"series 5 \(FLAIR AX\): its pixels cannot be read"):
        read_series(assign_roles(read_study(tmp_path / "gap"), {})["flair"])


def test_dicom_seg_reads_back_as_the_mask_on_the_t1ce_instances(tmp_path, tiny_volumes):
    import highdicom as hd

    exam = tiny_exam(tmp_path / "nifti", tiny_volumes)
    write_study(exam, tmp_path / "study")
    t1ce = assign_roles(read_study(tmp_path / "study"), {})["t1ce"]
    labels = np.zeros(tiny_volumes["t1ce"].shape, np.uint8)
    labels[10:20, 10:20, 5:9], labels[12:16, 12:16, 6:8], labels[30:34, 30:40, 20:22] = 2, 4, 1
    write_nifti(tmp_path / "mask.nii.gz", labels, TINY.affine)
    write_segmentation(tmp_path / "mask.nii.gz", t1ce, tmp_path / "seg.dcm")
    seg = hd.seg.segread(tmp_path / "seg.dcm")
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["NCR/NET", "ED", "ET"]
    colours = [tuple(s.RecommendedDisplayCIELabValue) for s in seg.SegmentSequence]  # viewers show the overlay's
    assert len(set(colours)) == 3
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == t1ce.uid
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in t1ce.sorted_files()]
    assert seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID and seg.PatientID == sources[0].PatientID
    frames = seg.get_pixels_by_source_instance(source_sop_instance_uids=[s.SOPInstanceUID for s in sources],
                                               combine_segments=True, relabel=True)
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "mask.nii.gz")))
    assert np.array_equal(np.choose(frames, [0, 1, 2, 4]), expected)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_CASES.is_dir(), reason="the real BraTS cases are not beside this checkout")
def test_a_dicom_study_segments_as_its_nifti_case_does(tmp_path, capsys):
    write_study({role: REAL_CASES / CASE / f"{CASE}_{role}.nii.gz" for role in ROLES}, tmp_path / "study")
    output, seg = tmp_path / "mask.nii.gz", tmp_path / "seg.dcm"
    code, _, err = run_cli(["segment", tmp_path / "study", "-o", output, "--dicom-seg", seg, "--device", "cpu"],
                           capsys)
    assert code == 0, err
    assert "T1CE = series 7 (T1 MPRAGE POST)" in err and seg.is_file()
    assert run_cli(["segment", REAL_CASES / CASE, "-o", tmp_path / "nifti.nii.gz", "--device", "cpu", "-q"],
                   capsys)[0] == 0
    from_dicom, from_nifti = (np.asarray(nib.load(str(p)).dataobj) for p in (output, tmp_path / "nifti.nii.gz"))
    assert np.allclose(nib.load(str(output)).affine, nib.load(str(REAL_CASES / CASE / f"{CASE}_t1ce.nii.gz")).affine)
    assert dice(from_dicom > 0, from_nifti > 0) >= 0.99
    result = recoseg_cli.Segmenter(device="cpu")(tmp_path / "study")  # the API reads the study the same way
    assert np.array_equal(result.labels, from_dicom)


def test_a_study_without_a_flair_is_refused_by_the_cli(tmp_path, tiny_volumes, tiny_weights, capsys):
    exam = tiny_exam(tmp_path / "nifti", tiny_volumes)
    del exam["flair"]
    write_study(exam, tmp_path / "study")
    code, _, err = run_cli(["segment", tmp_path / "study", "-o", tmp_path / "m.nii.gz", "--weights",
                            tiny_weights["seg"]], capsys)
    assert code == 2 and "no FLAIR series among 1 (3-plane localizer), 3 (T1 SE AX)" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "m.nii.gz").exists()


def test_a_folder_of_studies_is_a_cohort_named_by_patient_id(tmp_path, tiny_volumes, tiny_weights, capsys):
    exam = tiny_exam(tmp_path / "nifti", tiny_volumes)
    for seed, patient in enumerate(("PAT-1", "PAT-2")):
        write_study(exam, tmp_path / "studies" / f"export{seed}", ids=StudyIds(patient), seed=seed)
    code, _, err = run_cli(["segment", tmp_path / "studies", "-o", tmp_path / "masks", "--weights",
                            tiny_weights["seg"], "--report", tmp_path / "cohort.json", "-q"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["PAT-1.nii.gz", "PAT-2.nii.gz"]
    cases = json.loads((tmp_path / "cohort.json").read_text())["cases"]
    assert [c["dicom"]["series"]["t1ce"]["number"] for c in cases] == [7, 7]
    write_study(exam, tmp_path / "studies" / "export0", ids=StudyIds("PAT-3"), seed=5)  # two patients in one folder
    code, _, err = run_cli(["segment", tmp_path / "studies", "-o", tmp_path / "again", "--weights",
                            tiny_weights["seg"], "-q"], capsys)
    assert code == 2 and "holds 3 patients (PAT-1, PAT-2, PAT-3)" in err and not (tmp_path / "again").exists()


def test_tilted_and_duplicated_stacks_are_refused(tmp_path, tiny_volumes):
    write_study(tiny_exam(tmp_path / "nifti", tiny_volumes), tmp_path / "study", localizer=False)
    t1 = assign_roles(read_study(tmp_path / "study"), {})["t1"]
    order = np.argsort([p[2] for p in t1.positions])
    tilted = [p + np.array([0.0, 0.2 * rank, 0.0]) for p, rank in zip(t1.positions, np.argsort(order))]
    with pytest.raises(InputError, match=r"series 3 \(T1 SE AX\): slices are not stacked .*gantry tilt"):
        replace(t1, positions=tilted).sorted_files()
    with pytest.raises(InputError, match="several images at one position"):
        replace(t1, positions=[t1.positions[0]] * len(t1.positions)).sorted_files()


def test_make_dicom_writes_a_study_that_segment_reads_back_with_three_series(tiny_patient, tiny_weights, tmp_path,
                                                                              capsys):
    next(tiny_patient.glob("*_t1.nii.gz")).unlink()  # FLAIR, T1ce and T2: a study of three series
    code, _, err = run_cli(["make-dicom", tiny_patient, "-o", tmp_path / "study", "--patient-id", "P-7"], capsys)
    assert code == 0, err
    study = read_study(tmp_path / "study")
    assert sorted(assign_roles(study, {})) == ["flair", "t1ce", "t2"]
    code, _, err = run_cli(["make-dicom", tiny_patient, "-o", tmp_path / "study"], capsys)
    assert code == 2 and "exists and is not an empty folder" in err
    code, _, err = run_cli(["segment", tmp_path / "study", "-o", tmp_path / "m.nii.gz", "--weights",
                            tiny_weights["subsets"], "--report", tmp_path / "r.json", "-q"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["sequences"]["missing"] == ["t1"]
    code, _, err = run_cli(["segment", tmp_path / "study", "-o", tmp_path / "n.nii.gz", "--weights",
                            tiny_weights["seg"]], capsys)
    assert code == 2 and "no T1 series among" in err and len(err.strip().splitlines()) == 1
