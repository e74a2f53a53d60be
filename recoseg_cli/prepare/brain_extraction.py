"""Brain extraction: the interface, and the backend for scans that are skull-stripped already (their non-zero
voxels). A backend for heads with the skull on (HD-BET) is not built in yet: such exams are refused."""

from __future__ import annotations

from typing import Protocol

import SimpleITK as sitk


class BrainExtractor(Protocol):
    """Anything that turns an image into a brain mask on the same grid."""

    name: str

    def extract(self, image: sitk.Image) -> sitk.Image: ...


class NonZeroBrain:
    """The non-zero voxels: the brain of an image that is skull-stripped already."""

    name = "non-zero voxels (skull-stripped input)"

    def extract(self, image: sitk.Image) -> sitk.Image:
        return sitk.Cast(image != 0, sitk.sitkUInt8)
