"""Shared inference helpers: rebuild a U-Net from a weights file, run it over slices in batches."""

from __future__ import annotations

import numpy as np
import torch

from recoseg_cli.devices import autocast
from recoseg_cli.models.unet import UNet2D, UNetConfig
from recoseg_cli.weights import Weights


def unet_from_weights(weights: Weights) -> UNet2D:
    model = UNet2D(UNetConfig.from_dict(weights.model_config))
    model.load_state_dict(weights.state_dict)
    return model


def prepare_model(model: UNet2D, device: torch.device) -> UNet2D:
    """Evaluation mode, on ``device``, channels_last."""
    return model.to(device).eval().to(memory_format=torch.channels_last)


@torch.no_grad()
def predict_slices(model: UNet2D, inputs: np.ndarray, device: torch.device, bf16: bool, batch_size: int,
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
