"""The shared training loop: exact resume, checkpoint contents, DDP through torchrun, `recoseg train`."""

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import TINY, run_cli
from recoseg_cli.data.build_cache import build_cache
from recoseg_cli.data.synthetic import generate_patient, write_patient
from recoseg_cli.devices import resolve_device
from recoseg_cli.models.unet import UNetConfig
from recoseg_cli.preprocess import PreprocessConfig
from recoseg_cli.training.data import load_training_cache, split_slice_sets
from recoseg_cli.training.ddpm_task import DDPMStageConfig, DDPMTask
from recoseg_cli.training.loop import TrainConfig, fit
from recoseg_cli.weights import load_weights

TINY_DDPM = DDPMStageConfig(unet=UNetConfig(in_channels=4, out_channels=1, widths=(8, 16), attention=False))


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    for seed in range(3):
        case = f"Synth_{seed:05d}"
        write_patient(root / "cohort" / case, case, generate_patient(seed, TINY), TINY.affine)
    build_cache(root / "cohort", root / "cache", PreprocessConfig(size=32), val_fraction=0.34)
    return root / "cache"


def make_task(cache, tmp_path):
    _, manifest, subjects = load_training_cache(cache, tmp_path, PreprocessConfig(size=32))
    train, val = split_slice_sets(subjects)
    torch.manual_seed(0)
    return DDPMTask(TINY_DDPM, train, val, manifest["config"], torch.device("cpu"))


def test_resume_continues_exactly(tiny_cache, tmp_path):
    config = TrainConfig(max_steps=6, batch_size=2, val_every=3, checkpoint_every=3, warmup_steps=2)
    straight = make_task(tiny_cache, tmp_path)
    fit(straight, config, tmp_path / "straight", torch.device("cpu"))
    first = make_task(tiny_cache, tmp_path)

    def crash_at_step_4(step, loss):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(first, config, tmp_path / "split", torch.device("cpu"), on_step=crash_at_step_4)
    resumed = make_task(tiny_cache, tmp_path)
    fit(resumed, config, tmp_path / "split", torch.device("cpu"), resume=True)
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    checkpoint = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    assert {"model", "ema", "optimizer", "scheduler", "numpy_rng", "torch_rng", "stage_config"} <= set(checkpoint)
    history = json.loads((tmp_path / "split" / "history.json").read_text())
    assert [h["step"] for h in history["history"]] == [3, 6]
    assert {"raw_score", "ema_score", "ema_healthy_mae"} <= set(history["history"][0])
    weights = load_weights(tmp_path / "split" / "best.pt", ("ddpm",))
    assert weights.extra["prediction"] == "v" and list(weights.model_config["widths"]) == [8, 16]


def test_resume_refuses_another_configuration(tiny_cache, tmp_path, capsys):
    args = ["train", "--data", tiny_cache, "-o", tmp_path / "run", "--max-steps", "2", "--batch-size", "2",
            "--widths", "8,16", "-q"]
    assert run_cli(args, capsys)[0] == 0
    code, _, err = run_cli(args[:-3] + ["--widths", "8,24", "--resume", "-q"], capsys)
    assert code == 2 and "another stage or configuration" in err
    code, _, err = run_cli(["train", "--data", tiny_cache, "-o", tmp_path / "fresh", "--resume", "-q"], capsys)
    assert code == 2 and "nothing to resume" in err
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "use --resume or another run folder" in err


@pytest.mark.slow
def test_torchrun_two_processes_keep_identical_weights(tiny_cache, tmp_path):
    run_dir = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517", "-m",
         "recoseg_cli", "train", "--data", str(tiny_cache), "-o", str(run_dir), "--max-steps", "4",
         "--batch-size", "2", "--widths", "8,16", "--val-every", "2", "-q"],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    history = json.loads((run_dir / "history.json").read_text())
    assert history["ddp_world_size"] == 2
    assert history["ddp_max_weight_difference"] == 0.0
    assert (run_dir / "best.pt").is_file() and (run_dir / "last.pt").is_file()


def test_device_option_is_checked():
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(Exception, match="--device"):
        resolve_device("tpu")


