"""Batched training augmentation of normalized slices: rotation and scaling, intensity, bias field, noise.

Written on batched tensors (one ``grid_sample`` per batch) because per-sample library transforms cost more
than the small networks' training step on a CPU. Backgrounds stay at their value; labels use nearest sampling.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from recoseg_cli.preprocess import BACKGROUND


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms; ``probability`` is per slice and per transform family."""

    probability: float = 0.7
    rotation_degrees: float = 15.0
    scaling: float = 0.15
    """Zoom drawn from [1 - scaling, 1 + scaling]."""
    intensity_scale: float = 0.15
    intensity_shift: float = 0.1
    gamma: float = 0.35
    """Gamma drawn log-uniformly from [1 / (1 + gamma), 1 + gamma], applied to [0, 1] brain intensities."""
    bias_field: float = 0.3
    """Peak amplitude of the smooth multiplicative field's logarithm."""
    noise: float = 0.04
    """Largest standard deviation of added Gaussian noise (normalized units, range [-1, 1])."""

    def to_dict(self) -> dict:
        return asdict(self)


def _affine(rng: np.random.Generator, count: int, config: AugmentConfig) -> torch.Tensor:
    """(count, 2, 3) sampling matrices: identity, or a rotation and zoom about the slice centre."""
    angle = np.radians(rng.uniform(-config.rotation_degrees, config.rotation_degrees, count))
    zoom = rng.uniform(1 - config.scaling, 1 + config.scaling, count)
    active = rng.random(count) < config.probability
    angle, zoom = np.where(active, angle, 0.0), np.where(active, zoom, 1.0)
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    zeros = np.zeros(count)
    matrix = np.stack([np.stack([cos, -sin, zeros], 1), np.stack([sin, cos, zeros], 1)], 1)
    return torch.from_numpy(matrix.astype(np.float32))


def spatial(images: np.ndarray, masks: np.ndarray, rng: np.random.Generator,
            config: AugmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """Rotate and zoom images (N, C, S, S; background ``BACKGROUND``) and integer masks (N, K, S, S) alike."""
    grid = F.affine_grid(_affine(rng, len(images), config), list(images.shape), align_corners=False)
    shifted = torch.from_numpy(np.ascontiguousarray(images, np.float32)) - BACKGROUND
    warped = F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + BACKGROUND
    labels = torch.from_numpy(np.ascontiguousarray(masks, np.float32))
    warped_masks = F.grid_sample(labels, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return warped.numpy(), warped_masks.numpy().astype(masks.dtype)


def _smooth_field(rng: np.random.Generator, count: int, size: tuple[int, int]) -> torch.Tensor:
    """(count, 1, H, W) smooth random fields in [-1, 1]: a 4x4 grid of values upsampled bicubically."""
    coarse = torch.from_numpy(rng.uniform(-1, 1, (count, 1, 4, 4)).astype(np.float32))
    return F.interpolate(coarse, size=size, mode="bicubic", align_corners=True).clamp(-1, 1)


def intensity(images: np.ndarray, brain: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Per slice and channel: gamma, scale, shift, bias field and noise inside the brain of (N, C, S, S) images."""
    n, c, h, w = images.shape
    x = torch.from_numpy(np.ascontiguousarray(images, np.float32)).reshape(n * c, 1, h, w)
    count = n * c

    def draw(low: float, high: float, neutral: float) -> torch.Tensor:
        values = np.where(rng.random(count) < config.probability, rng.uniform(low, high, count), neutral)
        return torch.from_numpy(values.astype(np.float32)).view(count, 1, 1, 1)

    log_gamma = math.log(1 + config.gamma)
    gamma = torch.exp(draw(-log_gamma, log_gamma, 0.0))
    scale = draw(1 - config.intensity_scale, 1 + config.intensity_scale, 1.0)
    shift = draw(-config.intensity_shift, config.intensity_shift, 0.0)
    bias = draw(0.0, config.bias_field, 0.0) * _smooth_field(rng, count, (h, w))
    sigma = draw(0.0, config.noise, 0.0)
    unit = ((x + 1) / 2).clamp(0, 1) ** gamma
    unit = unit * torch.exp(bias) * scale + shift / 2
    noise = torch.from_numpy(rng.standard_normal((count, 1, h, w)).astype(np.float32)) * sigma
    out = (unit * 2 - 1 + noise).clamp(-1, 1).reshape(n, c, h, w)
    inside = torch.from_numpy(np.ascontiguousarray(brain, bool))[:, None]
    return torch.where(inside, out, torch.tensor(BACKGROUND)).numpy()


def augment_batch(arrays: dict[str, np.ndarray], rng: np.random.Generator, config: AugmentConfig) -> dict:
    """Rotate and zoom a batch of ``SliceSet.arrays`` alike: images and synthetic T1ce, brain and labels."""
    images = arrays["images"]
    planes = np.concatenate([images, arrays["synth"][:, None]], 1) if "synth" in arrays else images
    masks = np.stack([arrays["brain"], arrays["seg"]], 1).astype(np.uint8)
    warped, warped_masks = spatial(planes, masks, rng, config)
    brain = warped_masks[:, 0] > 0
    warped = np.where(brain[:, None], warped, BACKGROUND).astype(np.float32)
    out = {"images": warped[:, :images.shape[1]], "brain": brain, "seg": warped_masks[:, 1],
           "tumour": (warped_masks[:, 1] > 0).astype(np.float32)}
    if "synth" in arrays:
        out["synth"] = warped[:, images.shape[1]]
    return out
