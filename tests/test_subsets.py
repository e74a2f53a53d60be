"""Exams holding any subset of the four sequences with FLAIR or T2 among them."""

import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import recoseg_cli
from conftest import run_cli
from recoseg_cli.constants import MODALITIES
from recoseg_cli.errors import InputError
from recoseg_cli.io.discovery import discover_patient
from recoseg_cli.pipeline import (ANY_SUBSET_CHANNELS, DEFAULT_CHANNELS, assemble, prepare_patient, presence,
                                  residual)
from recoseg_cli.preprocess import BACKGROUND, PreprocessConfig
from recoseg_cli.training.seg_task import dropout_subsets, random_presence

REAL_CASES = Path(__file__).resolve().parents[2] / "shared" / "real" / "cases"
CASE = "Brats18_TCIA03_265_1"
needs_real = pytest.mark.skipif(not REAL_CASES.is_dir(), reason="the real BraTS cases are not beside this checkout")


def keep(folder: Path, roles: tuple[str, ...]) -> Path:
    """Delete the patient's images of every other role (the seg stays)."""
    for role in MODALITIES:
        for path in folder.glob(f"*_{role}.nii.gz") if role not in roles else ():
            path.unlink()
    return folder


def test_missing_sequences_are_background_with_their_presence_flag_off():
    rng = np.random.default_rng(0)
    images = rng.uniform(-0.5, 0.5, (2, 4, 8, 8)).astype(np.float32)
    synth, brain = rng.uniform(-0.5, 0.5, (2, 8, 8)).astype(np.float32), np.ones((2, 8, 8), bool)
    flags = np.array([[True, True, False, True], [True, False, True, False]])  # no T1ce; FLAIR + T1ce
    x = assemble(images, brain, ANY_SUBSET_CHANNELS, synth, flags)
    plane = {name: x[:, i] for i, name in enumerate(ANY_SUBSET_CHANNELS)}
    assert np.array_equal(plane["t1ce"][0], synth[0])  # FLAIR, T1 and T2 there: the synthetic T1ce stands in
    assert np.array_equal(plane["t1ce"][1], images[1, 2])
    assert np.all(plane["t1"][1] == BACKGROUND) and np.all(plane["t2"][1] == BACKGROUND)
    assert np.all(plane["residual"] == 0)  # the residual needs all four sequences
    assert plane["has_t1ce"][:, 0, 0].tolist() == [0, 1] and plane["has_t2"][:, 0, 0].tolist() == [1, 0]
    full = assemble(images, brain, ANY_SUBSET_CHANNELS, synth)
    assert np.allclose(full[:, 4], residual(images[:, 2], synth, brain)) and np.all(full[:, 5:] == 1)
    no_t2 = assemble(images, brain, ANY_SUBSET_CHANNELS, None, presence(2, ("flair", "t1", "t1ce")))
    assert np.all(no_t2[:, 3] == BACKGROUND) and np.all(no_t2[:, 4] == 0)  # no stage 1 needed without all three


def test_training_draws_every_set_holding_flair_or_t2_and_the_full_set_most():
    subsets = dropout_subsets(ANY_SUBSET_CHANNELS)
    assert len(subsets) == 11 and all({"flair", "t2"} & set(s) for s in subsets)
    assert ("flair", "t1", "t1ce", "t2") not in subsets and ("t1", "t1ce") not in subsets
    assert dropout_subsets(DEFAULT_CHANNELS) == [("flair", "t1", "t2")]  # without flags only T1ce may be missing
    flags = random_presence(np.random.default_rng(0), 4000, 0.4, subsets)
    assert abs((~flags.all(1)).mean() - 0.4) < 0.03 and flags[:, [0, 3]].any(1).all()


def test_a_patient_is_prepared_from_the_sequences_it_holds(tiny_patient):
    prepared = prepare_patient(discover_patient(keep(tiny_patient, ("flair", "t1ce"))), PreprocessConfig(size=32))
    assert prepared.present == ("flair", "t1ce") and prepared.missing == ("t1", "t2")
    assert prepared.sliced.images.shape[1] == 4 and np.all(prepared.sliced.images[:, [1, 3]] == BACKGROUND)
    assert not prepared.has_conditions


def test_any_subset_weights_segment_flair_and_t1ce_onto_the_input_grid(tiny_patient, tiny_weights, tmp_path, capsys):
    folder = keep(tiny_patient, ("flair", "t1ce"))
    output, report = tmp_path / "m.nii.gz", tmp_path / "r.json"
    code, _, err = run_cli(["segment", folder, "-o", output, "--weights", tiny_weights["subsets"], "--report", report,
                            "--save-residual", "--overlay", tmp_path / "o.png", "-q"], capsys)
    assert code == 0, err
    assert "missing T1, T2: segmented from FLAIR, T1CE; no residual (it needs all four sequences)" in err
    sequences = json.loads(report.read_text())["sequences"]
    assert sequences["used"] == ["flair", "t1ce"] and sequences["missing"] == ["t1", "t2"]
    flair = nib.load(str(next(folder.glob("*_flair.nii.gz"))))
    mask = nib.load(str(output))
    assert mask.shape == flair.shape and np.allclose(mask.affine, flair.affine)
    assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1, 2, 4}


