"""DDPM noise schedule and forward process; arithmetic in float64 whatever the network precision."""

from __future__ import annotations

import math

import torch


class NoiseSchedule:
    """Betas and cumulative alphas of a diffusion process with ``num_steps`` timesteps."""

    def __init__(self, kind: str = "linear", num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        if kind == "linear":
            betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
        elif kind == "cosine":
            betas = _cosine_betas(num_steps)
        else:
            raise ValueError(f"unknown schedule {kind!r}; choose linear or cosine")
        self.kind = kind
        self.num_steps = num_steps
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """Cumulative alpha at integer timesteps ``t``; t = -1 means the clean image (1.0)."""
        padded = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod])
        return padded[t.long().cpu() + 1]

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Noise ``x0`` to timestep ``t``: sqrt(a_t) x0 + sqrt(1 - a_t) noise."""
        a = _expand(self.alpha_bar(t), x0)
        return (a.sqrt() * x0.double() + (1 - a).sqrt() * noise.double()).to(x0.dtype)

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        a = _expand(self.alpha_bar(t), x_t)
        return ((x_t.double() - (1 - a).sqrt() * eps.double()) / a.sqrt()).to(x_t.dtype)

    def eps_from_v(self, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """epsilon = sqrt(a) v + sqrt(1 - a) x_t; coefficients in float64, both at most 1, tensors in x_t's dtype."""
        a = _expand(self.alpha_bar(t), x_t)
        return a.sqrt().to(x_t.dtype) * v.to(x_t.dtype) + (1 - a).sqrt().to(x_t.dtype) * x_t

    def v_target(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        a = _expand(self.alpha_bar(t), x0)
        return (a.sqrt() * noise.double() - (1 - a).sqrt() * x0.double()).to(x0.dtype)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "num_steps": self.num_steps}


def _expand(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.device).reshape(-1, *([1] * (like.dim() - 1)))


def _cosine_betas(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol and Dhariwal's cosine schedule."""
    def f(t: float) -> float:
        return math.cos((t / num_steps + s) / (1 + s) * math.pi / 2) ** 2

    return torch.tensor([min(1 - f(i + 1) / f(i), max_beta) for i in range(num_steps)], dtype=torch.float64)
