"""Stage 1 training task: the conditional DDPM (FLAIR, T1, T2 -> T1ce), labels optional."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy import ndimage

from recoseg_cli.constants import CONDITION_INDEX, CONDITION_MODALITIES, TARGET_INDEX
from recoseg_cli.data.slices import SliceSet
from recoseg_cli.diffusion.losses import DiffusionLossConfig, diffusion_loss
from recoseg_cli.diffusion.sampler_config import SamplerConfig
from recoseg_cli.diffusion.schedule import NoiseSchedule
from recoseg_cli.models.unet import UNetConfig
from recoseg_cli.networks import StageOne, Synthesizer
from recoseg_cli.training.augment import AugmentConfig, augment_batch
from recoseg_cli.training.loop import Task

VALIDATION_SLICES = 48


def ddpm_unet(widths: tuple[int, ...] = (16, 32, 64, 96)) -> UNetConfig:
    """The stage-1 U-Net: the noisy T1ce with FLAIR, T1 and T2 in, one output, timestep embedding, no attention."""
    return UNetConfig(in_channels=4, out_channels=1, widths=tuple(widths), time_embedding=True, attention=False)


@dataclass(frozen=True)
class DDPMStageConfig:
    """Everything that defines a stage-1 model; stored in its checkpoints and weights."""

    unet: UNetConfig = field(default_factory=ddpm_unet)
    schedule: str = "linear"
    num_steps: int = 1000
    loss: DiffusionLossConfig = field(default_factory=DiffusionLossConfig)
    mask_tumour: bool = False
    """Leave tumour voxels (labelled subjects) out of the loss, so the model learns healthy T1ce."""
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    """Default sampler recorded in the weights."""
    augment: AugmentConfig | None = field(default_factory=lambda: AugmentConfig(
        intensity_scale=0, intensity_shift=0, gamma=0, bias_field=0, noise=0))
    """Random rotation and zoom of training slices (all modalities alike); None: flips only."""

    def to_dict(self) -> dict:
        return asdict(self)


def split_conditions(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(conditions (B, 3, S, S), target (B, 1, S, S)) from (B, 4, S, S) modality stacks."""
    return images[:, CONDITION_INDEX], images[:, TARGET_INDEX:TARGET_INDEX + 1]


def validation_subset(val: SliceSet) -> SliceSet:
    """A fixed random subset of validation slices."""
    picks = np.random.default_rng(0).permutation(len(val))[:VALIDATION_SLICES]
    return val.subset(np.sort(picks))


def synthesis_scores(synthesizer: StageOne, val: SliceSet, sampler: SamplerConfig) -> dict[str, float]:
    """Mean absolute error of synthetic T1ce in healthy brain (the score) and in tumour."""
    images = val.images.astype(np.float32)
    synthetic = synthesizer.synthesize(images[:, CONDITION_INDEX], val.brain, sampler, seed=0,
                                       start=images[:, TARGET_INDEX])
    error = np.abs(synthetic - images[:, TARGET_INDEX])
    tumour = val.seg > 0
    healthy = val.brain & ~ndimage.binary_dilation(tumour, np.ones((1, 3, 3), bool), iterations=2)
    scores = {"score": float(error[healthy].mean()), "healthy_mae": float(error[healthy].mean())}
    if tumour.any():
        scores["tumour_mae"] = float(error[tumour].mean())
    return scores


class DDPMTask(Task):
    """Loss and validation of the conditional DDPM for the shared training loop."""

    stage = "ddpm"

    def __init__(self, config: DDPMStageConfig, train: SliceSet, val: SliceSet, preprocess: dict,
                 device: torch.device):
        super().__init__(config, train, validation_subset(val), preprocess, device)
        self.schedule = NoiseSchedule(config.schedule, config.num_steps)

    def loss(self, model, rng: np.random.Generator, noise: torch.Generator, batch_size: int) -> torch.Tensor:
        batch = self.train.arrays(*self.train.random_index(rng, batch_size))
        if self.config.augment is not None:
            batch = augment_batch(batch, rng, self.config.augment)
        images = torch.from_numpy(np.ascontiguousarray(batch["images"])).to(self.device)
        conditions, target = split_conditions(images)
        weight = torch.ones_like(target)
        if self.config.mask_tumour:
            weight = weight * (1 - torch.from_numpy(np.ascontiguousarray(batch["tumour"]))[:, None].to(self.device))
        return diffusion_loss(model, self.schedule, self.config.loss, target, conditions, weight, noise)

    def validate(self, model) -> dict[str, float]:
        synthesizer = Synthesizer(model, self.schedule, self.config.loss.prediction, self.device)
        return synthesis_scores(synthesizer, self.val, self.config.sampler)

    def weights_extra(self) -> dict:
        return {"schedule": self.schedule.to_dict(), "prediction": self.config.loss.prediction,
                "preprocess": self.preprocess, "conditions": list(CONDITION_MODALITIES),
                "sampler": self.config.sampler.to_dict(), "mask_tumour": self.config.mask_tumour}
