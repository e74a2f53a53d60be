"""A raw exam made BraTS-like, and the way back: every sequence rigidly registered to the reference sequence (T1ce,
else FLAIR, T2, T1: ``REFERENCE_ORDER``) and resampled onto a 1 mm grid over its field of view, the skull removed,
and each sequence checked for faults registration cannot repair (``faults``); images on that grid map back to the
reference's native grid (``PreparedExam.to_native``).

The prepared folder holds ``<case>_<sequence>.nii.gz`` for the sequences the exam has (BraTS names),
``<case>_brainmask.nii.gz``, ``<case>_<sequence>_to_<reference>.tfm`` (ITK transforms from prepared to native points
of each other sequence) and ``preparation.json`` (reference, steps, seconds, registration metrics, anatomy matches
and faults, transforms, brain volume).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from recoseg_cli.checks import LARGEST_BRAIN_ML
from recoseg_cli.constants import MIN_SLICES, MODALITIES
from recoseg_cli.errors import InputError
from recoseg_cli.io.discovery import Patient, discover_patient
from recoseg_cli.io.json_io import write_json
from recoseg_cli.io.nifti import Geometry, load_volume, read_image, to_file_orientation, volume_shape
from recoseg_cli.io.outputs import write_atomically
from recoseg_cli.pipeline import require_fluid_sensitive
from recoseg_cli.prepare.brain_extraction import BrainExtractor, HDBetBrain, NonZeroBrain
from recoseg_cli.prepare.faults import mirrored, sequence_flags, structure_matches
from recoseg_cli.prepare.grid import world_grid
from recoseg_cli.prepare.registration import RigidRegistrator

if TYPE_CHECKING:
    import torch

SPACING_MM = 1.0
"""Voxel size of the prepared grid (that of BraTS)."""

POOR_REGISTRATION = -0.3
"""A final mutual-information metric above this (less negative) is reported as a poor registration."""

BRAIN_ML = (800.0, 2200.0)
"""Plausible brain-mask volumes (mL)."""

REFERENCE_ORDER = ("t1ce", "flair", "t2", "t1")
"""The first of these an exam holds is its reference: the grid everything is registered to and returns to."""


def reference_sequence(roles) -> str:
    """The reference sequence among ``roles`` (``REFERENCE_ORDER``)."""
    return next(role for role in REFERENCE_ORDER if role in roles)


def non_zero_ml(volume: np.ndarray, voxel_mm: tuple[float, ...]) -> float:
    """Volume of the non-zero voxels (mL): the brain of a skull-stripped scan, the whole head (or field of view)
    of one with its skull on."""
    return float(np.count_nonzero(volume)) * float(np.prod(voxel_mm)) / 1000.0


def readiness(patient: Patient) -> list[str]:
    """Why the patient's files cannot go straight to segmentation; empty when they can (one grid, skull-stripped,
    as BraTS-ready inputs are)."""
    headers = {role: read_image(path) for role, path in patient.images.items()}
    for role, image in headers.items():
        volume_shape(image, patient.images[role])
    reference = headers[reference_sequence(headers)]
    if any(image.shape != reference.shape or not np.allclose(image.affine, reference.affine, atol=1e-3)
           for image in headers.values()):
        return ["the sequences are on different grids"]
    head_ml = non_zero_ml(np.asarray(reference.dataobj), reference.header.get_zooms()[:3])
    if head_ml > LARGEST_BRAIN_ML:
        return [f"the skull is on (non-zero region {head_ml / 1000:.1f} L)"]
    return []


def _read(path: Path, role: str) -> sitk.Image:
    try:
        image = sitk.ReadImage(str(path), sitk.sitkFloat32)
    except RuntimeError:
        raise InputError(f"{path}: not a readable image") from None
    if image.GetDimension() != 3:
        raise InputError(f"{path}: expected a 3D image")
    if min(image.GetSize()) < MIN_SLICES:
        raise InputError(f"{path}: {min(image.GetSize())} slices, too few to register the {role} "
                         f"(at least {MIN_SLICES})")
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    if not np.allclose(direction @ direction.T, np.eye(3), atol=1e-3):
        raise InputError(f"{path}: its orientation is missing or not a rotation")
    return image


@dataclass
class PreparedExam:
    """A prepared exam on disk, with what maps its images back to the native grid of its reference sequence."""

    folder: Path
    case_id: str
    native_reference: Path
    """The reference sequence's file as the exam gave it."""
    report: dict = field(default_factory=dict)
    unmasked_reference: sitk.Image | None = None
    """The reference on the prepared grid before brain extraction (in memory only, for the QC picture)."""
    reference: str = "t1ce"
    """The sequence whose native grid the outputs go back to."""

    @classmethod
    def read(cls, folder: Path) -> PreparedExam:
        """A prepared exam written earlier (``recoseg prepare``, ``--keep-prepared``), from its ``preparation.json``."""
        record = Path(folder) / "preparation.json"
        if not record.is_file():
            raise InputError(f"{folder}: not a prepared exam (no preparation.json)")
        report = json.loads(record.read_text())
        reference = report.get("reference", "t1ce")
        native = report.get("native_reference", report.get("native_t1ce"))  # the key of earlier versions
        return cls(Path(folder), discover_patient(folder).case_id, Path(native), report, reference=reference)

    def patient(self) -> Patient:
        """The prepared exam as a BraTS-ready patient, with the exam's case id."""
        return replace(discover_patient(self.folder), case_id=self.case_id)

    @cached_property
    def native_geometry(self) -> Geometry:
        return load_volume(self.native_reference)[1]

    @cached_property
    def _prepared_reference(self) -> sitk.Image:
        return sitk.ReadImage(str(self.folder / f"{self.case_id}_{self.reference}.nii.gz"))

    @cached_property
    def _native_reference(self) -> sitk.Image:
        return sitk.ReadImage(str(self.native_reference))

    def to_native(self, volume: np.ndarray, prepared: Geometry, linear: bool) -> np.ndarray:
        """A canonical array of the prepared grid (``prepared``) resampled onto the native reference grid, linearly
        (probabilities, images) or by nearest neighbour (masks); a canonical array of that grid."""
        kind = np.float32 if linear else np.uint8
        image = sitk.GetImageFromArray(to_file_orientation(volume.astype(kind), prepared).transpose(2, 1, 0))
        image.CopyInformation(self._prepared_reference)
        resampled = sitk.Resample(image, self._native_reference, sitk.Transform(),
                                  sitk.sitkLinear if linear else sitk.sitkNearestNeighbor, 0.0,
                                  sitk.sitkFloat32 if linear else sitk.sitkUInt8)
        file_order = sitk.GetArrayFromImage(resampled).transpose(2, 1, 0)
        return np.ascontiguousarray(nib.orientations.apply_orientation(file_order, self.native_geometry.orientation))

    def native_truth(self, path: Path) -> np.ndarray | None:
        """A segmentation file on the native reference grid (canonical), or None when it lies on another grid."""
        labels, geometry = load_volume(path)
        return labels.astype(np.uint8) if geometry.matches(self.native_geometry) else None


