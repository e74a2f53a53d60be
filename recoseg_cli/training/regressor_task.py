"""Baseline for stage 1: the same U-Net trained as a deterministic FLAIR, T1, T2 -> T1ce regressor (L1)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from recoseg_cli.constants import CONDITION_MODALITIES
from recoseg_cli.data.slices import SliceSet
from recoseg_cli.models.unet import UNetConfig
from recoseg_cli.networks import TorchSlices
from recoseg_cli.slice_networks import Regressor
from recoseg_cli.training.ddpm_task import ddpm_unet, split_conditions, synthesis_scores, validation_subset
from recoseg_cli.training.loop import Task


@dataclass(frozen=True)
class RegressorStageConfig:
    """Network of the regressor: the DDPM's U-Net without the noisy-target channel and time embedding."""

    unet: UNetConfig = field(default_factory=lambda: replace(ddpm_unet(), in_channels=3, time_embedding=False))

    def to_dict(self) -> dict:
        return asdict(self)


def regressor_stage(ddpm: UNetConfig) -> RegressorStageConfig:
    """The L1 regressor built like a DDPM's U-Net, without the noisy-image input and the timestep."""
    return RegressorStageConfig(replace(ddpm, in_channels=3, time_embedding=False))


class RegressorTask(Task):
    """L1 loss inside the brain and the same validation as the DDPM."""

    stage = "regressor"

    def __init__(self, config: RegressorStageConfig, train: SliceSet, val: SliceSet, preprocess: dict,
                 device: torch.device):
        super().__init__(config, train, validation_subset(val), preprocess, device)

    def loss(self, model, rng: np.random.Generator, noise: torch.Generator, batch_size: int) -> torch.Tensor:
        batch = self.train.arrays(*self.train.random_index(rng, batch_size))
        conditions, target = split_conditions(torch.from_numpy(np.ascontiguousarray(batch["images"])).to(self.device))
        brain = torch.from_numpy(np.ascontiguousarray(batch["brain"]))[:, None].to(self.device).float()
        error = (model(conditions.contiguous(memory_format=torch.channels_last)).float() - target).abs()
        return (error * brain).sum() / brain.sum().clamp_min(1.0)

    def validate(self, model) -> dict[str, float]:
        return synthesis_scores(Regressor(TorchSlices(model, self.device)), self.val, None)

    def weights_extra(self) -> dict:
        return {"preprocess": self.preprocess, "conditions": list(CONDITION_MODALITIES)}