@pytest.mark.slow
def test_train_all_then_segment_with_its_weights(tiny_cache, tmp_path, tiny_patient, capsys):
    code, _, err = run_cli(["train", "--stage", "all", "--data", tiny_cache, "-o", tmp_path / "run", "--max-steps", "2",
                            "--batch-size", "2", "--widths", "8,16", "--seg-widths", "8,16", "--label-fraction",
                            "0.5", "-q"], capsys)
    assert code == 0, err
    weights = load_weights(tmp_path / "run" / "seg" / "best.pt", ("seg",))
    assert weights.extra["ddpm"]["stage"] == "ddpm" and weights.extra["label_fraction"] == 0.5
    assert len(list((tiny_cache / "synthesis").iterdir())) >= 1
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "m.nii.gz", "--weights",
                            tmp_path / "run" / "seg" / "best.pt", "-q"], capsys)
    assert code == 0, err


def test_seg_stage_needs_ddpm_weights_for_residual_inputs(tiny_cache, tmp_path, capsys):
    code, _, err = run_cli(["train", "--stage", "seg", "--data", tiny_cache, "-o", tmp_path / "run", "-q"], capsys)
    assert code == 2 and "--ddpm-weights" in err
    code, _, err = run_cli(["train", "--stage", "seg", "--data", tiny_cache, "-o", tmp_path / "run", "--channels",
                            "flair,t1,t1ce,t2", "--sequence-dropout", "0", "--max-steps", "1", "--batch-size", "2", "--seg-widths", "8,16",
                            "--batch-dice", "-q"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["stage_config"]["batch_dice"] is True
    assert load_weights(tmp_path / "run" / "best.pt", ("seg",)).extra["ddpm"] is None


def test_region_targets_and_fine_tuning(tiny_cache, tmp_path, tiny_patient, capsys):
    common = ["train", "--stage", "seg", "--data", tiny_cache, "--channels", "flair,t1,t1ce,t2", "--sequence-dropout", "0",
              "--max-steps", "1", "--batch-size", "2", "--seg-widths", "8,16", "-q"]
    code, _, err = run_cli(common + ["-o", tmp_path / "both", "--targets", "whole,enhancing", "--deep-supervision"],
                           capsys)
    assert code == 0, err
    both = load_weights(tmp_path / "both" / "best.pt", ("seg",))
    assert both.extra["targets"] == ["whole", "enhancing"] and both.model_config["out_channels"] == 2
    assert both.model_config["deep_supervision"] is True  # segmenting with it (below) reads the main head only
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "m.nii.gz", "--weights",
                            tmp_path / "both" / "best.pt", "-q"], capsys)
    assert code == 0, err
    code, _, err = run_cli(common + ["-o", tmp_path / "et", "--targets", "enhancing"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "m2.nii.gz", "--weights",
                            tmp_path / "et" / "best.pt", "-q"], capsys)
    assert code == 2 and "whole-tumour weights" in err and not (tmp_path / "m2.nii.gz").exists()
    code, _, err = run_cli(common + ["-o", tmp_path / "x", "--targets", "whole,tumour"], capsys)
    assert code == 2 and "--targets" in err
    code, _, err = run_cli(common + ["-o", tmp_path / "ft", "--targets", "whole,enhancing", "--deep-supervision",
                                     "--init-weights", tmp_path / "both" / "best.pt"], capsys)
    assert code == 0, err
    code, _, err = run_cli(common + ["-o", tmp_path / "ft2", "--init-weights", tmp_path / "both" / "best.pt"], capsys)
    assert code == 2 and "differs" in err


def test_last_step_fraction_trains_at_the_last_timestep(monkeypatch):
    from recoseg_cli.diffusion import losses
    from recoseg_cli.diffusion.schedule import NoiseSchedule

    seen = []

    def model(x, t):
        seen.append(t.clone())
        return torch.zeros(x.shape[0], 1, *x.shape[2:])

    schedule = NoiseSchedule("linear", 1000)
    target, conditions = torch.zeros(64, 1, 4, 4), torch.zeros(64, 3, 4, 4)
    for fraction in (0.0, 1.0, 0.5):
        config = losses.DiffusionLossConfig(last_step_fraction=fraction)
        losses.diffusion_loss(model, schedule, config, target, conditions, torch.ones_like(target),
                              torch.Generator().manual_seed(0))
    at_last = [float((t == 999).float().mean()) for t in seen]
    assert at_last[0] < 0.05 and at_last[1] == 1.0 and 0.3 < at_last[2] < 0.7