def prepare_exam(patient: Patient, folder: Path, extractor: BrainExtractor | None = None,
                 registrator: RigidRegistrator | None = None, device: str | torch.device = "cpu",
                 bf16: bool = True) -> PreparedExam:
    """Register the exam's other sequences to its reference (``reference_sequence``), resample them all onto a 1 mm
    grid, extract the brain (HD-BET on ``device`` when the reference has its skull on, unless ``extractor`` is
    given), and write the prepared exam into ``folder`` (BraTS names); raises InputError for an exam that cannot be
    prepared."""
    require_fluid_sensitive(patient)
    roles = [m for m in MODALITIES if m in patient.images]
    ref = reference_sequence(roles)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    native = {m: _read(patient.images[m], m) for m in roles}
    grid = world_grid(native[ref], SPACING_MM)
    seconds["load"] = time.perf_counter() - start
    registrator = registrator or RigidRegistrator()
    transforms, metrics, prepared = {}, {}, {}
    for role in roles:
        start = time.perf_counter()
        if role == ref:
            transform = sitk.Transform()
        else:
            transform, metrics[role] = registrator.register(native[ref], native[role], str(patient.images[role]))
            seconds[f"register {role}"] = time.perf_counter() - start
        transforms[role] = transform
        prepared[role] = sitk.Resample(native[role], grid, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    start = time.perf_counter()
    if extractor is None:
        head_ml = non_zero_ml(sitk.GetArrayViewFromImage(native[ref]), native[ref].GetSpacing())
        extractor = HDBetBrain(device, bf16) if head_ml > LARGEST_BRAIN_ML else NonZeroBrain()
    brain = extractor.extract(native[ref], grid)
    seconds["brain extraction"] = time.perf_counter() - start
    brain_ml = float(np.count_nonzero(sitk.GetArrayViewFromImage(brain))) * SPACING_MM ** 3 / 1000.0
    if not BRAIN_ML[0] <= brain_ml <= BRAIN_ML[1]:
        raise InputError(f"{patient.images[ref]}: the brain mask measures {brain_ml:.0f} mL, outside the "
                         f"plausible {BRAIN_ML[0]:.0f}-{BRAIN_ML[1]:.0f} mL; check the {ref.upper()}")
    warnings = [f"{patient.images[role].name} ({role}): poor registration to {ref.upper()} (metric {value:.2f})"
                for role, value in metrics.items() if value > POOR_REGISTRATION]
    start = time.perf_counter()
    matches, faults, mismatches = _sequence_faults(patient, ref, native, prepared, brain, grid, registrator)
    warnings += mismatches
    seconds["fault checks"] = time.perf_counter() - start
    case = patient.case_id
    folder = Path(folder)
    for role, image in prepared.items():
        masked = sitk.Mask(image, brain)
        write_atomically(folder / f"{case}_{role}.nii.gz", lambda tmp, image=masked: sitk.WriteImage(image, str(tmp)))
    write_atomically(folder / f"{case}_brainmask.nii.gz", lambda tmp: sitk.WriteImage(brain, str(tmp)))
    for role, transform in transforms.items():
        if role != ref:
            write_atomically(folder / f"{case}_{role}_to_{ref}.tfm",
                             lambda tmp, t=transform: sitk.WriteTransform(t, str(tmp)))
    report = {"reference": ref, "native_reference": str(patient.images[ref]), "spacing_mm": SPACING_MM,
              "grid": list(grid.GetSize()), "brain_extraction": extractor.name, "brain_ml": round(brain_ml, 1),
              "registration_metric": {k: round(v, 4) for k, v in metrics.items()},
              "anatomy_match": matches, "faults": faults,
              "transforms": {role: {"kind": t.GetName(), "parameters": [round(p, 6) for p in t.GetParameters()],
                                    "fixed_parameters": [round(p, 6) for p in t.GetFixedParameters()]}
                             for role, t in transforms.items() if role != ref},
              "seconds": {k: round(v, 3) for k, v in seconds.items()}, "warnings": warnings}
    write_json(folder / "preparation.json", report)
    return PreparedExam(folder, case, patient.images[ref], report, prepared[ref], ref)


def _sequence_faults(patient: Patient, ref: str, native: dict[str, sitk.Image], prepared: dict[str, sitk.Image],
                     brain: sitk.Image, grid: sitk.Image,
                     registrator: RigidRegistrator) -> tuple[dict[str, dict[str, float]], list[str], list[str]]:
    """Each registered sequence's anatomy match with the reference ``ref``, as it is and mirrored left-right
    (registered again), and the faults and warnings they show (``faults``)."""
    others = [role for role in native if role != ref]
    moved = {role: prepared[role] for role in others}
    for role in others:
        flipped = mirrored(native[role])
        transform, _ = registrator.register(native[ref], flipped, str(patient.images[role]))
        moved[f"{role} mirrored"] = sitk.Resample(flipped, grid, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    view = sitk.GetArrayViewFromImage  # no copies: the images outlive the views
    found = structure_matches(view(prepared[ref]), {name: view(image) for name, image in moved.items()},
                              view(brain) > 0)
    matches = {role: {"as is": round(found[role], 4), "mirrored": round(found[f"{role} mirrored"], 4)}
               for role in others}
    faults, warnings = sequence_flags({role: patient.images[role].name for role in others}, matches, ref)
    return matches, faults, warnings
