"""Faults of a raw exam that registration cannot repair: a sequence of another patient, a header mirrored left-right.

After rigid registration every sequence of one head shows the same anatomy at the same place: sulci, ventricles
and the tumour's outline give edges in the same voxels whatever the contrast. The anatomy match
(``structure_matches``) is the correlation of the edge strengths (gradient magnitudes) of a registered sequence and
the reference inside the brain, away from its outline. Every sequence is also registered mirrored left-right:
brains are nearly symmetric, so a mirrored sequence still lines up fairly well, but its mirror lines up better,
while a correct one lines up better than its mirror. ``sequence_flags`` refuses a sequence that lines up neither
way (``MATCH_FLOOR``) or better mirrored (``MIRROR_MARGIN``), and warns about one that lines up much worse than
the exam's other sequences (``RELATIVE_FLOOR``: the usual sign of another patient's sequence). Calibration on exams
made from the 38 real cases: ``examples/clinical_exams/README.md``.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from recoseg_cli.regions import bounding_box

MATCH_FLOOR = 0.2
"""A registered sequence whose anatomy match with the reference is below this, mirrored or not, is not of this
head (or its registration failed)."""

RELATIVE_FLOOR = 0.6
"""A sequence whose anatomy match is below this share of the median of the other sequences' is warned about."""

MIRROR_MARGIN = 0.05
"""A sequence whose mirror matches the reference by this much more than the sequence itself is mirrored."""

EDGE_SIGMA_MM = 1.5
"""Gaussian scale of the edges compared (mm; the prepared grid is 1 mm)."""

EDGE_TRUNCATE = 4.0
EDGE_RADIUS = int(EDGE_TRUNCATE * EDGE_SIGMA_MM + 0.5)
"""The Gaussian filters' kernels reach this many voxels (scipy's rule): the edges are computed in the brain's
bounding box grown by it, the same values as over the whole grid at a fraction of the cost."""

OUTLINE_MM = 4
"""Voxels this close to the brain mask's outline are left out: every masked sequence has an edge there."""


def structure_matches(reference: np.ndarray, others: dict[str, np.ndarray], brain: np.ndarray) -> dict[str, float]:
    """Per image of ``others``, the Pearson correlation of its gradient magnitudes with those of ``reference`` (all
    co-registered on one 1 mm grid) inside ``brain`` eroded by ``OUTLINE_MM``: 1 for the same anatomy in the same
    place whatever the contrasts, near 0 for unrelated images (NaN when the brain is too small to tell)."""
    box = bounding_box(brain, EDGE_RADIUS)
    inside = ndimage.binary_erosion(brain[box], iterations=OUTLINE_MM)
    if inside.sum() < 1000:
        return {name: float("nan") for name in others}

    def standardized_edges(image: np.ndarray) -> np.ndarray:
        edges = ndimage.gaussian_gradient_magnitude(image[box].astype(np.float32), EDGE_SIGMA_MM,
                                                    truncate=EDGE_TRUNCATE)[inside]
        return (edges - edges.mean()) / max(float(edges.std()), 1e-6)

    fixed = standardized_edges(reference)
    return {name: float(np.mean(fixed * standardized_edges(image))) for name, image in others.items()}


def mirrored(image: sitk.Image) -> sitk.Image:
    """The image mirrored left-right in the world, its header kept: the voxels flipped along the axis closest to
    the world's x axis (what a header with the wrong left-right sign shows)."""
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    axis = int(np.argmax(np.abs(direction[0])))
    flips = [axis == a for a in range(3)]
    flipped = sitk.Flip(image, flips, flipAboutOrigin=False)
    flipped.CopyInformation(image)
    return flipped


def sequence_flags(names: dict[str, str], matches: dict[str, dict[str, float]],
                   reference: str) -> tuple[list[str], list[str]]:
    """Faults (refused unless forced) and warnings of the registered sequences from their anatomy matches
    (``{role: {"as is": ..., "mirrored": ...}}``) and file ``names``."""
    faults, warnings = [], []
    for role, match in matches.items():
        plain, flipped = match["as is"], match["mirrored"]
        others = [m["as is"] for r, m in matches.items() if r != role]
        if max(plain, flipped) < MATCH_FLOOR:
            faults.append(f"{names[role]} ({role}): its anatomy does not line up with the {reference.upper()}'s "
                          f"after registration (match {plain:.2f}, below {MATCH_FLOOR}): another patient's sequence, "
                          "or a failed registration")
        elif flipped > plain + MIRROR_MARGIN:
            faults.append(f"{names[role]} ({role}): looks mirrored left-right against the {reference.upper()} "
                          f"(anatomy match {plain:.2f}, {flipped:.2f} once mirrored); check its header's orientation")
        elif len(others) >= 2 and plain < RELATIVE_FLOOR * float(np.median(others)):
            against = ", ".join(f"{o:.2f}" for o in others)
            warnings.append(f"{names[role]} ({role}): lines up with the {reference.upper()} much less well than the "
                            f"other sequences (anatomy match {plain:.2f} against {against}): check that it is this "
                            "patient's")
    return faults, warnings
