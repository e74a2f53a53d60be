"""Grids aligned with the world's axes (ITK's LPS), as BraTS volumes are."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def world_grid(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """An empty grid of ``spacing_mm`` voxels, axes along the world's, covering ``image``'s field of view."""
    size = image.GetSize()
    corners = np.array([image.TransformContinuousIndexToPhysicalPoint([c * (s - 1) for c, s in zip(corner, size)])
                        for corner in np.ndindex(2, 2, 2)])
    low, high = corners.min(axis=0), corners.max(axis=0)
    grid = sitk.Image([int(np.ceil(e / spacing_mm)) + 1 for e in high - low], sitk.sitkFloat32)
    grid.SetSpacing([spacing_mm] * 3)
    grid.SetOrigin(low.tolist())
    return grid
