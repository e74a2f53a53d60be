"""The trained networks run by torch: stage 1 (DDPM or L1 regressor) synthesizes T1ce, stage 2 (the U-Net)
outputs tumour-region probabilities; both run over slices in batches, the 3D baseline by sliding window."""

from __future__ import annotations

import numpy as np
import torch

from recoseg_cli.devices import autocast
from recoseg_cli.diffusion.sampler_config import SamplerConfig
from recoseg_cli.diffusion.samplers import Denoiser, sample
from recoseg_cli.diffusion.schedule import NoiseSchedule
from recoseg_cli.models.unet import UNet, UNetConfig
from recoseg_cli.preprocess import BACKGROUND
from recoseg_cli.slice_networks import Regressor, SegmentationNet
from recoseg_cli.weights import Weights, nested_weights


def unet_from_weights(weights: Weights) -> UNet:
    model = UNet(UNetConfig.from_dict(weights.model_config))
    model.load_state_dict(weights.state_dict)
    return model


def prepare_model(model: UNet, device: torch.device) -> UNet:
    """Evaluation mode, on ``device``, channels-last."""
    return model.to(device).eval().to(memory_format=model.memory_format)


class TorchSlices:
    """A time-free U-Net run by torch on ``device``, channels-last, bf16 autocast where enabled and it pays."""

    def __init__(self, model: UNet, device: torch.device, bf16: bool = True):
        self.model = prepare_model(model, device)
        self.device = device
        self.bf16 = bf16
        self.out_channels = model.config.out_channels

    @torch.no_grad()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.bf16):
            output = self.model(x)
        return output.float().cpu().numpy()


def window_starts(length: int, size: int, overlap: float) -> list[int]:
    """Start offsets of windows of ``size`` covering ``length`` with at least ``overlap`` between neighbours."""
    if length <= size:
        return [0]
    step = max(1, int(size * (1 - overlap)))
    starts = list(range(0, length - size + 1, step))
    return starts if starts[-1] == length - size else starts + [length - size]


@torch.no_grad()
def predict_volume(model: UNet, volume: np.ndarray, patch: tuple[int, ...], device: torch.device, bf16: bool,
                   overlap: float = 0.5) -> np.ndarray:
    """Sliding-window outputs (K, D, H, W) of a 3D U-Net over a volume (C, D, H, W), averaged where windows overlap.

    A volume smaller than the patch is padded with each channel's minimum (its background).
    """
    shape = volume.shape[1:]
    padded_shape = [max(s, p) for s, p in zip(shape, patch)]
    padded = np.empty((volume.shape[0], *padded_shape), np.float32)
    padded[:] = volume.reshape(volume.shape[0], -1).min(1)[:, None, None, None]
    padded[:, :shape[0], :shape[1], :shape[2]] = volume
    total = np.zeros((model.config.out_channels, *padded_shape), np.float32)
    count = np.zeros(padded_shape, np.float32)
    for z in window_starts(padded_shape[0], patch[0], overlap):
        for y in window_starts(padded_shape[1], patch[1], overlap):
            for x in window_starts(padded_shape[2], patch[2], overlap):
                box = (slice(z, z + patch[0]), slice(y, y + patch[1]), slice(x, x + patch[2]))
                window = torch.from_numpy(np.ascontiguousarray(padded[(slice(None), *box)]))[None].to(device)
                with autocast(device, bf16):
                    output = model(window.contiguous(memory_format=model.memory_format))
                total[(slice(None), *box)] += output.float()[0].cpu().numpy()
                count[box] += 1
    return (total / count)[:, :shape[0], :shape[1], :shape[2]]


class Synthesizer:
    """A trained denoiser with its schedule, bound to a device and precision."""

    def __init__(self, model: UNet, schedule: NoiseSchedule, prediction: str, device: torch.device,
                 bf16: bool = True):
        self.model = prepare_model(model, device)
        self.schedule = schedule
        self.prediction = prediction
        self.device = device
        self.bf16 = bf16

    @classmethod
    def from_weights(cls, weights: Weights, device: torch.device, bf16: bool = True) -> Synthesizer:
        schedule = NoiseSchedule(**weights.extra["schedule"])
        return cls(unet_from_weights(weights), schedule, weights.extra["prediction"], device, bf16)

    def denoiser(self, conditions: torch.Tensor) -> Denoiser:
        """Epsilon predictor for fixed conditions (converts v predictions)."""
        def predict(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with autocast(self.device, self.bf16):
                output = self.model(torch.cat([x_t, conditions], 1).contiguous(memory_format=torch.channels_last), t)
            output = output.float()
            return output if self.prediction == "epsilon" else self.schedule.eps_from_v(x_t, t, output)
        return predict

    @torch.no_grad()
    def synthesize(self, conditions: np.ndarray, brain: np.ndarray, sampler: SamplerConfig, seed: int = 0,
                   batch_size: int = 32, start: np.ndarray | None = None, on_batch=None) -> np.ndarray:
        """Synthetic T1ce slices (N, S, S) for conditions (N, 3, S, S); background stays background."""
        generator = torch.Generator().manual_seed(seed)
        out = np.empty((len(conditions),) + conditions.shape[2:], dtype=np.float32)
        for lo in range(0, len(conditions), batch_size):
            hi = min(lo + batch_size, len(conditions))
            cond = torch.from_numpy(np.ascontiguousarray(conditions[lo:hi], dtype=np.float32)).to(self.device)
            seed_image = None
            if start is not None:
                seed_image = torch.from_numpy(np.ascontiguousarray(start[lo:hi, None], dtype=np.float32)).to(self.device)
            x0 = sample(self.denoiser(cond), self.schedule, sampler, torch.Size((hi - lo, 1, *cond.shape[2:])),
                        generator, self.device, seed_image)
            out[lo:hi] = x0[:, 0].clamp(-1, 1).cpu().numpy()
            if on_batch:
                on_batch(hi - lo)
        out[~brain.astype(bool)] = BACKGROUND
        return out


StageOne = Synthesizer | Regressor
"""Anything with ``synthesize(conditions, brain, sampler, seed, batch_size, start)``."""


def synthesizer_weights(weights: Weights) -> Weights:
    """The stage-1 weights in a DDPM or regressor file, or those embedded in a segmenter file."""
    return weights if weights.stage in ("ddpm", "regressor") else nested_weights(weights, "ddpm")


def stage_one_of(weights: Weights) -> Weights | None:
    """The stage-1 weights a segmenter file embeds; None for a segmenter without one (no residual, no synthesis)."""
    return synthesizer_weights(weights) if weights.extra.get("ddpm") is not None else None


def build_synthesizer(weights: Weights, device: torch.device, bf16: bool = True) -> StageOne:
    """The stage-1 model of ``weights``: the DDPM, or the deterministic regressor."""
    if weights.stage == "regressor":
        return Regressor(TorchSlices(unet_from_weights(weights), device, bf16))
    return Synthesizer.from_weights(weights, device, bf16)


def torch_segmenter(weights: Weights, device: torch.device, bf16: bool = True) -> SegmentationNet:
    """The segmenter of ``weights`` run by torch."""
    return SegmentationNet(TorchSlices(unet_from_weights(weights), device, bf16))
