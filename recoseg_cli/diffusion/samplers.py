"""Samplers for x0 given conditions: ancestral DDPM (full or respaced), DDIM, and one-step x0 prediction.

Each sampler is a short loop over a ``step`` function; the steps reproduce diffusers' DDPMScheduler
(variance "fixed_small", no clipping) and DDIMScheduler (no clipping) exactly.
"""

from __future__ import annotations

from typing import Callable

import torch

from recoseg_cli.diffusion.sampler_config import SAMPLERS, SamplerConfig
from recoseg_cli.diffusion.schedule import NoiseSchedule

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""Maps (x_t, t) to the predicted noise epsilon, conditions already bound."""

def spaced_timesteps(num_train: int, steps: int) -> list[int]:
    """Descending timesteps with "trailing" spacing: the first is always num_train - 1."""
    if not 1 <= steps <= num_train:
        raise ValueError(f"steps must be between 1 and {num_train}, got {steps}")
    ratio = num_train / steps
    return [int(round(num_train - i * ratio)) - 1 for i in range(steps)]


def ddpm_step(schedule: NoiseSchedule, eps: torch.Tensor, t: int, t_prev: int, x_t: torch.Tensor,
              noise: torch.Tensor | None) -> torch.Tensor:
    """One ancestral step from t to t_prev (t_prev = -1 is the final clean sample).

    The posterior mean (a combination of x_t and the x0 that eps implies) is folded into two float64
    coefficients, so the tensors see one multiply-add in float64.
    """
    a_t = schedule.alpha_bar(torch.tensor([t])).item()
    a_prev = schedule.alpha_bar(torch.tensor([t_prev])).item()
    alpha = a_t / a_prev
    beta = 1 - alpha
    x0_weight = a_prev**0.5 * beta / (1 - a_t)
    x_weight = alpha**0.5 * (1 - a_prev) / (1 - a_t)
    mean = x_t.double().mul_(x0_weight / a_t**0.5 + x_weight)
    mean.add_(eps.double(), alpha=-x0_weight * (1 - a_t) ** 0.5 / a_t**0.5)
    if t_prev >= 0 and noise is not None:
        variance = max((1 - a_prev) / (1 - a_t) * beta, 1e-20)
        mean.add_(noise.double(), alpha=variance**0.5)
    return mean.to(x_t.dtype)


def ddim_step(schedule: NoiseSchedule, eps: torch.Tensor, t: int, t_prev: int, x_t: torch.Tensor, eta: float,
              noise: torch.Tensor | None) -> torch.Tensor:
    """One DDIM step from t to t_prev with stochasticity ``eta`` (coefficients folded in float64)."""
    a_t = schedule.alpha_bar(torch.tensor([t])).item()
    a_prev = schedule.alpha_bar(torch.tensor([t_prev])).item()
    std = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) ** 0.5
    direction = max(1 - a_prev - std**2, 0.0) ** 0.5
    x_weight = (a_prev / a_t) ** 0.5
    eps_weight = direction - x_weight * (1 - a_t) ** 0.5
    out = x_t.double().mul_(x_weight).add_(eps.double(), alpha=eps_weight)
    if eta > 0 and noise is not None:
        out.add_(noise.double(), alpha=std)
    return out.to(x_t.dtype)


def _randn(shape: torch.Size, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Noise from a CPU generator, so CPU and GPU runs draw the same numbers."""
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device)


def sample(denoiser: Denoiser, schedule: NoiseSchedule, config: SamplerConfig, shape: torch.Size,
           generator: torch.Generator, device: torch.device, start: torch.Tensor | None = None) -> torch.Tensor:
    """Draw x0 of ``shape``. ``start`` (the real target, if known) seeds the one-step sampler's noised input."""
    if config.name == "onestep":
        return _one_step(denoiser, schedule, config, shape, generator, device, start)
    if config.name not in SAMPLERS:
        raise ValueError(f"unknown sampler {config.name!r}; choose one of {', '.join(SAMPLERS)}")
    timesteps = spaced_timesteps(schedule.num_steps, config.steps)
    x = _randn(shape, generator, device)
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        eps = denoiser(x, torch.full((shape[0],), t, device=device, dtype=torch.long)).float()
        stochastic = config.name == "ddpm" or config.eta > 0
        noise = _randn(shape, generator, device) if t_prev >= 0 and stochastic else None
        if config.name == "ddpm":
            x = ddpm_step(schedule, eps, t, t_prev, x, noise)
        else:
            x = ddim_step(schedule, eps, t, t_prev, x, config.eta, noise)
    return x


def _one_step(denoiser: Denoiser, schedule: NoiseSchedule, config: SamplerConfig, shape: torch.Size,
              generator: torch.Generator, device: torch.device, start: torch.Tensor | None) -> torch.Tensor:
    """Average of ``steps`` x0 predictions from inputs noised to ``start_step``."""
    t0 = min(config.start_step, schedule.num_steps - 1)
    t = torch.full((shape[0],), t0, device=device, dtype=torch.long)
    base = start if start is not None else torch.zeros(shape, device=device)
    total = torch.zeros(shape, device=device)
    for _ in range(config.steps):
        x_t = schedule.q_sample(base.float(), t, _randn(shape, generator, device))
        total += schedule.predict_x0(x_t, t, denoiser(x_t, t).float())
    return total / config.steps
