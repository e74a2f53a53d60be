"""BraTS tumour regions (whole tumour, tumour core, enhancing tumour) and their label maps in both schemes."""

from __future__ import annotations

import numpy as np

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
