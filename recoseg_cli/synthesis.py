"""Stage 1 at inference: the conditional DDPM that synthesizes T1ce slices from FLAIR, T1 and T2."""

from __future__ import annotations

import numpy as np
import torch

from recoseg_cli.devices import autocast
from recoseg_cli.diffusion.samplers import Denoiser, SamplerConfig, sample
from recoseg_cli.diffusion.schedule import NoiseSchedule
from recoseg_cli.inference import predict_slices, prepare_model, unet_from_weights
from recoseg_cli.models.unet import UNet
from recoseg_cli.preprocess import BACKGROUND
from recoseg_cli.weights import Weights, nested_weights


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


class Regressor:
    """A deterministic U-Net that maps FLAIR, T1, T2 to T1ce directly (the L1 baseline of stage 1)."""

    def __init__(self, model: UNet, device: torch.device, bf16: bool = True):
        self.model = prepare_model(model, device)
        self.device = device
        self.bf16 = bf16

    def synthesize(self, conditions: np.ndarray, brain: np.ndarray, sampler: SamplerConfig | None = None,
                   seed: int = 0, batch_size: int = 32, start: np.ndarray | None = None, on_batch=None) -> np.ndarray:
        """Same interface as ``Synthesizer.synthesize``; sampler, seed and start are ignored."""
        out = np.clip(predict_slices(self.model, conditions, self.device, self.bf16, batch_size, on_batch)[:, 0], -1, 1)
        out[~brain.astype(bool)] = BACKGROUND
        return out


StageOne = Synthesizer | Regressor
"""Anything with ``synthesize(conditions, brain, sampler, seed, batch_size, start)``."""


def synthesizer_weights(weights: Weights) -> Weights:
    """The stage-1 weights in a DDPM or regressor file, or those embedded in a segmenter file."""
    return weights if weights.stage in ("ddpm", "regressor") else nested_weights(weights, "ddpm")


def build_synthesizer(weights: Weights, device: torch.device, bf16: bool = True) -> StageOne:
    """The stage-1 model of ``weights``: the DDPM, or the deterministic regressor."""
    if weights.stage == "regressor":
        return Regressor(unet_from_weights(weights), device, bf16)
    return Synthesizer.from_weights(weights, device, bf16)
