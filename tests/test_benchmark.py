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
    for row in results["rows"]:
        assert row["region"] in ("whole", "enhancing")
        assert 0.0 <= row["dice"] <= 1.0 and 0.0 <= row["slice_dice"] <= 1.0
    with open(out / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == len(results["rows"])
    table = (out / "results.md").read_text()
    recoseg = next(r for r in results["rows"] if r["system"] == "ReCoSeg" and r["region"] == "whole")
    assert "| ReCoSeg | 0.917 | 0.853 |" in table and f"{recoseg['slice_dice']:.3f}" in table
    speed = results["speed"]
    assert set(speed["segment"]["stage_seconds"]) == {"load", "preprocess", "synthesis", "segmentation", "write"}
    assert [s["sampler"] for s in speed["samplers"]] == ["onestep", "ddim", "ddpm"]
    for name in ("dice_vs_label_fraction.png", "time_by_stage.png", "dice_vs_sampler_steps.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    code, _, err = run_cli(["benchmark", "--quick", "--speed-only", "--output", out, "-q"], capsys)
    assert code == 2 and "results.json: already exists" in err


def test_benchmark_rejects_a_missing_data_folder(tmp_path, capsys):
    code, _, err = run_cli(["benchmark", "--quick", "--data", tmp_path / "nope", "-q"], capsys)
    assert code == 2 and "nope: no such folder" in err


def test_data_folder_is_split_by_seed_without_touching_it(tmp_path, tiny_volumes):
    from conftest import TINY
    from recoseg_cli.benchmark.plan import QUICK
    from recoseg_cli.benchmark.study import make_cohort
    from recoseg_cli.data.synthetic import write_patient
    from recoseg_cli.errors import InputError
    from recoseg_cli.io.discovery import find_patient_folders

    data = tmp_path / "BraTS"
    for i in range(5):
        write_patient(data / f"Case_{i}", f"Case_{i}", tiny_volumes, TINY.affine)
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    cohort = make_cohort(QUICK, tmp_path / "work", data, lambda message: None)
    train = find_patient_folders(cohort.train)
    assert len(cohort.test) == 1 and len(train) == 4
    assert {p.resolve() for p in train} | {p.resolve() for p in cohort.test} == {p.resolve() for p in data.iterdir()}
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before
    again = make_cohort(QUICK, tmp_path / "work2", data, lambda message: None)
    assert again.test == cohort.test
    for i in range(2, 5):
        (data / f"Case_{i}").rename(tmp_path / f"moved_{i}")
    with pytest.raises(InputError, match="at least 4"):
        make_cohort(QUICK, tmp_path / "work3", data, lambda message: None)


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
