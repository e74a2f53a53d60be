"""The separate lesions of a mask: each whole-tumour component with its size, regions and distance from the largest.

A component far from the largest one is either a satellite of a multifocal glioma or false tumour; on the real
cases and thick-slice exams made from them, cross-validated, the false components lay 17-82 mm from the largest
lesion and the true satellites 3-25 mm (``examples/clinical_exams/README.md``). Nothing is removed here: distant
components are listed and flagged for review.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from recoseg_cli.regions import CONNECTIVITY, bounding_box, nearest_distances

DISTANT_MM = 20.0
"""A component whose nearest voxel lies farther than this from the largest component is flagged for review."""


def components_by_size(whole: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The components of a whole-tumour mask: its labelled array, the labels largest component first, and each
    label's voxel count (indexed by label - 1)."""
    labelled, count = ndimage.label(whole, CONNECTIVITY)
    sizes = np.bincount(labelled.ravel(), minlength=count + 1)[1:]
    return labelled, np.argsort(-sizes, kind="stable") + 1, sizes


def distances_from_largest(labelled: np.ndarray, labels: np.ndarray, zooms: tuple[float, float, float]) -> np.ndarray:
    """Each component's distance (mm, indexed by label - 1) from its nearest voxel to the largest component's
    nearest voxel; 0 for the largest. Nearest voxels lie on the components' surfaces, so only those are searched."""
    if len(labels) < 2:
        return np.zeros(len(labels))
    largest = labelled == labels[0]
    surfaces = (labelled > 0) & ~ndimage.binary_erosion(labelled > 0)
    others = surfaces & ~largest
    distance = nearest_distances(others, surfaces & largest, zooms)
    nearest = np.full(len(labels), np.inf)
    nearest[labels[0] - 1] = 0.0
    np.minimum.at(nearest, labelled[others] - 1, distance)
    return nearest


def lesion_components(masks: dict[str, np.ndarray], probability: np.ndarray,
                      zooms: tuple[float, float, float]) -> list[dict]:
    """Whole-tumour components, largest first: volume (mL), core and enhancing volumes, mean whole-tumour
    probability and distance (mm) from the largest component."""
    box = bounding_box(masks["whole"])
    labelled, labels, sizes = components_by_size(masks["whole"][box])
    if len(labels) == 0:
        return []
    voxel_ml = float(np.prod(zooms)) / 1000.0
    index = range(1, len(labels) + 1)
    order = labels - 1
    nearest = distances_from_largest(labelled, labels, zooms)
    means = ndimage.mean(probability[box], labelled, index)
    core, enhancing = (ndimage.sum_labels(masks[r][box], labelled, index) for r in ("core", "enhancing"))
    return [{"ml": round(float(sizes[k]) * voxel_ml, 3), "core_ml": round(float(core[k]) * voxel_ml, 3),
             "enhancing_ml": round(float(enhancing[k]) * voxel_ml, 3),
             "mean_probability": round(float(means[k]), 3), "distance_mm": round(float(nearest[k]), 1)}
            for k in order]


def distant_warning(components: list[dict]) -> list[str]:
    """A warning listing the components farther than ``DISTANT_MM`` from the largest, if any."""
    distant = [c for c in components[1:] if c["distance_mm"] > DISTANT_MM]
    if not distant:
        return []
    listed = ", ".join(f"{c['ml']:.1f} mL at {c['distance_mm']:.0f} mm" for c in distant)
    return [f"{len(distant)} tumour component(s) lie more than {DISTANT_MM:.0f} mm from the largest lesion ({listed}): "
            "satellites or false tumour, review them (report: components)"]
