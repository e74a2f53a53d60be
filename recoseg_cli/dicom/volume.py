"""A series' slices stacked into one volume (SimpleITK/GDCM) on the exact grid its positions give, and a study
written as a NIfTI exam with BraTS names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from recoseg_cli.dicom.study import Series
from recoseg_cli.errors import InputError
from recoseg_cli.io.discovery import Patient, discover_patient

GRID_TOLERANCE_MM = 0.01
"""Largest distance between a slice's position and where the stacked volume puts it."""


def read_series(series: Series) -> sitk.Image:
    """The series as a volume, slices in order along their normal; its grid is checked against every slice's
    position (a file that fails to read is named)."""
    files = series.sorted_files()
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in files])
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise InputError(f"series {series.label()}: its pixels cannot be read ({str(error).strip().splitlines()[-1]})"
                         ) from None
    by_file = dict(zip(series.files, series.positions))
    for k, path in enumerate(files):
        if np.linalg.norm(np.subtract(image.TransformIndexToPhysicalPoint((0, 0, k)), by_file[path])) > \
                GRID_TOLERANCE_MM:
            raise InputError(f"{path}: slice {k} of series {series.label()} lies off the volume's grid")
    return image


def write_exam(roles: dict[str, Series], folder: Path, case_id: str) -> Patient:
    """Each role's series as ``folder/<case_id>_<role>.nii.gz``; the exam as a patient."""
    folder.mkdir(parents=True, exist_ok=True)
    for role, series in roles.items():
        sitk.WriteImage(read_series(series), str(folder / f"{case_id}_{role}.nii.gz"))
    return discover_patient(folder)
