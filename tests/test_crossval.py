"""Cross-validation: folds by patient, every case scored once by models that never saw it."""

import json

import numpy as np
import pytest
import torch

from conftest import TINY, run_cli
from recoseg_cli.cli_options import parse_source_weights
from recoseg_cli.crossval import POSTPROCESS_CANDIDATES, assign_folds
from recoseg_cli.data.clinical_variants import clinical_variant, source_case
from recoseg_cli.data.institutions import institution
from recoseg_cli.data.slices import SliceSet
from recoseg_cli.data.synthetic import generate_patient, write_patient
from recoseg_cli.errors import InputError
from recoseg_cli.training.seg_task import SegStageConfig, subject_weights


def test_folds_partition_the_patients():
    cases = [f"case{i:02d}" for i in range(22)]
    folds = assign_folds(cases, 5, seed=0)
    assert set(folds) == set(cases) and set(folds.values()) == set(range(5))
    sizes = sorted(list(folds.values()).count(f) for f in range(5))
    assert sizes == [4, 4, 4, 5, 5]
    assert assign_folds(list(reversed(cases)), 5, seed=0) == folds
    assert assign_folds(cases, 5, seed=1) != folds


def test_folds_are_stratified_by_institution():
    cases = ([f"Brats18_2013_{i}_1" for i in range(5)] + [f"Brats18_CBICA_A{i:02d}_1" for i in range(21)]
             + [f"Brats18_TCIA0{i % 4}_{100 + i}_1" for i in range(12)] + ["BraTS2021_00001"])
    assert [institution(c) for c in ("Brats18_2013_3_1", "Brats18_CBICA_ABM_1", "Brats18_TCIA10_628_1",
                                     "BraTS-GLI-00000-000")] == ["BraTS 2013", "CBICA", "TCIA", "other"]
    folds = assign_folds(cases, 5, seed=0)
    for name, count in (("BraTS 2013", 5), ("CBICA", 21), ("TCIA", 12)):
        per_fold = [sum(1 for c, f in folds.items() if f == fold and institution(c) == name) for fold in range(5)]
        assert sum(per_fold) == count and max(per_fold) - min(per_fold) <= 1, (name, per_fold)
    sizes = [list(folds.values()).count(f) for f in range(5)]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.slow
def test_crossval_scores_each_case_once_with_models_that_never_saw_it(tmp_path, capsys):
    for seed in range(3):
        case = f"Synth_{seed:05d}"
        write_patient(tmp_path / "cohort" / case, case, generate_patient(seed, TINY), TINY.affine)
    clinical_variant(tmp_path / "cohort" / "Synth_00000", tmp_path / "cohort", 1)  # trains with its source only
    out = tmp_path / "cv"
    code, stdout, err = run_cli(["crossval", "--data", tmp_path / "cohort", "-o", out, "--folds", "3",
                                 "--ddpm-steps", "2", "--seg-steps", "2", "--batch-size", "2", "--size", "32", "--device", "cpu",
                                 "--variants", "recoseg,modalities,ddmm-synth"], capsys)
    assert code == 0, err
    assert "fold 0: 2 training cases, 1 held out" in err and "fold 2 recoseg: scored Synth_" in err  # log lines
    results = json.loads((out / "results.json").read_text())
    for variant in ("recoseg", "modalities", "ddmm-synth"):
        scored = [case["case_id"] for case in results["variants"][variant]["cases"]]
        assert sorted(scored) == [f"Synth_{s:05d}" for s in range(3)]
    for fold in range(3):
        split = json.loads((out / f"fold{fold}" / "cases.json").read_text())
        sources = {source_case(c) for c in split["train"]}
        assert not sources & set(split["test"]) and len(sources) + len(split["test"]) == 3
        assert {results["folds"][c] for c in split["test"]} == {fold}
        assert ("Synth_00000__clinical1" in split["train"]) == ("Synth_00000" in split["train"])
        assert (out / f"fold{fold}" / "regressor" / "last.pt").is_file()
    case = results["variants"]["recoseg"]["cases"][0]
    assert len(case["postprocess"]) == len(POSTPROCESS_CANDIDATES)
    stage_one = results["stage_one"]
    assert sorted(c["case_id"] for c in stage_one["cases"]) == [f"Synth_{s:05d}" for s in range(3)]
    for name in ("synth", "l1", "t1"):
        assert stage_one[f"{name}_healthy_ssim"]["n"] == 3
    markdown = (out / "results.md").read_text()
    assert "recoseg, post-processing: none" in markdown and "| L1 regressor |" in markdown
    assert "| WT | " in markdown and "none (under 5 cases)" in markdown  # no bootstrap over 3 cases
    assert "| other | 3 |" in markdown  # per-institution table: synthetic case ids name no institution
    record = json.loads((out / "crossval.json").read_text())
    del record["batch_dice"]  # a run recorded before the option existed trained without it
    (out / "crossval.json").write_text(json.dumps(record))
    same = ["crossval", "--data", tmp_path / "cohort", "-o", out, "--folds", "3", "--ddpm-steps", "2", "--seg-steps",
            "2", "--batch-size", "2", "--size", "32", "--device", "cpu", "--variants", "recoseg,modalities,ddmm-synth",
            "-q"]
    code, _, err = run_cli(same, capsys)
    assert code == 0, err
    code, _, err = run_cli(same + ["--batch-dice"], capsys)
    assert code == 2 and "another configuration" in err
    code, _, err = run_cli(["crossval", "--data", tmp_path / "cohort", "-o", out, "--folds", "2", "--size", "32"],
                           capsys)
    assert code == 2 and "another configuration" in err
    no_l1 = tmp_path / "cv_no_l1"
    code, _, err = run_cli(["crossval", "--data", out / "cache", "-o", no_l1, "--folds", "3", "--ddpm-steps", "2",
                            "--seg-steps", "2", "--batch-size", "2", "--size", "32", "--device", "cpu",
                            "--variants", "recoseg", "--no-l1-reference", "--deep-supervision", "-q"], capsys)
    assert code == 0, err
    assert not list(no_l1.glob("fold*/regressor"))
    markdown = (no_l1 / "results.md").read_text()
    assert "| synthetic T1ce (DDPM, one-step) |" in markdown and "L1 regressor" not in markdown
    assert "deep supervision" in markdown
    assert torch.load(no_l1 / "fold0" / "recoseg" / "last.pt", weights_only=True)["model_config"]["deep_supervision"]
    from_l1 = tmp_path / "cv_residual_from_l1"
    code, _, err = run_cli(["crossval", "--data", out / "cache", "-o", from_l1, "--folds", "3", "--ddpm-steps", "2",
                            "--seg-steps", "2", "--batch-size", "2", "--size", "32", "--device", "cpu",
                            "--variants", "recoseg", "--no-l1-reference", "--residual-from", "regressor", "-q"],
                           capsys)
    assert code == 0, err
    segmenter = torch.load(from_l1 / "fold0" / "recoseg" / "last.pt", weights_only=True)
    assert segmenter["extra"]["ddpm"]["stage"] == "regressor"  # its residual came from the fold's L1 regressor
    assert not list(from_l1.glob("fold*/ddpm"))  # no DDPM is trained that no segmenter reads
    markdown = (from_l1 / "results.md").read_text()
    assert "residual from the L1 regressor" in markdown and "Per fold: L1 regressor 2 steps" in markdown
    assert "| L1 regressor |" in markdown and "DDPM, one-step" not in markdown
    code, _, err = run_cli(["crossval", "--data", out / "cache", "-o", tmp_path / "cv5", "--residual-from", "t1"],
                           capsys)
    assert code == 2 and "--residual-from" in err
    code, _, err = run_cli(["crossval", "--data", tmp_path / "cohort", "-o", tmp_path / "cv4", "--folds", "4",
                            "--size", "32"], capsys)
    assert code == 2 and "--folds 4" in err


