"""From region probabilities to a label map: threshold, small-component removal, nesting, small-ET rule."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

CONNECTIVITY = np.ones((3, 3, 3), bool)
"""26-connectivity for connected components."""


@dataclass(frozen=True)
class PostprocessConfig:
    """How probabilities become labels; the bundled weights carry the setting the cross-validation chose."""

    threshold: float = 0.5
    min_component_ml: float = 0.0
    """Whole-tumour components smaller than this (mL) are removed, with every region inside them."""
    min_enhancing_ml: float = 0.0
    """An enhancing-tumour prediction smaller than this in total (mL) is relabelled as necrotic core."""

    def to_dict(self) -> dict:
        return asdict(self)


def drop_small_components(mask: np.ndarray, min_voxels: float) -> np.ndarray:
    """Remove connected components (26-connectivity) smaller than ``min_voxels``."""
    if min_voxels <= 0 or not mask.any():
        return mask
    labels, _ = ndimage.label(mask, CONNECTIVITY)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[labels]


def region_masks(probabilities: dict[str, np.ndarray], config: PostprocessConfig,
                 voxel_ml: float) -> dict[str, np.ndarray]:
    """Nested boolean masks {whole, core, enhancing} from region probabilities (canonical volumes).

    Enhancing tumour implies core, core implies whole; regions absent from ``probabilities`` are empty.
    """
    def above(region: str) -> np.ndarray:
        return probabilities[region] >= config.threshold if region in probabilities else np.zeros_like(whole)

    whole = drop_small_components(probabilities["whole"] >= config.threshold, config.min_component_ml / voxel_ml)
    enhancing = above("enhancing") & whole
    core = (above("core") | enhancing) & whole
    if enhancing.sum() * voxel_ml < config.min_enhancing_ml:
        enhancing = np.zeros_like(whole)
    return {"whole": whole, "core": core, "enhancing": enhancing}
