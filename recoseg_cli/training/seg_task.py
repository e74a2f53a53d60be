"""Stage 2 training task: the residual-guided segmenter (BCE + Dice per tumour region)."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from recoseg_cli.constants import CONDITION_MODALITIES, FLUID_SENSITIVE, MODALITIES
from recoseg_cli.data.slices import SliceSet
from recoseg_cli.diffusion.losses import soft_dice_loss
from recoseg_cli.data.institutions import institution
from recoseg_cli.diffusion.sampler_config import SamplerConfig
from recoseg_cli.metrics import dice, validation_score
from recoseg_cli.models.unet import UNetConfig
from recoseg_cli.networks import TorchSlices
from recoseg_cli.slice_networks import SegmentationNet
from recoseg_cli.pipeline import DEFAULT_CHANNELS, assemble, takes_subsets
from recoseg_cli.preprocess import BACKGROUND
from recoseg_cli.regions import REGIONS, region_stack
from recoseg_cli.training.augment import AugmentConfig, augment_batch, intensity
from recoseg_cli.training.loop import Task


SEGMENTER_WIDTHS = (16, 32, 64, 96)
"""Channel widths per level of the bundled segmenter."""


def segmenter_unet(inputs: int, outputs: int, widths: tuple[int, ...] = SEGMENTER_WIDTHS,
                   deep_supervision: bool = False) -> UNetConfig:
    """The segmenter's U-Net: no time embedding, no attention."""
    return UNetConfig(in_channels=inputs, out_channels=outputs, widths=tuple(widths), time_embedding=False,
                      attention=False, deep_supervision=deep_supervision)


@dataclass(frozen=True)
class SegStageConfig:
    """Everything that defines a stage-2 model; stored in its checkpoints and weights."""

    unet: UNetConfig = field(default_factory=lambda: segmenter_unet(len(DEFAULT_CHANNELS), len(REGIONS)))
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    sequence_dropout: float = 0.15
    """Fraction of training slices shown with sequences missing (``dropout_subsets``)."""
    label_fraction: float = 1.0
    threshold: float = 0.5
    targets: tuple[str, ...] = REGIONS
    """Tumour regions, one output channel each (see ``regions.REGIONS``)."""
    batch_dice: bool = False
    """Dice loss over each batch as a whole per region, not per slice (see ``soft_dice_loss``)."""
    foreground_fraction: float = 0.5
    """Share of each batch drawn from slices with ``foreground_region`` (the rest uniformly from all slices)."""
    foreground_region: str = "whole"
    """Region whose slices make the foreground share: "whole" (any tumour) or "core" (necrosis or enhancing
    tumour, which over-samples the TC/ET slices)."""
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    """Random transforms of training slices; None trains on the slices as they are (flips only)."""
    source_weights: dict[str, float] = field(default_factory=dict)
    """Sampling weight of training cases by contributing institution (``data.institutions``; 1 for the
    others), e.g. ``{"TCIA": 0.5}`` to draw slices of TCIA cases half as often."""

    def to_dict(self) -> dict:
        return asdict(self)


def segmenter_stage(channels: tuple[str, ...], targets: tuple[str, ...] = REGIONS,
                    widths: tuple[int, ...] = SEGMENTER_WIDTHS, deep_supervision: bool = False,
                    **fields) -> SegStageConfig:
    """A stage-2 config whose U-Net takes ``channels`` and predicts ``targets`` (other fields as given)."""
    return SegStageConfig(unet=segmenter_unet(len(channels), len(targets), widths, deep_supervision),
                          channels=tuple(channels), targets=tuple(targets), **fields)


