"""One patient's data through the method: load and check the volumes, cut them into normalized slices,
assemble the segmenter's input channels, and put slice outputs back into the patient's voxel grid."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from recoseg_cli.constants import (CONDITION_INDEX, CONDITION_MODALITIES, FLUID_SENSITIVE, LABEL_SCHEMES,
                                   MIN_SLICES, MODALITIES, TARGET_INDEX, TARGET_MODALITY)
from recoseg_cli.errors import InputError
from recoseg_cli.io.discovery import Patient
from recoseg_cli.io.nifti import Geometry, load_volume
from recoseg_cli.preprocess import BACKGROUND, PreprocessConfig, SlicedPatient, slice_patient


@dataclass
class PatientVolumes:
    """Canonical (RAS) float32 volumes of one patient, their shared geometry and the optional labels."""

    patient: Patient
    images: dict[str, np.ndarray]
    geometry: Geometry
    seg: np.ndarray | None
    label_scheme: str
    warnings: list[str] = field(default_factory=list)
    """Problems with optional inputs (an unusable ground truth)."""

    @property
    def zooms(self) -> tuple[float, float, float]:
        return self.geometry.canonical_zooms


def default_label_scheme(patient: Patient) -> str:
    """BraTS2023 labels for BraTS2023 file names, BraTS2020 labels otherwise."""
    return "brats2023" if patient.scheme == "brats2023" else "brats2020"


def load_patient(patient: Patient, modalities: tuple[str, ...], label_scheme: str | None = None) -> PatientVolumes:
    """Load ``modalities`` (all required) and the segmentation if present, checking grid, brain and labels.

    The segmentation is optional: an unreadable or all-zero one is dropped with a warning (no metrics)."""
    patient.require(modalities)
    scheme = label_scheme or default_label_scheme(patient)
    if scheme not in LABEL_SCHEMES:
        raise InputError(f"unknown label scheme {scheme!r}; choose one of {', '.join(LABEL_SCHEMES)}")
    paths = [patient.images[m] for m in modalities]
    loaded = _load_volumes(paths)
    geometry = _shared_grid(dict(zip(modalities, paths)), [g for _, g in loaded])
    images: dict[str, np.ndarray] = {}
    for modality, path, (data, _) in zip(modalities, paths, loaded):
        if min(data.shape) < MIN_SLICES:
            raise InputError(f"{path}: {min(data.shape)} slices along one axis, too few to segment "
                             f"(at least {MIN_SLICES})")
        if not np.any(data):
            raise InputError(f"{path}: image is empty (all voxels are zero)")
        images[modality] = data
    warnings: list[str] = []
    seg = _optional_seg(patient.seg, geometry, scheme, warnings) if patient.seg is not None else None
    return PatientVolumes(patient=patient, images=images, geometry=geometry, seg=seg, label_scheme=scheme,
                          warnings=warnings)


def _load_volumes(paths: list[Path]) -> list[tuple[np.ndarray, Geometry]]:
    """Read files side by side (decompression releases the GIL); the first failing file in order raises."""
    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        return list(pool.map(load_volume, paths))


def _shared_grid(paths: dict[str, Path], geometries: list[Geometry]) -> Geometry:
    """The grid the images share; a mismatch names the odd file out (the one off the majority's grid, or off
    T1ce's when there is no majority)."""
    roles = list(paths)
    groups = [[i for i, g in enumerate(geometries) if g.matches(h)] for h in geometries]
    majority = max(groups, key=len)
    if len(majority) * 2 <= len(geometries) and "t1ce" in roles:
        majority = groups[roles.index("t1ce")]
    reference = geometries[majority[0]]
    odd = next((i for i in range(len(geometries)) if i not in majority), None)
    if odd is not None:
        names = ", ".join(paths[roles[i]].name for i in majority)
        raise InputError(_grid_mismatch(str(paths[roles[odd]]), geometries[odd], reference, names))
    return reference


def _grid_mismatch(path: str, geometry: Geometry, reference: Geometry, names: str) -> str:
    if reference.shape != geometry.shape:
        what = f"shape {geometry.shape} differs from {reference.shape} of {names}"
    else:
        largest = np.abs(reference.affine - geometry.affine).max()
        what = f"affine differs from that of {names} (max difference {largest:.4g})"
    return (f"{path}: {what}; every sequence must be on one voxel grid: co-register it to the others "
            "(`recoseg segment --prepare auto` does)")


def _optional_seg(path: Path, geometry: Geometry, scheme: str, warnings: list[str]) -> np.ndarray | None:
    """The ground truth in the images' grid, or None with a warning when it cannot be used."""
    try:
        data, seg_geometry = load_volume(path)
    except InputError as error:
        warnings.append(f"ground truth not used ({error}); no metrics")
        return None
    if not seg_geometry.matches(geometry):
        raise InputError(_grid_mismatch(str(path), seg_geometry, geometry, "the images"))
    seg = _checked_labels(data, scheme, str(path))
    if not seg.any():
        warnings.append(f"ground truth {path.name} is empty (all zero); no metrics")
        return None
    return seg


def _checked_labels(seg: np.ndarray, scheme: str, path: str) -> np.ndarray:
    if np.any(seg != np.round(seg)):
        raise InputError(f"{path}: segmentation has non-integer values")
    values = set(np.unique(seg).astype(int).tolist())
    unexpected = values - LABEL_SCHEMES[scheme]
    if unexpected:
        allowed = sorted(LABEL_SCHEMES[scheme])
        raise InputError(f"{path}: labels {sorted(unexpected)} are not in the {scheme} scheme {allowed}")
    return seg.astype(np.uint8)


@dataclass
class PreparedPatient:
    """A loaded patient and its slices in channel order ``MODALITIES``; missing sequences are background."""

    volumes: PatientVolumes
    sliced: SlicedPatient

    @property
    def present(self) -> tuple[str, ...]:
        """The sequences the patient holds, in ``MODALITIES`` order."""
        return tuple(m for m in MODALITIES if m in self.volumes.images)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if m not in self.volumes.images)

    @property
    def has_t1ce(self) -> bool:
        return TARGET_MODALITY in self.volumes.images

    @property
    def has_conditions(self) -> bool:
        """Whether stage 1 can run: FLAIR, T1 and T2 are all there."""
        return all(m in self.volumes.images for m in CONDITION_MODALITIES)

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in mL."""
        return float(np.prod(self.volumes.zooms)) / 1000.0

    @property
    def conditions(self) -> np.ndarray:
        return self.sliced.images[:, CONDITION_INDEX]

    @property
    def t1ce(self) -> np.ndarray | None:
        return self.sliced.images[:, TARGET_INDEX] if self.has_t1ce else None


def require_fluid_sensitive(patient: Patient) -> None:
    """Refuse a patient with neither FLAIR nor T2: nothing shows the whole tumour."""
    if not any(m in patient.images for m in FLUID_SENSITIVE):
        held = ", ".join(m.upper() for m in MODALITIES if m in patient.images) or "no sequence"
        raise InputError(f"{patient.folder or patient.case_id}: holds {held} but neither FLAIR nor T2; "
                         "whole tumour needs one of them")


def prepare_patient(patient: Patient, config: PreprocessConfig, label_scheme: str | None = None,
                    on_loaded: Callable[[], None] | None = None) -> PreparedPatient:
    """Load the sequences the patient holds (FLAIR or T2 among them) and cut them into normalized slices; a
    missing sequence's channel is background."""
    require_fluid_sensitive(patient)
    present = tuple(m for m in MODALITIES if m in patient.images)
    volumes = load_patient(patient, present, label_scheme)
    if on_loaded:
        on_loaded()
    sliced = slice_patient(volumes.images, present, config, volumes.seg)
    if len(present) < len(MODALITIES):
        full = np.full((sliced.images.shape[0], len(MODALITIES), *sliced.images.shape[2:]), BACKGROUND, np.float32)
        full[:, [MODALITIES.index(m) for m in present]] = sliced.images
        sliced.images = full
    return PreparedPatient(volumes, sliced)


