"""Stage 2 at inference: the residual-guided U-Net that outputs whole-tumour probabilities per slice."""

from __future__ import annotations

import numpy as np
import torch

from recoseg_cli.devices import autocast
from recoseg_cli.models.unet import UNet2D, UNetConfig
from recoseg_cli.weights import Weights


class Segmenter:
    """A trained segmentation U-Net bound to a device and precision."""

    def __init__(self, model: UNet2D, device: torch.device, bf16: bool = True):
        self.model = model.to(device).eval().to(memory_format=torch.channels_last)
        self.device = device
        self.bf16 = bf16

    @classmethod
    def from_weights(cls, weights: Weights, device: torch.device, bf16: bool = True) -> Segmenter:
        model = UNet2D(UNetConfig.from_dict(weights.model_config))
        model.load_state_dict(weights.state_dict)
        return cls(model, device, bf16)

    @torch.no_grad()
    def predict(self, inputs: np.ndarray, brain: np.ndarray, batch_size: int = 32, on_batch=None) -> np.ndarray:
        """Tumour probabilities (N, S, S) for inputs (N, C, S, S); zero outside the brain."""
        out = np.empty((len(inputs),) + inputs.shape[2:], dtype=np.float32)
        for lo in range(0, len(inputs), batch_size):
            hi = min(lo + batch_size, len(inputs))
            x = torch.from_numpy(np.ascontiguousarray(inputs[lo:hi])).to(self.device)
            with autocast(self.device, self.bf16):
                logits = self.model(x.contiguous(memory_format=torch.channels_last))
            out[lo:hi] = torch.sigmoid(logits.float())[:, 0].cpu().numpy()
            if on_batch:
                on_batch(hi - lo)
        return out * brain