def dropout_subsets(channels: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The incomplete sets of sequences a segmenter with these inputs trains on: every set holding FLAIR or T2
    when it is told which sequences are present, else FLAIR, T1 and T2 (T1ce synthesized)."""
    if not takes_subsets(channels):
        return [CONDITION_MODALITIES]
    subsets = [tuple(m for m, keep in zip(MODALITIES, flags) if keep)
               for flags in itertools.product((True, False), repeat=len(MODALITIES))]
    return [s for s in subsets if len(s) < len(MODALITIES) and any(m in s for m in FLUID_SENSITIVE)]


def random_presence(rng: np.random.Generator, count: int, dropout: float,
                    subsets: list[tuple[str, ...]]) -> np.ndarray:
    """(count, 4) presence flags: all sequences, or with probability ``dropout`` one of ``subsets`` at random."""
    flags = np.ones((count, len(MODALITIES)), bool)
    for i in np.flatnonzero(rng.random(count) < dropout):
        subset = subsets[rng.integers(len(subsets))]
        flags[i] = [m in subset for m in MODALITIES]
    return flags


def labelled_count(subjects: int, fraction: float) -> int:
    """How many of ``subjects`` a labelled ``fraction`` keeps (at least one)."""
    return max(1, int(round(fraction * subjects)))


def select_labelled(case_ids: list[str], fraction: float, seed: int,
                    with_enhancing: set[str] = frozenset()) -> list[str]:
    """A reproducible subset of subjects, by subject, holding ``fraction`` of them (at least one).

    When some subjects hold enhancing tumour (``with_enhancing``) the subset holds at least one of them: a draw
    without any has its last pick replaced by the first such subject of the same permutation.
    """
    count = labelled_count(len(case_ids), fraction)
    order = [case_ids[i] for i in np.random.default_rng([seed, 17]).permutation(len(case_ids))]
    chosen = order[:count]
    if with_enhancing and not with_enhancing & set(chosen):
        chosen[-1] = next(case for case in order if case in with_enhancing)
    return sorted(chosen)


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor, batch_dice: bool = False) -> torch.Tensor:
    return (F.binary_cross_entropy_with_logits(logits, target)
            + soft_dice_loss(torch.sigmoid(logits), target, over_batch=batch_dice))


def multiscale_loss(outputs: list[torch.Tensor], target: torch.Tensor, batch_dice: bool = False) -> torch.Tensor:
    """``bce_dice_loss`` of each output (full resolution first) against the target area-averaged to its size;
    each coarser output weighs half the finer one's, the weights summing to 1 (nnU-Net's deep supervision)."""
    weights = 0.5 ** np.arange(len(outputs))
    total = 0.0
    for weight, output in zip(weights / weights.sum(), outputs):
        scaled = target if output.shape == target.shape else F.interpolate(target, size=output.shape[2:], mode="area")
        total = total + float(weight) * bce_dice_loss(output.float(), scaled, batch_dice)
    return total


def subject_weights(config: SegStageConfig, case_ids: list[str]) -> np.ndarray:
    """Each training case's sampling weight: its institution's in ``config.source_weights``, else 1."""
    return np.array([config.source_weights.get(institution(case), 1.0) for case in case_ids])


class SegTask(Task):
    """Loss and validation of the segmenter for the shared training loop."""

    stage = "seg"

    def __init__(self, config: SegStageConfig, train: SliceSet, val: SliceSet, preprocess: dict,
                 device: torch.device, ddpm_payload: dict | None, sampler: SamplerConfig):
        if config.unet.in_channels != len(config.channels) or config.unet.out_channels != len(config.targets):
            raise ValueError("the U-Net's input and output channels must match the channel and target lists")
        super().__init__(config, train, val, preprocess, device)
        self.ddpm_payload = ddpm_payload
        self.sampler = sampler
        self.subject_weights = subject_weights(config, train.case_ids) if config.source_weights else None
        self.subsets = dropout_subsets(config.channels)

    def inputs(self, arrays: dict, present: np.ndarray | None = None) -> np.ndarray:
        return assemble(arrays["images"], arrays["brain"], self.config.channels, arrays.get("synth"), present)

    def loss(self, model, rng: np.random.Generator, noise: torch.Generator, batch_size: int) -> torch.Tensor:
        arrays = self.train.arrays(*self.train.random_index(rng, batch_size, self.config.foreground_fraction,
                                                            self.subject_weights, self.config.foreground_region))
        augment = self.config.augment
        if augment is not None:
            arrays = augment_batch(arrays, rng, augment)
        present = (random_presence(rng, batch_size, self.config.sequence_dropout, self.subsets)
                   if "synth" in arrays or takes_subsets(self.config.channels) else None)
        inputs = self.inputs(arrays, present)
        if augment is not None:
            images = [i for i, name in enumerate(self.config.channels) if name in MODALITIES or name == "synth"]
            blank = (inputs[:, images] == BACKGROUND).all(axis=(2, 3))  # missing sequences stay background
            augmented = intensity(inputs[:, images], arrays["brain"], rng, augment)
            inputs[:, images] = np.where(blank[:, :, None, None], BACKGROUND, augmented)
        x = torch.from_numpy(inputs).to(self.device)
        target = torch.from_numpy(region_stack(arrays["seg"], self.config.targets)).to(self.device)
        outputs = model(x.contiguous(memory_format=torch.channels_last), all_levels=True)
        return multiscale_loss(outputs, target, self.config.batch_dice)

    def validate(self, model) -> dict[str, float]:
        """Mean per-subject, per-region Dice (in slice space) on validation subjects; score = 1 - Dice."""
        arrays = self.val.arrays(np.arange(len(self.val)))
        probabilities = SegmentationNet(TorchSlices(model, self.device)).predict(self.inputs(arrays), arrays["brain"])
        prediction = probabilities > self.config.threshold
        truth = region_stack(arrays["seg"], self.config.targets) > 0
        scores = [dice(prediction[self.val.subject == s, k], truth[self.val.subject == s, k])
                  for s in np.unique(self.val.subject) for k in range(truth.shape[1])
                  if truth[self.val.subject == s, k].any()]
        return validation_score(scores)

    def weights_extra(self) -> dict:
        return {"channels": list(self.config.channels), "preprocess": self.preprocess,
                "threshold": self.config.threshold, "sampler": self.sampler.to_dict(), "ddpm": self.ddpm_payload,
                "label_fraction": self.config.label_fraction, "sequence_dropout": self.config.sequence_dropout,
                "targets": list(self.config.targets)}
