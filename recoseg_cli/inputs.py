"""Segmenter input channels built from modality slices and the synthetic T1ce, in one place."""

from __future__ import annotations

import numpy as np

from recoseg_cli.constants import MODALITIES, TARGET_INDEX

CHANNELS = ("flair", "t1", "t1ce", "t2", "residual", "synth", "subtraction")
"""residual: |T1ce - synthetic T1ce|; synth: synthetic T1ce; subtraction: T1ce - T1 (classical)."""

DEFAULT_CHANNELS = ("flair", "t1", "t1ce", "t2", "residual")


def needs_synthesis(channels: tuple[str, ...]) -> bool:
    """Whether the channels always use the synthetic T1ce."""
    return "residual" in channels or "synth" in channels


def assemble(images: np.ndarray, brain: np.ndarray, channels: tuple[str, ...], synth: np.ndarray | None = None,
             t1ce_missing: np.ndarray | None = None) -> np.ndarray:
    """(N, C, S, S) inputs from (N, 4, S, S) modalities in ``MODALITIES`` order and (N, S, S) synthetic T1ce.

    Slices flagged in ``t1ce_missing`` get the synthetic T1ce in place of the real one and a zero residual,
    which is what ``segment`` does for a patient without T1ce.
    """
    n = len(images)
    missing = np.zeros(n, bool) if t1ce_missing is None else np.asarray(t1ce_missing, bool)
    t1ce = images[:, TARGET_INDEX].copy()
    if missing.any():
        if synth is None:
            raise ValueError("a missing T1ce needs the synthetic T1ce")
        t1ce[missing] = synth[missing]
    planes = []
    for name in channels:
        if name == "t1ce":
            planes.append(t1ce)
        elif name in MODALITIES:
            planes.append(images[:, MODALITIES.index(name)])
        elif name == "residual":
            residual = np.abs(t1ce - synth) * brain
            residual[missing] = 0.0
            planes.append(residual)
        elif name == "synth":
            planes.append(synth)
        elif name == "subtraction":
            t1 = images[:, MODALITIES.index("t1")]
            planes.append(np.where(brain, t1ce - t1, 0.0))
        else:
            raise ValueError(f"unknown input channel {name!r}; choose from {', '.join(CHANNELS)}")
    return np.stack(planes, 1).astype(np.float32)