def residual(t1ce: np.ndarray, synthetic: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """The method's residual |T1ce - synthetic T1ce| inside the brain (normalized units)."""
    return (np.abs(t1ce - synthetic) * brain).astype(np.float32)


def residual_slices(prepared: PreparedPatient, synthetic: np.ndarray) -> np.ndarray:
    """The patient's residual slices; zero without all four sequences."""
    if prepared.missing:
        return np.zeros_like(synthetic)
    return residual(prepared.t1ce, synthetic, prepared.sliced.brain)


def restack_in_brain(prepared: PreparedPatient, slices: np.ndarray) -> np.ndarray:
    """Image-like slices back into the voxel grid, interpolating from brain pixels only; 0 outside the brain.

    Plain linear interpolation would mix the background into the brain's edge voxels.
    """
    weight = prepared.sliced.brain.astype(np.float32)
    inverse = prepared.sliced.transform.inverse
    total, norm = inverse(slices * weight, "linear"), inverse(weight, "linear")
    inside = prepared.sliced.volume_brain & (norm > 1e-3)
    return np.where(inside, total / np.maximum(norm, 1e-3), 0.0).astype(np.float32)


PRESENCE_CHANNELS = tuple(f"has_{m}" for m in MODALITIES)
"""One constant plane per sequence: 1 where the exam holds it, 0 where it is missing."""

CHANNELS = ("flair", "t1", "t1ce", "t2", "residual", "synth", "subtraction", *PRESENCE_CHANNELS)
"""residual: |T1ce - synthetic T1ce|; synth: synthetic T1ce; subtraction: T1ce - T1 (classical); has_<sequence>:
whether the exam holds that sequence."""

DEFAULT_CHANNELS = ("flair", "t1", "t1ce", "t2", "residual")

ANY_SUBSET_CHANNELS = DEFAULT_CHANNELS + PRESENCE_CHANNELS
"""Inputs of a segmenter that takes any subset of the sequences holding FLAIR or T2."""


def needs_synthesis(channels: tuple[str, ...]) -> bool:
    """Whether the channels always use the synthetic T1ce."""
    return "residual" in channels or "synth" in channels


def takes_subsets(channels: tuple[str, ...]) -> bool:
    """Whether a segmenter with these inputs is told which sequences are present."""
    return all(name in channels for name in PRESENCE_CHANNELS)


def presence(count: int, present: tuple[str, ...]) -> np.ndarray:
    """(count, 4) flags in ``MODALITIES`` order: the same ``present`` sequences on every slice."""
    return np.tile(np.array([m in present for m in MODALITIES]), (count, 1))


def assemble(images: np.ndarray, brain: np.ndarray, channels: tuple[str, ...], synth: np.ndarray | None = None,
             present: np.ndarray | None = None) -> np.ndarray:
    """(N, C, S, S) inputs from (N, 4, S, S) modalities in ``MODALITIES`` order and (N, S, S) synthetic T1ce.

    ``present`` (N, 4) flags the sequences each slice holds (default: all). A missing sequence is shown as
    background, except a missing T1ce where FLAIR, T1 and T2 are there and ``synth`` is given: the synthetic T1ce
    takes its place. The residual needs all four sequences and is zero otherwise; so is the subtraction without
    T1 or T1ce.
    """
    n = len(images)
    present = np.ones((n, len(MODALITIES)), bool) if present is None else np.asarray(present, bool)
    conditions = present[:, CONDITION_INDEX].all(1)
    complete = present.all(1)
    if synth is None and conditions.any() and needs_synthesis(channels):
        raise ValueError("these inputs need the synthetic T1ce")
    synthesized_t1ce = ~present[:, TARGET_INDEX] & conditions & (synth is not None)

    def shown(index: int) -> np.ndarray:
        return np.where(present[:, index, None, None], images[:, index], BACKGROUND)

    t1ce = shown(TARGET_INDEX)
    if synthesized_t1ce.any():
        t1ce[synthesized_t1ce] = synth[synthesized_t1ce]
    planes = []
    for name in channels:
        if name == "t1ce":
            planes.append(t1ce)
        elif name in MODALITIES:
            planes.append(shown(MODALITIES.index(name)))
        elif name == "residual":
            plane = np.zeros(images[:, 0].shape, np.float32)
            if complete.any():
                plane[complete] = residual(t1ce[complete], synth[complete], brain[complete])
            planes.append(plane)
        elif name == "synth":
            planes.append(np.where(conditions[:, None, None], BACKGROUND if synth is None else synth, BACKGROUND))
        elif name == "subtraction":
            both = present[:, MODALITIES.index("t1")] & present[:, TARGET_INDEX]
            t1 = images[:, MODALITIES.index("t1")]
            planes.append(np.where(brain & both[:, None, None], t1ce - t1, 0.0))
        elif name in PRESENCE_CHANNELS:
            flag = present[:, PRESENCE_CHANNELS.index(name)].astype(np.float32)
            planes.append(np.broadcast_to(flag[:, None, None], images[:, 0].shape))
        else:
            raise ValueError(f"unknown input channel {name!r}; choose from {', '.join(CHANNELS)}")
    return np.stack(planes, 1).astype(np.float32)
