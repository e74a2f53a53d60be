"""Python API: segment patients from code, with the results in memory (``recoseg segment`` runs the same path)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from recoseg_cli.commands.segment import Predictor, SegmentOptions, region_metrics, region_volumes_ml
from recoseg_cli.diffusion.samplers import SAMPLERS, SamplerConfig
from recoseg_cli.errors import InputError
from recoseg_cli.io.discovery import Patient, discover_patient, patient_from_paths
from recoseg_cli.io.nifti import to_image, write_atomically
from recoseg_cli.io.outputs import check_nifti_output

PatientLike = str | Path | Mapping[str, str | Path] | Patient
"""A patient folder, a mapping of modality (flair, t1, t1ce, t2, optional seg) to file, or a discovered Patient."""


@dataclass
class SegmentationResult:
    """One patient's segmentation; every image is in the input files' own grid, orientation and affine."""

    case_id: str
    image: nib.Nifti1Image
    """The uint8 mask: BraTS labels of the input's scheme, or 1 = whole tumour."""
    volumes_ml: dict[str, float]
    seconds: dict[str, float]
    warnings: list[str]
    metrics: dict | None = None
    """Per region Dice, HD95, ... against the patient's segmentation file, when it has one."""
    probabilities: dict[str, nib.Nifti1Image] = field(default_factory=dict)
    """Per region (whole, core, enhancing) float32 probabilities, when asked for."""
    residual: nib.Nifti1Image | None = None
    synth: nib.Nifti1Image | None = None

    @property
    def labels(self) -> np.ndarray:
        """The mask as an array in the input file's voxel order."""
        return np.asarray(self.image.dataobj)

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the mask (atomically); an existing file needs ``overwrite``."""
        path = Path(path)
        check_nifti_output(path, overwrite)
        write_atomically(path, lambda tmp: nib.save(self.image, str(tmp)))
        return path


class Segmenter:
    """The bundled (or given) weights, loaded once; call it with one patient at a time.

    Options mean what the ``recoseg segment`` options of the same names mean; None keeps the weights' own.
    """

    def __init__(self, weights: str | Path | None = None, device: str = "auto", *, threshold: float | None = None,
                 min_component_ml: float | None = None, whole_tumour: bool = False, labels: str | None = None,
                 sampler: str | None = None, steps: int = 1, seed: int = 0, batch_size: int | None = None,
                 bf16: bool = True):
        if sampler is not None and sampler not in SAMPLERS:
            raise InputError(f"sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
        options = SegmentOptions(
            weights=Path(weights) if weights is not None else None, device=device,
            sampler=SamplerConfig(sampler, steps) if sampler else None, seed=seed, batch_size=batch_size,
            threshold=threshold, min_component_ml=min_component_ml, whole_tumour_only=whole_tumour,
            label_scheme=labels, quiet=True, bf16=bf16)
        self.predictor = Predictor(options)

    def __call__(self, patient: PatientLike, *, probabilities: bool = False, residual: bool = False,
                 synth: bool = False) -> SegmentationResult:
        """Segment one patient; ``probabilities``, ``residual`` and ``synth`` add those images to the result."""
        found = as_patient(patient)
        prediction = self.predictor.predict(found)
        masks, labels = self.predictor.label_map(prediction)
        volumes = prediction.prepared.volumes
        geometry = volumes.geometry
        result = SegmentationResult(
            case_id=found.case_id, image=to_image(labels, geometry, np.uint8),
            volumes_ml=region_volumes_ml(masks, prediction.voxel_ml), seconds=prediction.seconds,
            warnings=prediction.warnings,
            metrics=region_metrics(masks, volumes.seg, volumes.zooms) if volumes.seg is not None else None)
        if probabilities:
            result.probabilities = {region: to_image(p, geometry, np.float32)
                                    for region, p in prediction.probabilities.items()}
        clip = self.predictor.preprocess.clip
        if residual and prediction.synth is not None:
            result.residual = to_image(prediction.residual_volume() * clip, geometry, np.float32)
        if synth and prediction.synth is not None:
            result.synth = to_image(prediction.synth_volume() * clip, geometry, np.float32)
        return result


def segment(patient: PatientLike, output: str | Path | None = None, overwrite: bool = False,
            **options) -> nib.Nifti1Image:
    """Segment one patient and return the mask image (written to ``output`` when given).

    ``options`` are those of ``Segmenter`` (weights, device, threshold, min_component_ml, whole_tumour, ...).
    """
    if output is not None:
        check_nifti_output(Path(output), overwrite)
    result = Segmenter(**options)(patient)
    if output is not None:
        result.save(output, overwrite)
    return result.image


def as_patient(patient: PatientLike) -> Patient:
    """A Patient from a folder, a modality-to-file mapping, or a Patient."""
    if isinstance(patient, Patient):
        return patient
    if isinstance(patient, Mapping):
        return patient_from_paths(dict(patient))
    return discover_patient(patient)
