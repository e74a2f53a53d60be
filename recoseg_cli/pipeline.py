"""One patient through the method: load, slice, synthesize T1ce, residual, restack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from recoseg_cli.constants import CONDITION_INDEX, CONDITION_MODALITIES, MODALITIES, TARGET_INDEX, TARGET_MODALITY
from recoseg_cli.diffusion.samplers import SamplerConfig
from recoseg_cli.io.discovery import Patient
from recoseg_cli.io.patient import PatientVolumes, load_patient
from recoseg_cli.preprocess import BACKGROUND, PreprocessConfig, SlicedPatient, slice_patient
from recoseg_cli.synthesis import Synthesizer


@dataclass
class PreparedPatient:
    """A loaded patient and its slices in channel order ``MODALITIES``; T1ce may be absent."""

    volumes: PatientVolumes
    sliced: SlicedPatient

    @property
    def has_t1ce(self) -> bool:
        return TARGET_MODALITY in self.volumes.images

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


def prepare_patient(patient: Patient, config: PreprocessConfig, label_scheme: str | None = None,
                    on_loaded: Callable[[], None] | None = None) -> PreparedPatient:
    """Load FLAIR, T1, T2 (required) and T1ce (optional) and cut them into normalized slices."""
    patient.require(CONDITION_MODALITIES)
    present = tuple(m for m in MODALITIES if m in patient.images)
    volumes = load_patient(patient, present, label_scheme)
    if on_loaded:
        on_loaded()
    sliced = slice_patient(volumes.images, present, config, volumes.seg)
    if TARGET_MODALITY not in present:
        filler = np.full((sliced.images.shape[0], 1, *sliced.images.shape[2:]), BACKGROUND, np.float32)
        sliced.images = np.concatenate([sliced.images[:, :TARGET_INDEX], filler, sliced.images[:, TARGET_INDEX:]], 1)
    return PreparedPatient(volumes, sliced)


def synthesize_t1ce(prepared: PreparedPatient, synthesizer: Synthesizer, sampler: SamplerConfig, seed: int = 0,
                    batch_size: int = 32, on_batch=None) -> np.ndarray:
    """Synthetic T1ce slices; the one-step sampler starts from the real T1ce when there is one."""
    return synthesizer.synthesize(prepared.conditions, prepared.sliced.brain, sampler, seed, batch_size,
                                  start=prepared.t1ce, on_batch=on_batch)


def residual_slices(prepared: PreparedPatient, synthetic: np.ndarray) -> np.ndarray:
    """|T1ce - synthetic T1ce| inside the brain (normalized units); zero without a real T1ce."""
    if not prepared.has_t1ce:
        return np.zeros_like(synthetic)
    return (np.abs(prepared.t1ce - synthetic) * prepared.sliced.brain).astype(np.float32)


def restack(prepared: PreparedPatient, slices: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Slice outputs back into the patient's canonical voxel grid (linear interpolation)."""
    return prepared.sliced.transform.inverse(slices.astype(np.float32), "linear", fill)


def restack_in_brain(prepared: PreparedPatient, slices: np.ndarray) -> np.ndarray:
    """Image-like slices back into the voxel grid, interpolating from brain pixels only; 0 outside the brain.

    Plain linear interpolation would mix the background into the brain's edge voxels.
    """
    weight = prepared.sliced.brain.astype(np.float32)
    total = restack(prepared, slices * weight)
    norm = restack(prepared, weight)
    inside = prepared.sliced.volume_brain & (norm > 1e-3)
    return np.where(inside, total / np.maximum(norm, 1e-3), 0.0).astype(np.float32)
