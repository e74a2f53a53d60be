"""Training cases that look like prepared clinical exams, made from BraTS-ready cases.

A scanner's exam reaches the segmenter after ``recoseg_cli.prepare``: each sequence was acquired on a grid of its
own (thick slices along some axis, another in-plane voxel size, the head moved), then registered and brought back
to 1 mm by linear interpolation, and a brain extractor drew an outline a little looser or tighter than BraTS's.
``clinical_variant`` reproduces that on a BraTS-ready case: per sequence a random acquisition grid with its slab
profile (partial volume), a small motion, the way back with a small registration error; one brain outline for
all sequences, dilated (the rim filled with CSF- or dura-like signal) or eroded. Labels stay on the 1 mm grid.
Contrast, gamma and bias field are left to the slice augmentation of training (``training.augment``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from recoseg_cli.constants import MODALITIES
from recoseg_cli.data.clinical_exam import SeriesGrid, motion, series_grid
from recoseg_cli.io.discovery import discover_patient

VARIANT_MARK = "__clinical"
"""Case ids of variants are ``<source case>__clinical<k>``."""


@dataclass(frozen=True)
class VariantConfig:
    """Ranges of the random acquisition, registration error and brain outline of a clinical variant."""

    thick_probability: float = 0.85
    """Chance that a sequence is acquired on a thick-slice grid (else it keeps its 1 mm grid)."""
    thickness_mm: tuple[float, float] = (2.0, 7.0)
    in_plane_mm: tuple[float, float] = (0.4, 1.2)
    rotation_deg: float = 3.0
    shift_mm: float = 2.0
    registration_error: float = 0.15
    """Share of the motion left uncorrected by registration (per parameter, drawn in [0, this])."""
    dilate_probability: float = 0.45
    erode_probability: float = 0.2
    rim_mm: tuple[float, float] = (1.0, 4.0)
    rim_signal: tuple[float, float] = (0.1, 1.6)
    """Signal of a dilated rim, as a multiple of the sequence's median brain intensity."""


def variant_id(case_id: str, index: int) -> str:
    return f"{case_id}{VARIANT_MARK}{index}"


def source_case(case_id: str) -> str:
    """The BraTS-ready case a variant was made from (the case itself for a source case)."""
    return case_id.split(VARIANT_MARK, 1)[0]


def _acquired(image: sitk.Image, rng: np.random.Generator, config: VariantConfig) -> sitk.Image:
    """One sequence as a scanner's thick-slice series would give it after registration back to ``image``'s grid."""
    axis = int(rng.integers(3))
    in_plane = float(rng.uniform(*config.in_plane_mm))
    thickness = float(rng.uniform(*config.thickness_mm))
    world = [in_plane] * 3
    world[axis] = thickness
    sigma = [max(s, 1.0) / 2.355 if s > 1.0 else 0.01 for s in world]  # slab profile: FWHM = voxel size
    blurred = sitk.SmoothingRecursiveGaussian(image, sigma)
    others = [a for a in range(3) if a != axis]
    grid = SeriesGrid((in_plane, in_plane, thickness), (others[0], others[1], axis),
                      tuple(rng.uniform(-config.rotation_deg, config.rotation_deg, 3)),
                      tuple(rng.uniform(-config.shift_mm, config.shift_mm, 3)))
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint([s / 2 for s in image.GetSize()]))
    series = sitk.Resample(blurred, series_grid(image, grid), motion(grid, centre), sitk.sitkLinear, 0.0)
    error = rng.uniform(0, config.registration_error, 2)
    found = SeriesGrid(grid.spacing, grid.axes, tuple(np.multiply(grid.rotation_deg, 1 - error[0])),
                       tuple(np.multiply(grid.shift_mm, 1 - error[1])))
    return sitk.Resample(series, image, motion(found, centre).GetInverse(), sitk.sitkLinear, 0.0)


def _outline(brain: np.ndarray, rng: np.random.Generator, config: VariantConfig) -> tuple[np.ndarray, np.ndarray]:
    """A brain extractor's outline around ``brain`` (1 mm voxels) and its rim outside ``brain`` (may be empty)."""
    draw = rng.random()
    radius = int(round(rng.uniform(*config.rim_mm)))
    ball = ndimage.generate_binary_structure(3, 1)
    if draw < config.dilate_probability:
        outline = ndimage.binary_dilation(brain, ball, iterations=radius)
    elif draw < config.dilate_probability + config.erode_probability:
        outline = ndimage.binary_erosion(brain, ball, iterations=max(1, radius // 2))
    else:
        outline = brain
    return outline, outline & ~brain


def _smooth_noise(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A smooth random field in about [0.6, 1.4]."""
    coarse = rng.uniform(0.6, 1.4, (6, 6, 6))
    return ndimage.zoom(coarse, [s / 6 for s in shape], order=1)[: shape[0], : shape[1], : shape[2]]


def clinical_variant(case_folder: Path, output: Path, index: int, config: VariantConfig = VariantConfig()) -> Path:
    """Write the variant ``<case>__clinical<index>`` of a BraTS-ready case into ``output/<variant id>/``
    (BraTS names, the labels masked by the new outline); seeded by the case id and ``index``. Returns its folder."""
    patient = discover_patient(case_folder)
    rng = np.random.default_rng([zlib.crc32(patient.case_id.encode()), index])
    case = variant_id(patient.case_id, index)
    folder = Path(output) / case
    folder.mkdir(parents=True, exist_ok=True)
    sources = {m: sitk.ReadImage(str(patient.images[m]), sitk.sitkFloat32) for m in MODALITIES}
    arrays = {m: sitk.GetArrayFromImage(image) for m, image in sources.items()}
    brain = np.any([a != 0 for a in arrays.values()], axis=0)
    outline, rim = _outline(brain, rng, config)
    for role, image in sources.items():
        acquired = _acquired(image, rng, config) if rng.random() < config.thick_probability else image
        values = sitk.GetArrayFromImage(acquired)
        if rim.any():
            level = float(np.median(arrays[role][brain])) * rng.uniform(*config.rim_signal)
            values = np.where(rim, values + level * _smooth_noise(values.shape, rng), values)
        values = np.where(outline, np.maximum(values, 1e-3), 0.0).astype(np.float32)
        written = sitk.GetImageFromArray(values)
        written.CopyInformation(image)
        sitk.WriteImage(written, str(folder / f"{case}_{role}.nii.gz"))
    if patient.seg is not None:
        seg = sitk.ReadImage(str(patient.seg))
        labels = np.where(outline, sitk.GetArrayFromImage(seg), 0).astype(np.uint8)
        written = sitk.GetImageFromArray(labels)
        written.CopyInformation(seg)
        sitk.WriteImage(written, str(folder / f"{case}_seg.nii.gz"))
    return folder
