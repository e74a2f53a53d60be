"""Tumour regions a segmenter can be trained for, from BraTS label maps."""

from __future__ import annotations

import numpy as np

from recoseg_cli.constants import ENHANCING_LABEL

REGIONS = ("whole", "enhancing")
"""whole: every tumour label; enhancing: the enhancing-tumour label (4 in BraTS2020, 3 in BraTS2023)."""


def region_mask(seg: np.ndarray, region: str) -> np.ndarray:
    """Boolean mask of ``region`` in a label map of either BraTS scheme."""
    if region == "whole":
        return seg > 0
    if region == "enhancing":
        # each scheme allows only its own enhancing value, so both can be matched at once
        return np.isin(seg, tuple(ENHANCING_LABEL.values()))
    raise ValueError(f"unknown region {region!r}; choose from {', '.join(REGIONS)}")


def region_stack(seg: np.ndarray, regions: tuple[str, ...]) -> np.ndarray:
    """float32 targets (N, K, ...) for label maps (N, ...), one channel per region."""
    return np.stack([region_mask(seg, r) for r in regions], 1).astype(np.float32)
