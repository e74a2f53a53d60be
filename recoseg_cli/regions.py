"""BraTS tumour regions (whole tumour, tumour core, enhancing tumour): their label maps in both schemes, and
the post-processing that turns region probabilities into nested masks."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from recoseg_cli.constants import LABEL_SCHEMES, SUBREGION_LABELS

REGIONS = ("whole", "core", "enhancing")
"""whole (WT): every tumour label; core (TC): necrotic/non-enhancing core and enhancing tumour;
enhancing (ET): the enhancing label (4 in BraTS2020, 3 in BraTS2023). Each region holds the next."""

REGION_ABBREVIATIONS = {"whole": "WT", "core": "TC", "enhancing": "ET"}

_REGION_SUBREGIONS = {"whole": ("necrotic", "edema", "enhancing"), "core": ("necrotic", "enhancing"),
                      "enhancing": ("enhancing",)}


def region_labels(region: str, scheme: str) -> tuple[int, ...]:
    """Label values that make up ``region`` in ``scheme``."""
    if region not in _REGION_SUBREGIONS:
        raise ValueError(f"unknown region {region!r}; choose from {', '.join(REGIONS)}")
    return tuple(SUBREGION_LABELS[scheme][name] for name in _REGION_SUBREGIONS[region])


def region_mask(seg: np.ndarray, region: str, scheme: str | None = None) -> np.ndarray:
    """Boolean mask of ``region`` in a label map; without ``scheme`` either BraTS scheme is read.

    Reading both schemes at once is safe: each scheme's enhancing value is not a valid label of the other.
    """
    schemes = (scheme,) if scheme else tuple(SUBREGION_LABELS)
    return np.isin(seg, sorted({v for s in schemes for v in region_labels(region, s)}))


def region_stack(seg: np.ndarray, regions: tuple[str, ...]) -> np.ndarray:
    """float32 targets (N, K, ...) for label maps (N, ...), one channel per region."""
    return np.stack([region_mask(seg, r) for r in regions], 1).astype(np.float32)


def labels_from_regions(whole: np.ndarray, core: np.ndarray, enhancing: np.ndarray, scheme: str) -> np.ndarray:
    """uint8 label map in ``scheme`` from nested binary regions; core is kept inside whole, enhancing inside core."""
    values = SUBREGION_LABELS[scheme]
    core = core & whole
    enhancing = enhancing & core
    labels = np.zeros(whole.shape, np.uint8)
    labels[whole] = values["edema"]
    labels[core] = values["necrotic"]
    labels[enhancing] = values["enhancing"]
    return labels


def subregion_masks(masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """NCR/NET, edema and ET voxels from nested region masks {whole, core, enhancing}."""
    return {"necrotic": masks["core"] & ~masks["enhancing"], "edema": masks["whole"] & ~masks["core"],
            "enhancing": masks["enhancing"]}


def convert_labels(seg: np.ndarray, source: str, target: str) -> np.ndarray:
    """The same sub-regions written in another label scheme (BraTS2020 4 <-> BraTS2023 3)."""
    for scheme in (source, target):
        if scheme not in LABEL_SCHEMES:
            raise ValueError(f"unknown label scheme {scheme!r}; choose from {', '.join(LABEL_SCHEMES)}")
    out = np.zeros(seg.shape, np.uint8)
    for name, value in SUBREGION_LABELS[source].items():
        out[seg == value] = SUBREGION_LABELS[target][name]
    return out


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
    box = bounding_box(mask)
    labels, _ = ndimage.label(mask[box], CONNECTIVITY)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_voxels
    keep[0] = False
    kept = np.zeros_like(mask)
    kept[box] = keep[labels]
    return kept


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...]:
    """The bounding box of a mask's voxels grown by ``margin`` voxels, clipped to the array (the whole array when
    the mask is empty): every component, and every distance between components, lies inside it."""
    box = ndimage.find_objects(mask.astype(np.uint8))
    if not box:
        return tuple(slice(0, n) for n in mask.shape)
    return tuple(slice(max(s.start - margin, 0), min(s.stop + margin, n)) for s, n in zip(box[0], mask.shape))


def nearest_distances(sources: np.ndarray, targets: np.ndarray, spacing) -> np.ndarray:
    """For each voxel of the mask ``sources`` (in ``np.argwhere`` order), the distance (in ``spacing`` units) to
    the nearest voxel of the non-empty mask ``targets``."""
    from scipy.spatial import cKDTree  # only here: 0.15 s of import that most commands do not need

    spacing = np.asarray(spacing, float)
    distances, _ = cKDTree(np.argwhere(targets) * spacing).query(np.argwhere(sources) * spacing)
    return distances


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


def region_volumes_ml(masks: dict[str, np.ndarray], voxel_ml: float) -> dict[str, float]:
    """Volumes (mL) of the sub-regions (NCR/NET, edema, ET) and the regions (TC, WT)."""
    voxels = {**subregion_masks(masks), "core": masks["core"], "whole": masks["whole"]}
    return {name: round(float(mask.sum()) * voxel_ml, 3) for name, mask in voxels.items()}
