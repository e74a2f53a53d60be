"""Checks that a result can be trusted: the sequences' contrasts match their roles, and the mask is plausible.

Sequence identity uses tissue physics that holds across scanners, in intensities robustly standardized inside
the brain (median 0, interquartile range 1):

- T1 vs T1ce: contrast uptake (vessels, choroid plexus, enhancing tumour) gives T1ce a brighter tail than T1;
  the statistic is T1ce's 99.5th percentile minus T1's.
- FLAIR vs T2: cerebrospinal fluid (the darkest voxels of T1) is bright on T2 and suppressed on FLAIR; the
  statistic is T2's median there minus FLAIR's.

On the 38 real BraTS 2018 cases both statistics are positive (smallest 0.12 and 1.12), and on their thick-slice
exams as prepared (0.03 and 0.94); swapping the pair negates them. Below ``SWAP_REFUSAL`` the result would be
garbage and segmentation is refused (``force`` overrides); between it and 0 a warning is raised. Other mix-ups
(T1 with T2, say) are not checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from recoseg_cli.errors import InputError
from recoseg_cli.regions import bounding_box

SWAP_REFUSAL = -0.5
"""A pair statistic below this refuses the case as swapped; between it and 0 it warns."""

LARGEST_TUMOUR_SHARE = 0.3
"""Whole tumour above this share of the brain is implausible (real gliomas: at most about a fifth)."""

OUTSIDE_BRAIN_SHARE = 0.05
"""Tumour voxels outside the brain mask above this share of the tumour are implausible."""

SMALLEST_BRAIN_ML = 300.0
"""A brain mask smaller than this (mL) means the images hold little or no brain."""

LARGEST_BRAIN_ML = 2500.0
"""A non-zero region larger than this is a head with its skull on (BraTS brains measure 1.2-1.7 L)."""


@dataclass(frozen=True)
class PairCheck:
    """One pair of sequences that are easily swapped, and the statistic that tells them apart."""

    first: str
    second: str
    meaning: str

    def statistic(self, z: dict[str, np.ndarray]) -> float:
        if self.second == "t1ce":
            return float(np.percentile(z["t1ce"], 99.5) - np.percentile(z["t1"], 99.5))
        fluid = z["t1"] < np.percentile(z["t1"], 5)
        return float(np.median(z["t2"][fluid]) - np.median(z["flair"][fluid]))


PAIR_CHECKS = (PairCheck("t1", "t1ce", "the T1ce is no brighter than the T1 in its brightest voxels (contrast uptake)"),
               PairCheck("flair", "t2", "fluid is brighter on the FLAIR than on the T2"))


RIM_VOXELS = 3
"""Voxels this close to the edge of the region where every image has signal are left out: the resampled sequences
of a prepared exam blend tissue with the zero background there, and its darkest T1 voxels were that rim rather
than fluid (clean thick-slice exams of the real cases: FLAIR/T2 statistic down to -0.90 with the rim, 0.94 or
more without it; ``examples/sequence_checks``)."""

SAMPLE_STRIDE = 4
"""Every 4th brain voxel enters the statistics: percentiles of a few hundred thousand voxels are as stable as of
all of them, at a quarter of the time on the segment command's path."""


def standardized(volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Every ``SAMPLE_STRIDE``-th brain voxel of ``volume``, with median 0 and interquartile range 1."""
    values = volume[brain][::SAMPLE_STRIDE].astype(np.float32)
    low, median, high = np.percentile(values, [25, 50, 75])
    return (values - median) / max(float(high - low), 1e-6)


def sequence_statistics(images: dict[str, np.ndarray], brain: np.ndarray, rim: int = RIM_VOXELS) -> dict[str, float]:
    """Each pair check's statistic (positive when the roles look right), for the pairs whose images exist; computed
    where every image is non-zero inside ``brain``, ``rim`` voxels in from that region's edge (none when that holds
    under 1000 voxels)."""
    inside = brain & np.all([volume != 0 for volume in images.values()], axis=0)
    box = bounding_box(inside, 1)
    core = ndimage.binary_erosion(inside[box], iterations=rim) if rim else inside[box]
    if core.sum() < 1000:
        return {}
    z = {name: standardized(volume[box], core) for name, volume in images.items()}
    return {f"{c.first}/{c.second}": round(c.statistic(z), 3) for c in PAIR_CHECKS
            if {c.first, c.second, "t1"} <= set(z)}


def sequence_warnings(statistics: dict[str, float], files: dict[str, Path], force: bool = False) -> list[str]:
    """Warnings for pairs whose ``sequence_statistics`` look swapped; raises InputError for a clear swap unless
    ``force``."""
    warnings = []
    for check in PAIR_CHECKS:
        value = statistics.get(f"{check.first}/{check.second}")
        if value is None or value >= 0:
            continue
        names = f"{files[check.first].name} ({check.first}) and {files[check.second].name} ({check.second})"
        if value < SWAP_REFUSAL and not force:
            raise InputError(f"{names} look swapped: {check.meaning} (statistic {value:.2f}); rename them, or pass "
                             "--force to segment anyway")
        warnings.append(f"{names} may be swapped: {check.meaning} (statistic {value:.2f})")
    return warnings


def mask_warnings(whole: np.ndarray, brain: np.ndarray, voxel_ml: float) -> list[str]:
    """Warnings for an implausible result: a tiny brain, a tumour filling the brain, a tumour outside it."""
    brain_ml = float(brain.sum()) * voxel_ml
    if brain_ml < SMALLEST_BRAIN_ML:
        return [f"the brain mask measures {brain_ml:.0f} mL: the images hold little or no brain"]
    warnings = []
    tumour_ml = float(whole.sum()) * voxel_ml
    if tumour_ml > LARGEST_TUMOUR_SHARE * brain_ml:
        warnings.append(f"implausible result: whole tumour {tumour_ml:.0f} mL is {tumour_ml / brain_ml:.0%} of the "
                        f"brain ({brain_ml:.0f} mL); check the inputs and the weights")
    outside = float((whole & ~brain).sum()) * voxel_ml
    if tumour_ml > 0 and outside > OUTSIDE_BRAIN_SHARE * tumour_ml:
        warnings.append(f"implausible result: {outside:.1f} mL of the tumour lies outside the brain mask")
    return warnings
