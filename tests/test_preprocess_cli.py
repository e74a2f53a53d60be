"""`recoseg preprocess` and `recoseg make-cohort`: cache, resume, config checks, bad input."""

import gzip
import json
import shutil

import numpy as np
import pytest

from conftest import TINY, run_cli, write_nifti
from recoseg_cli.data.synthetic import generate_patient, write_patient


@pytest.fixture()
def cohort(tmp_path):
    root = tmp_path / "cohort"
    for seed in range(3):
        case = f"Synth_{seed:05d}"
        write_patient(root / "nested" / case, case, generate_patient(seed, TINY), TINY.affine)
    return root


def test_version_and_help(capsys):
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.startswith("recoseg ")
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0 and "preprocess" in out


def test_make_cohort_writes_brats_layout_and_refuses_to_overwrite(tmp_path, capsys):
    code, _, _ = run_cli(["make-cohort", tmp_path / "c", "-n", "2", "--shape", "24x24x16", "-q"], capsys)
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "c" / "Synth_00001").iterdir()) == [
        f"Synth_00001_{m}.nii.gz" for m in ("flair", "seg", "t1", "t1ce", "t2")]
    code, _, err = run_cli(["make-cohort", tmp_path / "c", "-n", "2", "--shape", "24x24x16", "-q"], capsys)
    assert code == 2 and "already exists" in err


def test_preprocess_writes_manifest_and_resumes(cohort, tmp_path, capsys):
    cache = tmp_path / "cache"
    code, _, err = run_cli(["preprocess", cohort, "-o", cache, "--size", "32", "--val-fraction", "0.34"], capsys)
    assert code == 0, err
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["complete"] and manifest["config"]["size"] == 32
    assert [s["case_id"] for s in manifest["subjects"]] == ["Synth_00000", "Synth_00001", "Synth_00002"]
    assert sum(s["split"] == "val" for s in manifest["subjects"]) == 1
    with np.load(cache / "subjects" / "Synth_00001.npz") as data:
        assert data["images"].shape[1:] == (4, 32, 32) and set(np.unique(data["seg"])) <= {0, 1, 2, 4}
    first = cache / "subjects" / "Synth_00000.npz"
    stamp = first.stat().st_mtime_ns
    (cache / "subjects" / "Synth_00002.npz").unlink()
    code, _, err = run_cli(["preprocess", cohort, "-o", cache, "--size", "32", "--val-fraction", "0.34"], capsys)
    assert code == 0 and "2 already cached" in err
    assert first.stat().st_mtime_ns == stamp
    code, _, err = run_cli(["preprocess", cohort, "-o", cache, "--size", "48", "-q"], capsys)
    assert code == 2 and "another configuration" in err and "--overwrite" in err
    code, _, _ = run_cli(["preprocess", cohort, "-o", cache, "--size", "48", "--overwrite", "-q"], capsys)
    assert code == 0 and first.stat().st_mtime_ns != stamp


def break_patient(folder, problem):
    flair = next(folder.glob("*_flair.nii.gz"))
    if problem == "missing":
        next(folder.glob("*_t2.nii.gz")).unlink()
        return "missing t2"
    if problem == "duplicate":
        shutil.copy(flair, folder / flair.name.replace(".nii.gz", ".nii"))
        return "2 files match flair"
    if problem == "shape":
        write_nifti(next(folder.glob("*_t1.nii.gz")), np.ones((10, 10, 10), np.int16), TINY.affine)
        return "_t1.nii.gz: shape (10, 10, 10) differs from"
    if problem == "affine":
        write_nifti(next(folder.glob("*_t1.nii.gz")), np.ones(TINY.shape, np.int16), np.diag([2, 2, 2, 1.0]))
        return "_t1.nii.gz: affine differs"
    if problem == "truncated":
        flair.write_bytes(gzip.compress(gzip.decompress(flair.read_bytes()))[:2000])
        return "_flair.nii.gz"
    if problem == "not_nifti":
        flair.write_text("not an image")
        return "_flair.nii.gz: not a readable NIfTI"
    if problem == "four_d":
        write_nifti(flair, np.ones((*TINY.shape, 2), np.int16), TINY.affine)
        return "expected a 3D image"
    if problem == "nan":
        data = np.ones(TINY.shape, np.float32)
        data[0, 0, 0] = np.inf
        write_nifti(flair, data, TINY.affine)
        return "NaN or infinite"
    if problem == "labels":
        write_nifti(next(folder.glob("*_seg.nii.gz")), np.full(TINY.shape, 3, np.uint8), TINY.affine)
        return "labels [3] are not in the brats2020 scheme"
    if problem == "empty":
        write_nifti(next(folder.glob("*_t2.nii.gz")), np.zeros(TINY.shape, np.int16), TINY.affine)
        return "image is empty"
    raise ValueError(problem)


@pytest.mark.parametrize("problem", ["missing", "duplicate", "shape", "affine", "truncated", "not_nifti", "four_d",
                                     "nan", "labels", "empty"])
def test_bad_patient_gives_one_line_error_and_exit_2(cohort, tmp_path, capsys, problem):
    folder = cohort / "nested" / "Synth_00001"
    expected = break_patient(folder, problem)
    cache = tmp_path / "cache"
    code, out, err = run_cli(["preprocess", cohort, "-o", cache, "--size", "32", "-q"], capsys)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert expected in lines[0] and "Traceback" not in err
    assert not list(cache.glob("subjects/.*")), "no temporary files left behind"
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_empty_folder_and_unwritable_output(tmp_path, cohort, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["preprocess", tmp_path / "empty", "-o", tmp_path / "cache"], capsys)
    assert code == 2 and "no patient folders" in err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(["preprocess", cohort, "-o", blocker / "cache", "-q"], capsys)
    assert code == 2 and "file" in err and "Traceback" not in err
    code, _, err = run_cli(["preprocess", cohort, "-o", blocker, "-q"], capsys)
    assert code == 2 and "not a folder" in err