def test_weights_without_flags_refuse_a_subset_in_one_line_naming_the_model_that_takes_it(tiny_patient, tiny_weights,
                                                                                           tmp_path, capsys):
    code, _, err = run_cli(["segment", keep(tiny_patient, ("flair", "t1ce")), "-o", tmp_path / "m.nii.gz",
                            "--weights", tiny_weights["seg"], "-q"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "missing t1, t2" in err and "takes any set holding FLAIR or T2" in err
    assert not (tmp_path / "m.nii.gz").exists()


def test_a_folder_with_only_a_t1_is_refused_in_one_line(tiny_patient, tiny_weights, tmp_path, capsys):
    code, _, err = run_cli(["segment", keep(tiny_patient, ("t1",)), "-o", tmp_path / "m.nii.gz", "--weights",
                            tiny_weights["subsets"], "-q"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "holds T1 but neither FLAIR nor T2" in err and not (tmp_path / "m.nii.gz").exists()
    with pytest.raises(InputError, match="neither FLAIR nor T2"):
        recoseg_cli.Segmenter(tiny_weights["subsets"], "cpu")(tiny_patient)


def test_explicit_paths_take_any_subset(tiny_patient, tiny_weights, tmp_path, capsys):
    paths = ["--t2", next(tiny_patient.glob("*_t2.nii.gz")), "--t1", next(tiny_patient.glob("*_t1.nii.gz"))]
    code, _, err = run_cli(["segment", "-o", tmp_path / "m.nii.gz", "--weights", tiny_weights["subsets"], "-q",
                            *paths], capsys)
    assert code == 0 and "missing FLAIR, T1CE" in err


@needs_real
@pytest.mark.slow
def test_normalized_inputs_segment_like_raw_intensities(tmp_path):
    """Images z-scored inside the brain (negative values, background 0) give the mask of the raw images."""
    folder = tmp_path / CASE
    folder.mkdir()
    shutil.copy(REAL_CASES / CASE / f"{CASE}_seg.nii.gz", folder)
    for role in MODALITIES:
        source = nib.load(str(REAL_CASES / CASE / f"{CASE}_{role}.nii.gz"))
        data = np.asarray(source.dataobj).astype(np.float32)
        brain = data != 0
        data[brain] = (data[brain] - data[brain].mean()) / data[brain].std()
        nib.save(nib.Nifti1Image(data, source.affine), str(folder / f"{CASE}_{role}.nii.gz"))
    segmenter = recoseg_cli.Segmenter(device="cpu")
    raw, normalized = segmenter(REAL_CASES / CASE), segmenter(folder)
    for region in ("whole", "core", "enhancing"):
        assert normalized.metrics[region]["dice"] >= raw.metrics[region]["dice"] - 0.01, region


def test_the_default_model_hands_an_exam_it_cannot_take_to_the_bundled_model_that_takes_it(tiny_patient, tmp_path,
                                                                                            capsys):
    segmenter = recoseg_cli.Segmenter(device="cpu")
    assert segmenter.for_patient(discover_patient(tiny_patient)) is segmenter
    keep(tiny_patient, ("flair", "t1"))
    result = segmenter(tiny_patient)
    assert result.segmenter.weights.path.name == "recoseg_any_subset.pt" and result.labels.shape == (48, 48, 32)
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "m.nii.gz", "--report", tmp_path / "r.json",
                            "-q"], capsys)
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and report["weights"].endswith("recoseg_any_subset.pt") and report["sequences"]["used"] == [
        "flair", "t1"]
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "n.nii.gz", "--model", "accurate"], capsys)
    assert code == 2 and "--model any-subset" in err  # a model asked for by name is not swapped


def test_an_exam_holding_flair_and_t1ce_goes_to_their_specialist_which_reads_those_two(tiny_patient, tmp_path,
                                                                                      capsys):
    specialist = recoseg_cli.Segmenter(device="cpu", model="flair+t1ce")
    assert specialist.required_sequences == specialist.input_sequences == ("flair", "t1ce")
    keep(tiny_patient, ("flair", "t1", "t1ce"))  # no T2
    assert recoseg_cli.Segmenter(device="cpu").for_patient(discover_patient(tiny_patient)).weights.path.name == \
        "recoseg_flair_t1ce.pt"
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "m.nii.gz", "--report", tmp_path / "r.json",
                            "-q"], capsys)
    sequences = json.loads((tmp_path / "r.json").read_text())["sequences"]
    assert code == 0 and sequences["used"] == ["flair", "t1ce"] and sequences["not_read"] == ["t1"]
    assert sequences["missing"] == ["t2"] and set(sequences["expected_dice"]) == {"whole", "core", "enhancing"}
    assert "missing T2: segmented from FLAIR, T1CE; T1 not read by these weights; no residual" in err
    assert re.search(r"cross-validated Dice for this set: WT 0\.\d\d, TC 0\.\d\d, ET 0\.\d\d", err)
    keep(tiny_patient, ("flair", "t1"))
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "n.nii.gz", "--model", "flair+t1ce"], capsys)
    assert code == 2 and "missing t1ce" in err and "need FLAIR, T1CE" in err


def test_an_exam_without_contrast_goes_to_the_no_contrast_model_not_to_a_synthetic_t1ce(tiny_patient, tmp_path,
                                                                                         capsys):
    specialist = recoseg_cli.Segmenter(device="cpu", model="flair+t1+t2")
    assert specialist.required_sequences == specialist.input_sequences == ("flair", "t1", "t2")
    keep(tiny_patient, ("flair", "t1", "t2"))
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "m.nii.gz", "--report", tmp_path / "r.json",
                            "-q"], capsys)
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and report["weights"].endswith("recoseg_flair_t1_t2.pt")
    assert report["sequences"]["used"] == ["flair", "t1", "t2"] and report["sequences"]["missing"] == ["t1ce"]
    assert "synthetic T1ce" not in err and "estimates without a T1ce" in err
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "n.nii.gz", "--model", "accurate", "-q"],
                           capsys)
    assert code == 0 and "the synthetic T1ce in place of the T1ce" in err  # asked for by name, stage 1 stands in