def test_source_weights_make_an_institutions_slices_rarer():
    subjects = np.repeat([0, 1], 100)  # slices of a TCIA case, then of a CBICA case; tumour on every 4th
    seg = np.zeros((200, 4, 4), np.uint8)
    seg[::4, 1, 1] = 2
    slices = SliceSet(np.zeros((200, 4, 4, 4), np.float16), np.ones((200, 4, 4), bool), seg, subjects,
                      ["Brats18_TCIA01_1_1", "Brats18_CBICA_AAA_1"])
    weights = subject_weights(SegStageConfig(source_weights={"TCIA": 0.25}), slices.case_ids)
    assert weights.tolist() == [0.25, 1.0]
    for foreground in (0.0, 0.5):
        index, _ = slices.random_index(np.random.default_rng(0), 20000, foreground, weights)
        assert abs((subjects[index] == 0).mean() - 0.2) < 0.02  # 0.25 : 1 -> a fifth of the draws
    assert parse_source_weights(["TCIA=0.5", "CBICA=2"]) == (("TCIA", 0.5), ("CBICA", 2.0))
    with pytest.raises(InputError, match="NAME one of BraTS 2013, CBICA, TCIA"):
        parse_source_weights(["Oxford=1"])


def test_core_foreground_over_samples_the_slices_holding_tumour_core():
    seg = np.zeros((100, 4, 4), np.uint8)
    seg[:40, 0, 0] = 2  # edema on 40 slices, necrosis or enhancing tumour on 10 of them
    seg[:5, 1, 1], seg[5:10, 1, 1] = 1, 4
    slices = SliceSet(np.zeros((100, 4, 4, 4), np.float16), np.ones((100, 4, 4), bool), seg, np.zeros(100, int),
                      ["Brats18_CBICA_AAA_1"])
    core = {"whole": 0.0, "core": 0.0}
    for region in core:
        index, _ = slices.random_index(np.random.default_rng(0), 20000, 0.5, foreground_region=region)
        core[region] = (index < 10).mean()
    assert abs(core["whole"] - (0.5 * 10 / 40 + 0.5 * 0.1)) < 0.02
    assert abs(core["core"] - (0.5 + 0.5 * 0.1)) < 0.02


def test_quick_is_a_smoke_run_over_the_first_six_cases(tmp_path, capsys):
    for seed in range(7):
        case = f"Synth_{seed:05d}"
        write_patient(tmp_path / "cohort" / case, case, generate_patient(seed, TINY), TINY.affine)
    code, out, err = run_cli(["crossval", "--data", tmp_path / "cohort", "-o", tmp_path / "run", "--quick", "-q"],
                             capsys)
    assert code == 0, err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["config"]["folds"] == 2 and results["config"]["seg_steps"] == 5
    assert results["cases"] == 6 and set(results["variants"]) == {"recoseg"}  # the seventh left out
