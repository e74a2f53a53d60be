"""Benchmark baseline: a 3D U-Net on patches of each subject's slice stack (BCE + Dice per region)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from recoseg_cli.data.slices import SliceSet
from recoseg_cli.metrics import dice, validation_score
from recoseg_cli.models.unet import UNetConfig
from recoseg_cli.networks import predict_volume
from recoseg_cli.pipeline import assemble
from recoseg_cli.regions import region_stack
from recoseg_cli.training.loop import Task
from recoseg_cli.training.seg_task import bce_dice_loss


@dataclass(frozen=True)
class Seg3DStageConfig:
    """A volumetric U-Net on (slices, rows, columns) patches of the normalized slice stack."""

    unet: UNetConfig = field(default_factory=lambda: UNetConfig(
        in_channels=4, out_channels=1, widths=(8, 16, 32, 64), time_embedding=False, attention=False, dims=3))
    channels: tuple[str, ...] = ("flair", "t1", "t1ce", "t2")
    patch: tuple[int, int, int] = (16, 64, 64)
    foreground_fraction: float = 0.33
    """Fraction of patches centred on a tumour voxel (nnU-Net samples a third this way)."""
    label_fraction: float = 1.0
    threshold: float = 0.5
    targets: tuple[str, ...] = ("whole",)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SubjectVolume:
    """One subject's inputs (C, D, S, S), targets (K, D, S, S) and brain (D, S, S)."""

    inputs: np.ndarray
    targets: np.ndarray
    brain: np.ndarray


def subject_volumes(slices: SliceSet, config: Seg3DStageConfig) -> list[SubjectVolume]:
    """Stack each subject's slices (stored in axial order) into volumes."""
    volumes = []
    for index in np.unique(slices.subject):
        arrays = slices.arrays(np.flatnonzero(slices.subject == index))
        inputs = assemble(arrays["images"], arrays["brain"], config.channels, arrays.get("synth"))
        volumes.append(SubjectVolume(np.ascontiguousarray(inputs.transpose(1, 0, 2, 3)),
                                     np.ascontiguousarray(region_stack(arrays["seg"], config.targets).transpose(1, 0, 2, 3)),
                                     arrays["brain"]))
    return volumes


def random_patch(volume: SubjectVolume, patch: tuple[int, int, int], foreground_fraction: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A patch of inputs and targets, centred on tumour with ``foreground_fraction``, mirrored half the time."""
    shape = volume.brain.shape
    pad = [(0, 0)] + [(0, max(0, p - s)) for s, p in zip(shape, patch)]
    inputs = np.pad(volume.inputs, pad, mode="edge") if any(p[1] for p in pad) else volume.inputs
    targets = np.pad(volume.targets, pad) if any(p[1] for p in pad) else volume.targets
    size = inputs.shape[1:]
    tumour = np.argwhere(volume.targets[0] > 0) if rng.random() < foreground_fraction else np.empty((0, 3))
    if len(tumour):
        centre = tumour[rng.integers(len(tumour))]
        corner = [int(np.clip(c - p // 2, 0, s - p)) for c, p, s in zip(centre, patch, size)]
    else:
        corner = [int(rng.integers(0, s - p + 1)) for p, s in zip(patch, size)]
    box = (slice(None),) + tuple(slice(c, c + p) for c, p in zip(corner, patch))
    x, y = inputs[box], targets[box]
    if rng.random() < 0.5:
        x, y = x[..., ::-1, :], y[..., ::-1, :]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def stack_probabilities(model, inputs: np.ndarray, brain: np.ndarray, patch: tuple[int, int, int],
                        device: torch.device, bf16: bool = True) -> np.ndarray:
    """Probabilities (N, K, S, S) of a 3D U-Net for one subject's slice inputs (N, C, S, S), by sliding window."""
    logits = predict_volume(model, inputs.transpose(1, 0, 2, 3), patch, device, bf16)
    return (1.0 / (1.0 + np.exp(-logits.transpose(1, 0, 2, 3)))) * brain[:, None]


class Seg3DTask(Task):
    """Patch loss and sliding-window validation of the 3D U-Net for the shared training loop."""

    stage = "seg3d"

    def __init__(self, config: Seg3DStageConfig, train: SliceSet, val: SliceSet, preprocess: dict,
                 device: torch.device):
        super().__init__(config, subject_volumes(train, config), subject_volumes(val, config), preprocess, device)

    def loss(self, model, rng: np.random.Generator, noise: torch.Generator, batch_size: int) -> torch.Tensor:
        pairs = [random_patch(self.train[rng.integers(len(self.train))], self.config.patch,
                              self.config.foreground_fraction, rng) for _ in range(batch_size)]
        x = torch.from_numpy(np.stack([p[0] for p in pairs])).to(self.device)
        target = torch.from_numpy(np.stack([p[1] for p in pairs])).to(self.device)
        return bce_dice_loss(model(x.contiguous(memory_format=torch.channels_last_3d)).float(), target)

    def validate(self, model) -> dict[str, float]:
        """Mean per-subject, per-region Dice on validation subjects; score = 1 - Dice."""
        scores = []
        for volume in self.val:
            probabilities = stack_probabilities(model, volume.inputs.transpose(1, 0, 2, 3), volume.brain,
                                                self.config.patch, self.device)
            truth = volume.targets.transpose(1, 0, 2, 3) > 0
            scores += [dice(probabilities[:, k] > self.config.threshold, truth[:, k])
                       for k in range(truth.shape[1]) if truth[:, k].any()]
        return validation_score(scores)

    def weights_extra(self) -> dict:
        return {"channels": list(self.config.channels), "preprocess": self.preprocess,
                "patch": list(self.config.patch), "threshold": self.config.threshold,
                "targets": list(self.config.targets), "label_fraction": self.config.label_fraction}