def test_x0_l1_adds_the_masked_l1_error_of_the_predicted_clean_image():
    from recoseg_cli.diffusion import losses
    from recoseg_cli.diffusion.schedule import NoiseSchedule

    def model(x, t):
        return torch.zeros(x.shape[0], 1, *x.shape[2:])

    schedule = NoiseSchedule("linear", 1000)
    target = torch.full((8, 1, 4, 4), 0.5)
    target[..., :2] = -1.0  # left out by the weight: counted, it would raise the term to 1.5
    weight = torch.ones_like(target)
    weight[..., :2] = 0.0
    conditions = torch.zeros(8, 3, 4, 4)
    totals = [losses.diffusion_loss(model, schedule, losses.DiffusionLossConfig(last_step_fraction=1.0, x0_l1=w),
                                    target, conditions, weight, torch.Generator().manual_seed(0)) for w in (0.0, 2.0)]
    # At t = 999 a zero v prediction gives x0 ~ 0, so the added term is 2 x |0 - 0.5| over the kept pixels.
    assert float(totals[1] - totals[0]) == pytest.approx(1.0, abs=0.02)


def test_deep_supervision_adds_coarse_heads_that_only_training_reads():
    from recoseg_cli.models.unet import UNet
    from recoseg_cli.training.seg_task import bce_dice_loss, multiscale_loss, segmenter_unet

    torch.manual_seed(0)
    x = torch.randn(2, 5, 32, 32)
    plain = UNet(segmenter_unet(5, 3, (8, 16, 16, 32)))
    supervised = UNet(segmenter_unet(5, 3, (8, 16, 16, 32), deep_supervision=True))
    assert [o.shape[-1] for o in supervised(x, all_levels=True)] == [32, 16, 8]
    assert [o.shape[-1] for o in plain(x, all_levels=True)] == [32]
    supervised.load_state_dict({**supervised.state_dict(), **plain.state_dict()})
    assert torch.equal(supervised(x), plain(x))  # same main path; the coarse heads add nothing at inference
    # A perfect full-resolution output and two uninformed coarse ones (logits 0): weights 4/7, 2/7, 1/7.
    target = torch.ones(2, 3, 32, 32)
    outputs = [torch.full((2, 3, 32, 32), 30.0), torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, 8, 8)]
    uninformed = [float(bce_dice_loss(o, torch.ones_like(o))) for o in outputs[1:]]
    expected = 2 / 7 * uninformed[0] + 1 / 7 * uninformed[1]
    assert float(multiscale_loss(outputs, target)) == pytest.approx(expected, rel=1e-4)
    assert float(multiscale_loss(outputs[:1], target)) == float(bce_dice_loss(outputs[0], target))


def test_batch_dice_weighs_slices_by_their_pixels():
    from recoseg_cli.diffusion.losses import soft_dice_loss
    from recoseg_cli.training.seg_task import bce_dice_loss

    # One slice holds a 2-pixel region, the other a 50-pixel one; the prediction misses the small one entirely.
    target = torch.zeros(2, 1, 10, 10)
    target[0, 0, 0, :2] = 1.0
    target[1, 0, :5] = 1.0
    prediction = target.clone()
    prediction[0] = 0.0
    per_slice = float(soft_dice_loss(prediction, target, eps=0.0))
    batch = float(soft_dice_loss(prediction, target, eps=0.0, over_batch=True))
    assert per_slice == pytest.approx(0.5)  # mean of 1 (missed slice) and 0 (perfect slice)
    assert batch == pytest.approx(1 - 2 * 50 / (50 + 52))  # Dice of the pixels of both slices together
    logits = torch.randn(2, 1, 10, 10)
    assert float(bce_dice_loss(logits, target, batch_dice=True)) != pytest.approx(float(bce_dice_loss(logits, target)))
