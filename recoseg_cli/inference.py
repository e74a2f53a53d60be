"""Shared inference helpers: rebuild a U-Net from a weights file, run it over slices in batches."""

from __future__ import annotations

import numpy as np
import torch

from recoseg_cli.devices import autocast
from recoseg_cli.models.unet import UNet, UNetConfig
from recoseg_cli.weights import Weights


def unet_from_weights(weights: Weights) -> UNet:
    model = UNet(UNetConfig.from_dict(weights.model_config))
    model.load_state_dict(weights.state_dict)
    return model


def prepare_model(model: UNet, device: torch.device) -> UNet:
    """Evaluation mode, on ``device``, channels-last."""
    return model.to(device).eval().to(memory_format=model.memory_format)


@torch.no_grad()
def predict_slices(model: UNet, inputs: np.ndarray, device: torch.device, bf16: bool, batch_size: int,
                   on_batch=None) -> np.ndarray:
    """Outputs (N, K, S, S) of a time-free U-Net over inputs (N, C, S, S), in batches."""
    out = np.empty((len(inputs), model.config.out_channels) + inputs.shape[2:], dtype=np.float32)
    for lo in range(0, len(inputs), batch_size):
        hi = min(lo + batch_size, len(inputs))
        x = torch.from_numpy(np.ascontiguousarray(inputs[lo:hi], dtype=np.float32)).to(device)
        with autocast(device, bf16):
            output = model(x.contiguous(memory_format=torch.channels_last))
        out[lo:hi] = output.float().cpu().numpy()
        if on_batch:
            on_batch(hi - lo)
    return out


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
