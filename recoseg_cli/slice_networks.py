"""Stage 1's regressor and stage 2's segmenter over slices, whatever runs the network (torch or ONNX Runtime)."""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from recoseg_cli.diffusion.sampler_config import SamplerConfig
from recoseg_cli.errors import InputError
from recoseg_cli.preprocess import BACKGROUND


class SliceNetwork(Protocol):
    """A time-free 2D network: (B, C, S, S) float32 slices in, (B, K, S, S) float32 outputs back."""

    out_channels: int

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


def predict_slices(network: SliceNetwork, inputs: np.ndarray, batch_size: int,
                   on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Outputs (N, K, S, S) of ``network`` over inputs (N, C, S, S), in batches."""
    out = np.empty((len(inputs), network.out_channels) + inputs.shape[2:], dtype=np.float32)
    for lo in range(0, len(inputs), batch_size):
        hi = min(lo + batch_size, len(inputs))
        out[lo:hi] = network(np.ascontiguousarray(inputs[lo:hi], dtype=np.float32))
        if on_batch:
            on_batch(hi - lo)
    return out


class Regressor:
    """A deterministic U-Net that maps FLAIR, T1, T2 to T1ce directly (the L1 regressor of stage 1)."""

    def __init__(self, network: SliceNetwork):
        self.network = network

    def synthesize(self, conditions: np.ndarray, brain: np.ndarray, sampler: SamplerConfig | None = None, seed: int = 0,
                   batch_size: int = 32, start: np.ndarray | None = None, on_batch=None) -> np.ndarray:
        """Same interface as ``networks.Synthesizer.synthesize``; seed and start are ignored, a sampler other than
        the default one-step one is refused (a regressor does not sample)."""
        if sampler not in (None, SamplerConfig()):
            raise InputError(f"sampler {sampler.name} ({sampler.steps} steps): stage 1 of these weights is a "
                             "deterministic L1 regressor, which does not sample; choose DDPM weights (--model ddpm)")
        out = np.clip(predict_slices(self.network, conditions, batch_size, on_batch)[:, 0], -1, 1)
        out[~brain.astype(bool)] = BACKGROUND
        return out


class SegmentationNet:
    """A trained segmentation U-Net: tumour-region probabilities of slices."""

    def __init__(self, network: SliceNetwork):
        self.network = network

    def predict(self, inputs: np.ndarray, brain: np.ndarray, batch_size: int = 32, on_batch=None) -> np.ndarray:
        """Probabilities (N, K, S, S), one channel per trained region, for inputs (N, C, S, S); 0 outside the brain."""
        probabilities = predict_slices(self.network, inputs, batch_size, on_batch)
        np.negative(probabilities, out=probabilities)  # the sigmoid in place: no copies of 30 MB
        np.exp(probabilities, out=probabilities)
        probabilities += 1.0
        np.reciprocal(probabilities, out=probabilities)
        probabilities *= brain[:, None]
        return probabilities
