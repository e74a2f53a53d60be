"""Shared fixtures: tiny synthetic patients and NIfTI helpers."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from recoseg_cli.data.synthetic import SyntheticConfig, generate_patient, write_patient

TINY = SyntheticConfig(shape=(48, 48, 32))


@pytest.fixture(scope="session")
def tiny_volumes() -> dict[str, np.ndarray]:
    return generate_patient(3, TINY)


@pytest.fixture()
def tiny_patient(tmp_path: Path, tiny_volumes) -> Path:
    """A BraTS2020-layout patient folder on a 48 x 48 x 32 grid."""
    folder = tmp_path / "Synth_00003"
    write_patient(folder, "Synth_00003", tiny_volumes, TINY.affine)
    return folder


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    image = nib.Nifti1Image(data, np.eye(4) if affine is None else affine)
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    nib.save(image, str(path))
    return path


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run the console entry point in-process; returns (exit code, stdout, stderr)."""
    from recoseg_cli.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> dict[str, Path]:
    """A tiny DDPM, a tiny segmenter and a tiny any-subset segmenter trained for a few steps on three tiny
    patients; and a tiny segmenter whose stage 1 is a tiny L1 regressor (exportable to ONNX)."""
    from recoseg_cli.data.build_cache import build_cache
    from recoseg_cli.diffusion.sampler_config import SamplerConfig
    from recoseg_cli.models.unet import UNetConfig
    from recoseg_cli.preprocess import PreprocessConfig
    from recoseg_cli.training.ddpm_task import DDPMStageConfig
    from recoseg_cli.training.regressor_task import RegressorStageConfig
    from recoseg_cli.training.loop import TrainConfig
    from recoseg_cli.training.run import train_ddpm, train_regressor, train_seg
    from recoseg_cli.pipeline import ANY_SUBSET_CHANNELS
    from recoseg_cli.training.seg_task import SegStageConfig, segmenter_stage

    root = tmp_path_factory.mktemp("weights")
    for seed in range(3):
        case = f"Synth_{seed:05d}"
        write_patient(root / "cohort" / case, case, generate_patient(seed, TINY), TINY.affine)
    preprocess = PreprocessConfig(size=32)
    build_cache(root / "cohort", root / "cache", preprocess, val_fraction=0.34)
    train = TrainConfig(max_steps=3, batch_size=2, val_every=3, warmup_steps=1)
    ddpm = DDPMStageConfig(unet=UNetConfig(in_channels=4, out_channels=1, widths=(8, 16), attention=False))
    train_ddpm(root / "cache", root / "ddpm", ddpm, train, preprocess, device="cpu")
    seg = SegStageConfig(unet=UNetConfig(in_channels=5, out_channels=3, widths=(8, 16), time_embedding=False,
                                         attention=False))
    train_seg(root / "cache", root / "seg", seg, train, preprocess, root / "ddpm" / "best.pt", SamplerConfig(),
              device="cpu")
    subsets = segmenter_stage(ANY_SUBSET_CHANNELS, widths=(8, 16), sequence_dropout=0.5)
    train_seg(root / "cache", root / "subsets", subsets, train, preprocess, root / "ddpm" / "best.pt", SamplerConfig(),
              device="cpu")
    regressor = RegressorStageConfig(UNetConfig(in_channels=3, out_channels=1, widths=(8, 16), time_embedding=False,
                                                attention=False))
    train_regressor(root / "cache", root / "regressor", regressor, train, preprocess, device="cpu")
    train_seg(root / "cache", root / "seg_regressor", seg, train, preprocess, root / "regressor" / "best.pt",
              SamplerConfig(), device="cpu")
    return {"ddpm": root / "ddpm" / "best.pt", "seg": root / "seg" / "best.pt", "cache": root / "cache",
            "subsets": root / "subsets" / "best.pt", "seg_regressor": root / "seg_regressor" / "best.pt"}
