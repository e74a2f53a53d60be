"""What a benchmark run trains and measures: cohort size, budgets, systems and sampler settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from recoseg_cli.diffusion.sampler_config import SamplerConfig
from recoseg_cli.regions import REGIONS
from recoseg_cli.training.seg_task import SEGMENTER_WIDTHS

MODALITY_CHANNELS = ("flair", "t1", "t1ce", "t2")
TARGETS = REGIONS
"""Every segmenter of the study outputs the three BraTS regions (WT, TC, ET) as overlapping sigmoids."""


@dataclass(frozen=True)
class System:
    """One segmenter of the study: its inputs, the stage-1 model behind them and its labelled fraction."""

    name: str
    channels: tuple[str, ...]
    stage_one: str | None = None
    """ddpm, ddpm_healthy (tumour masked out of the loss), regressor, or None."""
    label_fraction: float = 1.0
    volumetric: bool = False
    group: str = "table1"
    """table1, ablation, labels or missing (the study each row answers)."""


def systems(label_fractions: tuple[float, ...]) -> list[System]:
    """Every segmenter the study trains."""
    rows = [
        System("UNet2D", MODALITY_CHANNELS),
        System("UNet3D", MODALITY_CHANNELS, volumetric=True),
        System("DDMM-Synth", ("flair", "t1", "t2", "synth"), "ddpm"),
        System("ReCoSeg", MODALITY_CHANNELS + ("residual",), "ddpm"),
        System("Residual + FLAIR", ("flair", "residual"), "ddpm", group="ablation"),
        System("ReCoSeg, healthy-tissue DDPM", MODALITY_CHANNELS + ("residual",), "ddpm_healthy", group="ablation"),
        System("T1ce - T1 subtraction", MODALITY_CHANNELS + ("subtraction",), group="ablation"),
        System("Regressor residual", MODALITY_CHANNELS + ("residual",), "regressor", group="ablation"),
        System("UNet2D without T1ce", ("flair", "t1", "t2"), group="missing"),
    ]
    for fraction in label_fractions:
        if fraction < 1.0:
            percent = f"{fraction:.0%}"
            rows.append(System(f"UNet2D, {percent} labels", MODALITY_CHANNELS, label_fraction=fraction, group="labels"))
            rows.append(System(f"ReCoSeg, {percent} labels", MODALITY_CHANNELS + ("residual",), "ddpm",
                               label_fraction=fraction, group="labels"))
    return rows


@dataclass(frozen=True)
class Plan:
    """Budgets of one benchmark run; ``default`` fits 20 minutes and ``quick`` 3 minutes on a 2-core CPU."""

    train_patients: int = 16
    test_patients: int = 6
    """Synthetic cohort: training and test patients (a fixed split; ``folds`` pools them)."""
    max_patients: int = 0
    """With ``--data``: study a seeded subset of this many patients (0: all of them)."""
    folds: int = 0
    """Cross-validation folds (0: one fixed split, 80/20 with ``--data``)."""
    grid: tuple[int, int, int] = (120, 120, 78)
    """Synthetic cohort grid (2 mm voxels over BraTS's 240 x 240 x 155 mm field of view)."""
    size: int = 64
    stage_one_steps: int = 400
    seg_steps: int = 300
    batch_size: int = 16
    stage_one_lr: float = 2e-4
    seg_lr: float = 1e-3
    """Peak learning rates of the bundled weights' recipe (segmenters, including the 3D baseline, alike)."""
    ddpm_widths: tuple[int, ...] = (16, 32, 64, 96)
    seg_widths: tuple[int, ...] = SEGMENTER_WIDTHS
    unet3d_widths: tuple[int, ...] = (8, 16, 32, 64)
    patch_depth: int = 16
    label_fractions: tuple[float, ...] = (1.0, 0.25, 0.1)
    sampler_settings: tuple[SamplerConfig, ...] = (
        SamplerConfig("onestep", 1), SamplerConfig("onestep", 4), SamplerConfig("ddim", 10),
        SamplerConfig("ddim", 20), SamplerConfig("ddim", 50), SamplerConfig("ddpm", 1000))
    sampler_slices: int = 16
    """Tumour slices the slow sampler settings run on (all brain slices with ``full_samplers``)."""
    speed_repeats: int = 3
    seed: int = 0
    repeats: int = 1
    full_samplers: bool = False
    peers: bool = True
    bf16: bool = True
    """Precision of the speed study (``--no-bf16``: fp32 throughout, as on CPUs without bf16)."""
    model: str | None = None
    """Bundled model the speed study times (``weights.BUNDLED_MODELS``; None: the default)."""
    runtime: str = "auto"
    """What runs the networks of the timed `segment` (``runtime.RUNTIMES``)."""

    def to_dict(self) -> dict:
        return asdict(self)


QUICK = Plan(train_patients=4, test_patients=2, max_patients=6, grid=(64, 64, 40), size=32, stage_one_steps=10,
             seg_steps=10, batch_size=4, ddpm_widths=(8, 16), seg_widths=(8, 16), unet3d_widths=(4, 8),
             patch_depth=8, sampler_settings=(SamplerConfig("onestep", 1), SamplerConfig("ddim", 2)),
             sampler_slices=2, speed_repeats=1, peers=False)
"""Smoke-test budgets: every code path, numbers that mean nothing."""
