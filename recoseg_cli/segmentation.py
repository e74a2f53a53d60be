"""Stage 2 at inference: the residual-guided U-Net that outputs tumour-region probabilities per slice."""

from __future__ import annotations

import numpy as np
import torch

from recoseg_cli.inference import predict_slices, prepare_model, unet_from_weights
from recoseg_cli.models.unet import UNet
from recoseg_cli.weights import Weights


class Segmenter:
    """A trained segmentation U-Net bound to a device and precision."""

    def __init__(self, model: UNet, device: torch.device, bf16: bool = True):
        self.model = prepare_model(model, device)
        self.device = device
        self.bf16 = bf16

    @classmethod
    def from_weights(cls, weights: Weights, device: torch.device, bf16: bool = True) -> Segmenter:
        return cls(unet_from_weights(weights), device, bf16)

    def predict(self, inputs: np.ndarray, brain: np.ndarray, batch_size: int = 32, on_batch=None) -> np.ndarray:
        """Probabilities (N, K, S, S), one channel per trained region, for inputs (N, C, S, S); 0 outside the brain."""
        logits = predict_slices(self.model, inputs, self.device, self.bf16, batch_size, on_batch)
        return (1.0 / (1.0 + np.exp(-logits))) * brain[:, None]
