"""The mask as a DICOM Segmentation (highdicom): one segment per BraTS sub-region, frames on the T1ce series'
instances, same Frame of Reference, the patient and study attributes copied from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from recoseg_cli import __version__
from recoseg_cli.dicom.study import Series, pydicom_module
from recoseg_cli.dicom.volume import read_series
from recoseg_cli.errors import InputError
from recoseg_cli.io.outputs import write_atomically
from recoseg_cli.overlay import SUBREGION_COLOURS

COLOURS = dict(SUBREGION_COLOURS)

SEGMENTS = (((1,), "NCR/NET", "Necrosis", "necrotic"), ((2,), "ED", "Edema", "edema"),
            ((4, 3), "ET", "Neoplasm", "enhancing"))
"""Mask labels (BraTS 2020 and 2023), segment label, SNOMED CT property type and overlay sub-region (its display
colour) of each segment (numbered 1, 2, 3)."""


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def write_segmentation(mask_path: Path, reference: Series, path: Path) -> None:
    """Write the NIfTI mask (on the grid of the reference series) as a DICOM SEG referencing that series."""
    try:
        import highdicom as hd
        from pydicom.sr.codedict import codes
    except ImportError:
        raise InputError("DICOM SEG output needs highdicom: pip install 'recoseg[dicom]'") from None
    pydicom = pydicom_module()
    grid = read_series(reference)
    mask = sitk.Resample(sitk.ReadImage(str(mask_path)), grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                         sitk.sitkUInt8)
    labels = sitk.GetArrayFromImage(mask)  # (slice, row, column), slices in the order of sorted_files()
    segment_numbers = np.zeros_like(labels)
    for number, (values, *_) in enumerate(SEGMENTS, start=1):
        segment_numbers[np.isin(labels, values)] = number
    sources = [pydicom.dcmread(f) for f in reference.sorted_files()]
    algorithm = hd.AlgorithmIdentificationSequence(name="recoseg", version=__version__,
                                                   family=codes.cid7162.ArtificialIntelligence)
    descriptions = [hd.seg.SegmentDescription(
        segment_number=number, segment_label=name,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=getattr(codes.SCT, property_type),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
        anatomic_regions=[codes.SCT.Brain], display_color=hd.color.CIELabColor.from_rgb(*_rgb(COLOURS[subregion])))
        for number, (_, name, property_type, subregion) in enumerate(SEGMENTS, start=1)]
    segmentation = hd.seg.Segmentation(
        source_images=sources, pixel_array=segment_numbers, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=9000,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="recoseg", manufacturer_model_name="recoseg",
        software_versions=__version__, device_serial_number="none", series_description="recoseg tumour segments")
    write_atomically(Path(path), lambda tmp: segmentation.save_as(str(tmp)))
