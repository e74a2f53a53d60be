"""Training loss of the conditional DDPM: epsilon or v prediction, optional terms on the predicted x0."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from recoseg_cli.diffusion.schedule import NoiseSchedule


@dataclass(frozen=True)
class DiffusionLossConfig:
    """``prediction``: v (default) or epsilon. ``x0_bce_dice``: weight of the paper's BCE + Dice on predicted x0.
    ``x0_l1``: weight of an L1 term on predicted x0, which pulls the one-step image from the conditional
    mean (what MSE learns) towards the conditional median, as an L1 regressor learns.

    v is the default because the default one-step sampler reads x0 at the noisiest timestep, where
    epsilon prediction divides its error by sqrt(alpha_bar) ~ 0.006.
    """

    prediction: str = "v"
    x0_bce_dice: float = 0.0
    last_step_fraction: float = 0.0
    """Fraction of each batch trained at the last timestep, where the default one-step sampler reads x0;
    the rest is drawn uniformly over all timesteps."""
    x0_l1: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def soft_dice_loss(probabilities: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                   eps: float = 1.0, over_batch: bool = False) -> torch.Tensor:
    """1 - soft Dice of each sample and channel over its pixels, averaged over samples and channels.

    With ``over_batch`` each channel's Dice counts the pixels of the whole batch at once ("batch Dice"), so a
    slice with a few pixels of a region weighs by its pixels, not as much as a slice full of it.
    """
    w = torch.ones_like(target) if weight is None else weight
    dims = ((0,) if over_batch else ()) + tuple(range(2, target.dim()))
    intersection = (probabilities * target * w).sum(dims)
    total = (probabilities * w).sum(dims) + (target * w).sum(dims)
    return (1 - (2 * intersection + eps) / (total + eps)).mean()


def diffusion_loss(model, schedule: NoiseSchedule, config: DiffusionLossConfig, target: torch.Tensor,
                   conditions: torch.Tensor, weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Loss for one batch; ``weight`` (B, 1, H, W) masks pixels out (tumour, when training on healthy tissue)."""
    device = target.device
    b = target.shape[0]
    t = torch.randint(0, schedule.num_steps, (b,), generator=generator)
    if config.last_step_fraction > 0:
        last = torch.rand(b, generator=generator) < config.last_step_fraction
        t = torch.where(last, schedule.num_steps - 1, t)
    t = t.to(device)
    noise = torch.randn(target.shape, generator=generator).to(device)
    x_t = schedule.q_sample(target, t, noise)
    output = model(torch.cat([x_t, conditions], dim=1), t).float()
    goal = noise if config.prediction == "epsilon" else schedule.v_target(target, t, noise)
    denominator = weight.sum().clamp_min(1.0)
    loss = (((output - goal) ** 2) * weight).sum() / denominator
    if config.x0_bce_dice == 0 and config.x0_l1 == 0:
        return loss
    eps = output if config.prediction == "epsilon" else schedule.eps_from_v(x_t, t, output)
    x0 = schedule.predict_x0(x_t, t, eps).clamp(-1, 1)
    if config.x0_l1 > 0:
        loss = loss + config.x0_l1 * ((x0 - target).abs() * weight).sum() / denominator
    if config.x0_bce_dice > 0:
        p, q = (x0 + 1) / 2, (target + 1) / 2
        bce = (F.binary_cross_entropy(p.clamp(1e-4, 1 - 1e-4), q, reduction="none") * weight).sum() / denominator
        loss = loss + config.x0_bce_dice * (bce + soft_dice_loss(p, q, weight))
    return loss
