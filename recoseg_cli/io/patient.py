"""Load and validate all volumes of one patient on a shared grid."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recoseg_cli.constants import LABEL_SCHEMES
from recoseg_cli.errors import InputError
from recoseg_cli.io.discovery import Patient
from recoseg_cli.io.nifti import Geometry, load_volume


@dataclass
class PatientVolumes:
    """Canonical (RAS) float32 volumes of one patient, their shared geometry and the optional labels."""

    patient: Patient
    images: dict[str, np.ndarray]
    geometry: Geometry
    seg: np.ndarray | None
    label_scheme: str

    @property
    def zooms(self) -> tuple[float, float, float]:
        return self.geometry.canonical_zooms


def default_label_scheme(patient: Patient) -> str:
    """BraTS2023 labels for BraTS2023 file names, BraTS2020 labels otherwise."""
    return "brats2023" if patient.scheme == "brats2023" else "brats2020"


def load_patient(patient: Patient, modalities: tuple[str, ...], label_scheme: str | None = None) -> PatientVolumes:
    """Load ``modalities`` (all required) and the segmentation if present, checking grid, brain and labels."""
    patient.require(modalities)
    scheme = label_scheme or default_label_scheme(patient)
    if scheme not in LABEL_SCHEMES:
        raise InputError(f"unknown label scheme {scheme!r}; choose one of {', '.join(LABEL_SCHEMES)}")
    seg_path = patient.seg
    paths = [patient.images[m] for m in modalities] + ([seg_path] if seg_path is not None else [])
    loaded = _load_volumes(paths)
    images: dict[str, np.ndarray] = {}
    reference: tuple[str, Geometry] | None = None
    for modality, path, (data, geometry) in zip(modalities, paths, loaded):
        if reference is None:
            reference = (str(path), geometry)
        elif not geometry.matches(reference[1]):
            raise InputError(_grid_mismatch(reference, str(path), geometry))
        if not np.any(data):
            raise InputError(f"{path}: image is empty (all voxels are zero)")
        images[modality] = data
    assert reference is not None
    seg = None
    if seg_path is not None:
        seg_data, seg_geometry = loaded[-1]
        if not seg_geometry.matches(reference[1]):
            raise InputError(_grid_mismatch(reference, str(seg_path), seg_geometry))
        seg = _checked_labels(seg_data, scheme, str(seg_path))
    return PatientVolumes(patient=patient, images=images, geometry=reference[1], seg=seg, label_scheme=scheme)


def _load_volumes(paths: list[Path]) -> list[tuple[np.ndarray, Geometry]]:
    """Read files side by side (decompression releases the GIL); the first failing file in order raises."""
    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        return list(pool.map(load_volume, paths))


def _grid_mismatch(reference: tuple[str, Geometry], path: str, geometry: Geometry) -> str:
    ref_path, ref = reference
    if ref.shape != geometry.shape:
        return f"{path}: shape {geometry.shape} differs from {ref_path} {ref.shape}"
    return f"{path}: affine differs from {ref_path} (max difference {np.abs(ref.affine - geometry.affine).max():.4g})"


def _checked_labels(seg: np.ndarray, scheme: str, path: str) -> np.ndarray:
    if np.any(seg != np.round(seg)):
        raise InputError(f"{path}: segmentation has non-integer values")
    values = set(np.unique(seg).astype(int).tolist())
    unexpected = values - LABEL_SCHEMES[scheme]
    if unexpected:
        allowed = sorted(LABEL_SCHEMES[scheme])
        raise InputError(f"{path}: labels {sorted(unexpected)} are not in the {scheme} scheme {allowed}")
    return seg.astype(np.uint8)
