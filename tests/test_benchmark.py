"""`recoseg benchmark`: the 3D baseline's sliding window, and the whole study at --quick budgets."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from conftest import run_cli, write_nifti
from recoseg_cli.models.unet import UNet, UNetConfig
from recoseg_cli.networks import predict_volume, window_starts


@pytest.mark.parametrize("length,size", [(10, 4), (8, 8), (5, 8), (17, 6)])
def test_windows_cover_every_position(length, size):
    starts = window_starts(length, size, 0.5)
    covered = np.zeros(max(length, size), bool)
    for start in starts:
        assert 0 <= start and start + size <= max(length, size)
        covered[start:start + size] = True
    assert covered[:length].all()


def test_sliding_window_matches_one_pass_and_handles_small_volumes():
    torch.manual_seed(0)
    model = UNet(UNetConfig(2, 3, (4, 8), time_embedding=False, attention=False, dims=3)).eval()
    volume = np.random.default_rng(0).normal(size=(2, 8, 16, 16)).astype(np.float32)
    whole = predict_volume(model, volume, (8, 16, 16), torch.device("cpu"), bf16=False)
    with torch.no_grad():
        direct = model(torch.from_numpy(volume)[None])[0].numpy()
    np.testing.assert_allclose(whole, direct, atol=1e-5)
    tiled = predict_volume(model, volume, (4, 8, 8), torch.device("cpu"), bf16=False)
    assert tiled.shape == (3, 8, 16, 16) and np.isfinite(tiled).all()
    small = predict_volume(model, volume[:, :3, :5, :6], (4, 8, 8), torch.device("cpu"), bf16=False)
    assert small.shape == (3, 3, 5, 6)


@pytest.mark.slow
def test_quick_benchmark_writes_every_output(tmp_path, capsys):
    out = tmp_path / "bench"
    code, _, err = run_cli(["benchmark", "--quick", "-o", out, "-q"], capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    names = {s["name"] for s in results["study"]["systems"]}
    assert {"UNet2D", "UNet3D", "DDMM-Synth", "ReCoSeg", "T1ce - T1 subtraction", "Regressor residual",
            "ReCoSeg, T1ce missing", "UNet2D without T1ce", "ReCoSeg, 10% labels"} <= names
    assert {row["region"] for row in results["rows"]} == {"whole", "core", "enhancing"}
    for row in results["rows"]:
        assert 0.0 <= row["dice"] <= 1.0 and 0.0 <= row["slice_dice"] <= 1.0
    with open(out / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == len(results["rows"])
    table = (out / "results.md").read_text()
    recoseg = next(r for r in results["rows"] if r["system"] == "ReCoSeg" and r["region"] == "whole")
    assert "| ReCoSeg | 0.917 | 0.853 |" in table and f"{recoseg['slice_dice']:.3f}" in table
    assert "Precision: training and inference" in table and "## The paper's claims, tested" in table
    claims = results["study"]["comparisons"]
    assert len(claims) == 4 and all(row["verdict"] == "too few patients" for c in claims for row in c["comparisons"])
    patients = results["study"]["repeats"][0]["patients"]["ReCoSeg"]
    assert sorted(p["case_id"] for p in patients) == ["Synth_10000", "Synth_10001"]
    speed = results["speed"]
    assert set(speed["segment"]["stage_seconds"]) == {"load", "preprocess", "synthesis", "segmentation", "write"}
    assert [s["sampler"] for s in speed["samplers"]] == ["onestep"]  # the default model's regressor does not sample
    assert set(speed["networks"]) == {"regressor", "segmenter"}
    for name in ("dice_vs_label_fraction.png", "time_by_stage.png", "dice_vs_sampler_seconds.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    code, _, err = run_cli(["benchmark", "--quick", "--speed-only", "--output", out, "-q"], capsys)
    assert code == 2 and "results.json: already exists" in err
    code, _, err = run_cli(["benchmark", "--quick", "--speed-only", "--model", "ddpm", "--output", tmp_path / "ddpm",
                            "-q"], capsys)
    assert code == 0, err
    speed = json.loads((tmp_path / "ddpm" / "results.json").read_text())["speed"]
    assert [s["sampler"] for s in speed["samplers"]] == ["onestep", "ddim"] and "ddpm" in speed["networks"]
    code, _, err = run_cli(["benchmark", "--quick", "--speed-only", "--model", "flair+t1ce", "--output",
                            tmp_path / "specialist", "-q"], capsys)
    assert code == 0, err
    speed = json.loads((tmp_path / "specialist" / "results.json").read_text())["speed"]
    assert speed["samplers"] == [] and set(speed["networks"]) == {"segmenter"}  # no stage 1 to time
    assert "no stage 1" in (tmp_path / "specialist" / "results.md").read_text()


def test_benchmark_rejects_a_missing_data_folder(tmp_path, capsys):
    code, _, err = run_cli(["benchmark", "--quick", "--data", tmp_path / "nope", "-q"], capsys)
    assert code == 2 and "nope: no such folder" in err


def write_cases(data, count, tiny_volumes):
    from conftest import TINY
    from recoseg_cli.data.synthetic import write_patient

    for i in range(count):
        write_patient(data / f"Case_{i}", f"Case_{i}", tiny_volumes, TINY.affine)


def test_data_folder_is_split_by_seed_without_touching_it(tmp_path, tiny_volumes):
    from dataclasses import replace

    from recoseg_cli.benchmark.plan import QUICK
    from recoseg_cli.benchmark.study import make_splits
    from recoseg_cli.errors import InputError

    data = tmp_path / "BraTS"
    write_cases(data, 5, tiny_volumes)
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    (split,), _ = make_splits(QUICK, tmp_path / "work", data, lambda message: None)
    assert len(split.test) == 1 and len(split.train) == 4
    assert set(split.train) | set(split.test) == set(data.iterdir())
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before
    (again,), _ = make_splits(QUICK, tmp_path / "work2", data, lambda message: None)
    assert again.test == split.test
    folds, description = make_splits(replace(QUICK, folds=2, max_patients=0), tmp_path / "work3", data, print)
    assert "2-fold cross-validation" in description
    assert sorted(p for f in folds for p in f.test) == sorted(data.iterdir())
    for fold in folds:
        assert not set(fold.train) & set(fold.test) and len(fold.train) + len(fold.test) == 5
    for i in range(2, 5):
        (data / f"Case_{i}").rename(tmp_path / f"moved_{i}")
    with pytest.raises(InputError, match="at least 4"):
        make_splits(QUICK, tmp_path / "work4", data, lambda message: None)


@pytest.mark.slow
def test_cross_validated_benchmark_scores_every_patient_once(tmp_path, tiny_volumes, capsys):
    data = tmp_path / "BraTS"
    write_cases(data, 4, tiny_volumes)
    code, _, err = run_cli(["benchmark", "--quick", "--data", data, "--folds", "2", "-o", tmp_path / "out", "-q"],
                           capsys)
    assert code == 0, err
    study = json.loads((tmp_path / "out" / "results.json").read_text())["study"]
    assert study["folds"] == 2 and sorted(study["test_patients"].values()) == [0, 0, 1, 1]
    for name, patients in study["repeats"][0]["patients"].items():
        assert sorted(p["case_id"] for p in patients) == [f"Case_{i}" for i in range(4)], name
        assert {p["fold"] for p in patients} == {0, 1}


def test_a_segmenter_names_the_stage_one_model_it_was_trained_with(tiny_weights):
    """The healthy-tissue row must use the healthy-tissue DDPM: a swapped model is caught by its tensors."""
    from recoseg_cli.benchmark.study import embedded_stage_one
    from recoseg_cli.weights import load_weights

    ddpm = load_weights(tiny_weights["ddpm"], ("ddpm",))
    other = load_weights(tiny_weights["ddpm"], ("ddpm",))
    other.state_dict = {k: v + 0.01 for k, v in other.state_dict.items()}
    seg = load_weights(tiny_weights["seg"], ("seg",))
    assert embedded_stage_one(seg, {"ddpm_healthy": other, "ddpm": ddpm}) == "ddpm"
    with pytest.raises(RuntimeError, match="none of ddpm_healthy"):
        embedded_stage_one(seg, {"ddpm_healthy": other})


def test_claim_verdicts_need_an_interval_that_excludes_zero():
    from recoseg_cli.benchmark.claims import claim_comparisons

    def record(case, whole, enhancing=None):
        out = {"case_id": case, "fold": 0, "whole": {"dice": whole}}
        if enhancing is not None:
            out["enhancing"] = {"dice": enhancing}
        return out

    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 0.8, 12)
    patients = {"UNet2D": [record(f"P{i}", base[i], 0.5) for i in range(12)],
                "ReCoSeg": [record(f"P{i}", base[i] + 0.05, 0.5 + rng.normal(0, 0.1)) for i in range(12)],
                "UNet3D": [record(f"P{i}", base[i] + 0.1) for i in range(12)]}
    (table1, *_) = claim_comparisons([{"patients": patients}], [1.0])
    rows = {(r["reference"], r["region"]): r for r in table1["comparisons"]}
    assert rows["UNet2D", "whole"]["verdict"] == "holds" and rows["UNet2D", "whole"]["mean"] == pytest.approx(0.05)
    assert rows["UNet2D", "enhancing"]["verdict"] == "not shown" and rows["UNet2D", "enhancing"]["n"] == 12
    assert rows["UNet3D", "whole"]["verdict"] == "reversed" and ("UNet3D", "enhancing") not in rows
    assert not any(r["reference"] == "DDMM-Synth" for r in table1["comparisons"])


def test_label_subsets_hold_enhancing_tumour():
    from recoseg_cli.training.seg_task import select_labelled

    cases = [f"P{i}" for i in range(10)]
    for seed in range(20):
        plain = select_labelled(cases, 0.1, seed)
        chosen = select_labelled(cases, 0.1, seed, with_enhancing={"P7"})
        assert len(chosen) == len(plain) == 1 and chosen == ["P7"]
        assert select_labelled(cases, 0.3, seed, with_enhancing=set(cases)) == select_labelled(cases, 0.3, seed)


def test_benchmark_hd95_uses_canonical_voxel_sizes_for_permuted_files(tmp_path, tiny_volumes):
    (tmp_path / "P").mkdir()
    """Files stored S, R, A with 3 x 1 x 1 mm voxels: a prediction one axial slice off is 3 mm away."""
    from recoseg_cli.benchmark.study import patient_scores
    from recoseg_cli.io.discovery import discover_patient
    from recoseg_cli.pipeline import prepare_patient
    from recoseg_cli.preprocess import PreprocessConfig

    affine = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [3, 0, 0, 0], [0, 0, 0, 1]], float)
    for name, data in tiny_volumes.items():
        write_nifti(tmp_path / "P" / f"P_{name}.nii.gz", np.ascontiguousarray(data.transpose(2, 0, 1)), affine)
    folder = tmp_path / "P"
    prepared = prepare_patient(discover_patient(folder), PreprocessConfig(size=32))
    assert prepared.volumes.zooms == (1.0, 1.0, 3.0)
    truth = np.stack([prepared.sliced.seg > 0] * 3, 1).astype(np.float32)
    shifted = np.roll(truth, 1, axis=0)
    scores = patient_scores(prepared, shifted)
    assert scores["whole"]["hd95"] == pytest.approx(3.0, abs=0.01)
