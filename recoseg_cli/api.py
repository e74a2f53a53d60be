"""Python API: segment a patient, or synthesize its T1ce and residual, with the results in memory.

The CLI's ``segment``, ``synthesize`` and ``residual`` commands call these and only add files and reports.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
from scipy import ndimage

from recoseg_cli.checks import LARGEST_BRAIN_ML, mask_warnings, sequence_statistics, sequence_warnings
from recoseg_cli.constants import CONDITION_MODALITIES, FLUID_SENSITIVE, MODALITIES
from recoseg_cli.components import distant_warning, lesion_components
from recoseg_cli.devices import inference_batch_size, resolve_device
from recoseg_cli.diffusion.sampler_config import SAMPLERS, SamplerConfig
from recoseg_cli.errors import InputError, WeightsError
from recoseg_cli.io.discovery import Patient, discover_patient, patient_from_paths
from recoseg_cli.io.nifti import Geometry, to_image, write_image
from recoseg_cli.io.outputs import check_nifti_output
from recoseg_cli.metrics import region_metrics
from recoseg_cli.pipeline import (PreparedPatient, assemble, needs_synthesis, prepare_patient,
                                  presence, require_fluid_sensitive, residual_slices, restack_in_brain,
                                  takes_subsets)
from recoseg_cli.dicom.exam import study_as_exam
from recoseg_cli.dicom.study import is_dicom_folder
from recoseg_cli.prepare.exam import PreparedExam, prepare_exam, readiness
from recoseg_cli.preprocess import PreprocessConfig
from recoseg_cli.provenance import StageTimer
from recoseg_cli.regions import PostprocessConfig, labels_from_regions, region_masks, region_volumes_ml
from recoseg_cli.runtime import Runtime, load_model
from recoseg_cli.sequences import missing_sequence_warnings
from recoseg_cli.weights import (ENV_VAR, INCOMPLETE_EXAM_MODELS, SUBSET_MODEL, Weights, load_weights,
                                 resolve_weights_path)

if TYPE_CHECKING:
    import torch

    from recoseg_cli.networks import StageOne

PatientLike = str | Path | Mapping[str, str | Path] | Patient
"""A patient folder, a mapping of modality (flair, t1, t1ce, t2, optional seg) to file, or a discovered Patient."""

STAGES = ("load", "preprocess", "synthesis", "segmentation")
"""Stages of ``Segmenter.predict``, in order; ``on_stage`` callbacks receive each one as it finishes."""


@dataclass
class Prediction:
    """Region probabilities of one patient in its canonical voxel grid, before post-processing."""

    prepared: PreparedPatient
    probabilities: dict[str, np.ndarray]
    synth: np.ndarray | None
    seconds: dict[str, float]
    warnings: list[str]
    sequence_checks: dict[str, float] = field(default_factory=dict)
    """``checks.sequence_statistics`` of the inputs (positive when the sequences' roles look right)."""
    mirrored: dict[str, np.ndarray] | None = None
    """Region probabilities of the left-right mirrored slices (mirrored back), when asked for."""
    tta: bool = False
    """The labels come from the mean of both passes (``averaged``), not the plain pass alone."""
    _uncertainty: np.ndarray | None = field(default=None, init=False, repr=False)

    def labelled(self) -> dict[str, np.ndarray]:
        """The region probabilities the labels are made of."""
        return self.averaged() if self.tta else self.probabilities

    def averaged(self) -> dict[str, np.ndarray]:
        """Per region, the mean of the plain and mirrored probabilities (test-time augmentation)."""
        return {region: (p + self.mirrored[region]) / 2 for region, p in self.probabilities.items()}

    def uncertainty(self) -> np.ndarray:
        """Per voxel, the largest over regions of the binary entropy (bits, in [0, 1]) of the mean of the plain
        and mirrored probabilities; needs ``mirrored``. Computed once (the map, the score and the overlay use it)."""
        if self._uncertainty is None:
            self._uncertainty = uncertainty_map(self.averaged())
        return self._uncertainty

    def uncertainty_score(self) -> float:
        """One number per case for sorting: the mean voxel uncertainty where either pass finds whole tumour."""
        tumour = (self.probabilities["whole"] > 0.5) | (self.mirrored["whole"] > 0.5)
        return round(float(self.uncertainty()[tumour].mean()), 4) if tumour.any() else 0.0

    @property
    def voxel_ml(self) -> float:
        return self.prepared.voxel_ml

    def synth_volume(self) -> np.ndarray:
        """The synthetic T1ce in the canonical voxel grid (normalized units, 0 outside the brain)."""
        return restack_in_brain(self.prepared, self.synth)

    def residual_volume(self) -> np.ndarray:
        """|T1ce - synthetic T1ce| in the canonical voxel grid (normalized units, 0 outside the brain)."""
        return restack_in_brain(self.prepared, residual_slices(self.prepared, self.synth))


@dataclass
class SegmentationResult:
    """One patient's segmentation; every image is on the grid of the input files (of the reference sequence for an
    exam that was prepared), in their orientation and affine."""

    case_id: str
    image: nib.Nifti1Image
    """The uint8 mask: BraTS labels of the input's scheme, or 1 = whole tumour."""
    volumes_ml: dict[str, float]
    seconds: dict[str, float]
    warnings: list[str]
    prediction: Prediction
    """The networks' output on the grid they worked on (the prepared 1 mm grid of a prepared exam)."""
    components: list[dict] = field(default_factory=list)
    """The mask's separate lesions, largest first (``components.lesion_components``)."""
    metrics: dict | None = None
    """Per region Dice, HD95, ... against the patient's segmentation file (on the output grid), when it has one."""
    probabilities: dict[str, nib.Nifti1Image] = field(default_factory=dict)
    """Per region (whole, core, enhancing) float32 probabilities, when asked for."""
    residual: nib.Nifti1Image | None = None
    synth: nib.Nifti1Image | None = None
    uncertainty: nib.Nifti1Image | None = None
    """Per-voxel uncertainty in [0, 1] (``uncertainty_map``), when asked for."""
    uncertainty_score: float | None = None
    preparation: dict | None = None
    """How a raw exam was prepared (``prepare.exam.prepare_exam``'s record and why); None when it was not."""
    exam: PreparedExam | None = None
    """The prepared exam (its folder exists only while the call runs, unless ``keep_prepared``)."""
    qc_figure: object | None = None
    """The preparation's quality-control picture (a matplotlib Figure), when asked for."""
    segmenter: Segmenter | None = None
    """The Segmenter whose weights made it (another bundled model for an exam the default cannot take)."""

    @property
    def labels(self) -> np.ndarray:
        """The mask as an array in the input file's voxel order."""
        return np.asarray(self.image.dataobj)

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the mask (atomically); an existing file needs ``overwrite``."""
        return save_image(self.image, path, overwrite)


@dataclass(frozen=True)
class OutputGrid:
    """Where a result's images go: the working grid itself, or the native grid of a prepared exam's reference."""

    geometry: Geometry
    resample: Callable[[np.ndarray, bool], np.ndarray]
    """Canonical working-grid array -> canonical output-grid array (linear, or nearest for masks)."""

    @classmethod
    def working(cls, prediction: Prediction) -> OutputGrid:
        return cls(prediction.prepared.volumes.geometry, lambda volume, linear: volume)

    @classmethod
    def native(cls, exam: PreparedExam, prediction: Prediction) -> OutputGrid:
        working = prediction.prepared.volumes.geometry
        return cls(exam.native_geometry, lambda volume, linear: exam.to_native(volume, working, linear))

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.geometry.canonical_zooms)) / 1000.0


class Segmenter:
    """The bundled (or given) weights, loaded once; call it with one patient at a time.

    Options mean what the ``recoseg segment`` options of the same names mean; None keeps the weights' own.
    ``force`` segments inputs whose sequences look swapped (``checks``) instead of refusing them; ``tta`` labels
    the mean of the plain and the left-right mirrored pass (twice the segmenter's time).
    ``sampler`` is a sampler name (with ``steps``) or a full ``SamplerConfig``.
    """

    def __init__(self, weights: str | Path | None = None, device: str = "auto", *, threshold: float | None = None,
                 min_component_ml: float | None = None, whole_tumour: bool = False, labels: str | None = None,
                 sampler: str | SamplerConfig | None = None, steps: int = 1, seed: int = 0,
                 batch_size: int | None = None, bf16: bool = True, force: bool = False, tta: bool = False,
                 model: str | None = None, runtime: Runtime = "auto"):
        self.options = dict(device=device, threshold=threshold, min_component_ml=min_component_ml,
                            whole_tumour=whole_tumour, labels=labels, sampler=sampler, steps=steps, seed=seed,
                            batch_size=batch_size, bf16=bf16, force=force, tta=tta, runtime=runtime)
        self.default_model = weights is None and model is None and not os.environ.get(ENV_VAR)
        """Whether these are the default bundled weights, which hand an exam missing a sequence to another bundled
        model (``for_patient``)."""
        self._bundled: dict[str, Segmenter] = {}
        self.force, self.tta = force, tta
        self.bf16, self.seed, self.whole_tumour, self.label_scheme = bf16, seed, whole_tumour, labels
        path, checksum = resolve_weights_path(Path(weights) if weights is not None else None, model)
        loaded = load_model(path, checksum, runtime, device, bf16, batch_size)
        self.weights: Weights = loaded.weights
        self.network, self.synthesizer = loaded.segmenter, loaded.stage_one
        self.device, self.batch_size = loaded.device, loaded.batch_size
        self.runtime, self.precision = loaded.runtime, loaded.precision
        """The library that runs the networks (with its version) and their precision, for the report."""
        extra = self.weights.extra
        self.channels = tuple(extra["channels"])
        self.preprocess = PreprocessConfig(**extra["preprocess"])
        self.sampler = sampler_config(sampler, steps) or SamplerConfig(**extra["sampler"])
        self.targets = tuple(extra.get("targets", ["whole"]))
        self.subset_dice: dict = extra.get("subset_dice", {})
        """Cross-validated mean Dice per region by set of sequences (``sequences.subset_name``), where measured."""
        if "whole" not in self.targets:
            raise WeightsError(f"{path}: segments {', '.join(self.targets)} only; `segment` needs whole-tumour weights")
        chosen = PostprocessConfig(**extra.get("postprocess", {"threshold": float(extra["threshold"])}))
        self.postprocess = replace(
            chosen, threshold=chosen.threshold if threshold is None else threshold,
            min_component_ml=chosen.min_component_ml if min_component_ml is None else min_component_ml)

    def __call__(self, patient: PatientLike | PreparedExam, *, probabilities: bool = False, residual: bool = False,
                 synth: bool = False, uncertainty: bool = False, prepare: str = "auto",
                 keep_prepared: str | Path | None = None, qc: bool = False, on_stage=None, on_slices=None,
                 on_prepare: Callable[[list[str]], None] | None = None) -> SegmentationResult:
        """Segment one exam; ``probabilities``, ``residual``, ``synth`` and ``uncertainty`` add those images to the
        result (``uncertainty`` costs a second segmenter pass on the mirrored slices).

        ``patient`` may be a BraTS-ready folder or mapping, a raw exam, a DICOM study folder (roles from the
        series' tags) or a ``PreparedExam``. ``prepare`` is ``recoseg segment --prepare``: auto prepares an exam
        that is not BraTS-ready (``prepare.exam.readiness``), full always does, off never. A prepared exam's
        outputs (probabilities resampled linearly, then labelled) come on the native grid of its reference
        sequence; ``keep_prepared`` keeps the prepared exam in ``DIR/<case>/``, ``qc`` adds its QC picture.
        ``on_stage`` and ``on_slices`` are those of ``predict`` (plus a stage "prepare"); ``on_prepare(reasons)`` is
        called before an exam is prepared."""
        asked = {"probabilities": probabilities, "residual": residual, "synth": synth, "uncertainty": uncertainty}
        if isinstance(patient, PreparedExam):
            chosen = self.for_patient(patient.patient())
            return chosen._prepared_result(patient, {"reasons": ["a prepared exam"]}, asked, qc, on_stage, on_slices)
        if isinstance(patient, (str, Path)) and Path(patient).is_dir() and is_dicom_folder(Path(patient)):
            with study_as_exam(Path(patient), required=self.exam_requirements) as (exam, _, _):
                return self(exam, prepare=prepare, keep_prepared=keep_prepared, qc=qc, on_stage=on_stage,
                            on_slices=on_slices, on_prepare=on_prepare, **asked)
        found = as_patient(patient)
        chosen = self.for_patient(found)
        if chosen is not self:
            return chosen(found, prepare=prepare, keep_prepared=keep_prepared, qc=qc, on_stage=on_stage,
                          on_slices=on_slices, on_prepare=on_prepare, **asked)
        self.check_sequences(found)
        reasons = ["--prepare full"] if prepare == "full" else readiness(found) if prepare == "auto" else []
        if not reasons:
            prediction = self.predict(found, on_stage, on_slices, mirrored=uncertainty)
            volumes = prediction.prepared.volumes
            return self._result(found.case_id, prediction, OutputGrid.working(prediction), volumes.seg, asked)
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(keep_prepared) / found.case_id if keep_prepared is not None else Path(scratch)
            if on_prepare:
                on_prepare(reasons)
            start = time.perf_counter()
            exam = prepare_exam(found, folder, device=self.device, bf16=self.bf16)
            if on_stage:
                on_stage("prepare")
            record = {"reasons": reasons, **exam.report, "seconds_total": round(time.perf_counter() - start, 3)}
            if exam.report["faults"] and not self.force:
                raise InputError(f"{exam.report['faults'][0]}; --force segments the exam anyway")
            result = self._prepared_result(exam, record, asked, qc, on_stage, on_slices, found)
        return result

    def _prepared_result(self, exam: PreparedExam, record: dict, asked: dict, qc: bool, on_stage, on_slices,
                         raw: Patient | None = None) -> SegmentationResult:
        """Segment a prepared exam and bring every output back to its native reference grid."""
        prediction = self.predict(exam.patient(), on_stage, on_slices, mirrored=asked["uncertainty"])
        truth = exam.native_truth(raw.seg) if raw is not None and raw.seg is not None else None
        if raw is not None and raw.seg is not None and truth is None:
            prediction.warnings.append(f"ground truth {raw.seg.name} is not on the {exam.reference.upper()} "
                                       "grid; no metrics")
        prediction.warnings += exam.report["warnings"] + exam.report.get("faults", [])
        prediction.seconds = {**{f"prepare: {k}": v for k, v in exam.report["seconds"].items()},
                              **prediction.seconds}
        result = self._result(exam.case_id, prediction, OutputGrid.native(exam, prediction), truth, asked)
        result.preparation, result.exam = record, exam
        if qc:
            from recoseg_cli.prepare.qc import qc_figure

            result.qc_figure = qc_figure(exam)
        return result

    def _result(self, case_id: str, prediction: Prediction, grid: OutputGrid, truth: np.ndarray | None,
                asked: dict) -> SegmentationResult:
        """Every asked-for output of one prediction on ``grid``: probabilities resampled there, labelled there."""
        labelled = {region: grid.resample(p, True) for region, p in prediction.labelled().items()}
        brain = grid.resample(prediction.prepared.sliced.volume_brain.astype(np.uint8), False) > 0
        masks, labels = self.label_map(labelled, brain, grid.voxel_ml, prediction.prepared.volumes.label_scheme,
                                       prediction.warnings)
        geometry = grid.geometry
        components = lesion_components(masks, labelled["whole"], geometry.canonical_zooms)
        prediction.warnings += distant_warning(components)
        result = SegmentationResult(
            case_id=case_id, image=to_image(labels, geometry, np.uint8),
            volumes_ml=region_volumes_ml(masks, grid.voxel_ml), seconds=prediction.seconds,
            warnings=prediction.warnings, prediction=prediction, components=components,
            metrics=region_metrics(masks, truth, geometry.canonical_zooms) if truth is not None else None,
            segmenter=self)
        if asked["probabilities"]:
            result.probabilities = {region: to_image(p, geometry, np.float32) for region, p in labelled.items()}
        clip = self.preprocess.clip
        if asked["residual"] and prediction.synth is not None:
            result.residual = to_image(grid.resample(prediction.residual_volume(), True) * clip, geometry, np.float32)
        if asked["synth"] and prediction.synth is not None:
            result.synth = to_image(grid.resample(prediction.synth_volume(), True) * clip, geometry, np.float32)
        if asked["uncertainty"]:
            averaged = {region: grid.resample(p, True) for region, p in prediction.averaged().items()}
            result.uncertainty = to_image(uncertainty_map(averaged), geometry, np.float32)
            result.uncertainty_score = prediction.uncertainty_score()
        return result

    def predict(self, patient: Patient, on_stage=None, on_slices=None, mirrored: bool = False) -> Prediction:
        """Region probabilities of one patient (no files written); ``mirrored`` adds those of the left-right
        mirrored slices.

        ``on_stage(name)`` is called as each of ``STAGES`` ends; ``on_slices(stage, done, total)`` as the networks
        finish batches of slices (stage "synthesis" or "segmentation").
        """
        timer = StageTimer(on_stage)
        self.check_sequences(patient)
        prepared = prepare_patient(patient, self.preprocess, self.label_scheme, on_loaded=lambda: timer.lap("load"))
        warnings = list(prepared.volumes.warnings)
        timer.lap("preprocess")
        sliced = prepared.sliced
        checks = sequence_statistics(prepared.volumes.images, sliced.volume_brain)
        warnings += sequence_warnings(checks, patient.images, self.force)

        def counter(stage: str):
            done = 0

            def advance(count: int) -> None:
                nonlocal done
                done += count
                on_slices(stage, done, len(sliced.images))
            return advance if on_slices else None

        synth = None
        if self.synthesizer is not None and prepared.has_conditions and (needs_synthesis(self.channels)
                                                                         or not prepared.has_t1ce):
            synth = self.synthesizer.synthesize(prepared.conditions, sliced.brain, self.sampler, self.seed,
                                                self.batch_size, start=prepared.t1ce, on_batch=counter("synthesis"))
        timer.lap("synthesis")
        warnings += missing_sequence_warnings(prepared.present, self.used_sequences(prepared),
                                              synth is not None and not prepared.has_t1ce, self.subset_dice)
        brain_ml = float(sliced.volume_brain.sum()) * prepared.voxel_ml
        if brain_ml > LARGEST_BRAIN_ML:
            warnings.append(f"the non-zero region measures {brain_ml / 1000:.1f} L, more than a brain: the images "
                            "look not skull-stripped; the models expect skull-stripped scans like BraTS's "
                            "(--prepare full removes the skull)")
        inputs = assemble(sliced.images, sliced.brain, self.channels, synth,
                          presence(len(sliced.images), prepared.present))
        slices = self.network.predict(inputs, sliced.brain, self.batch_size, counter("segmentation"))
        probabilities = self._restacked(sliced, slices)
        flipped = None
        if mirrored or self.tta:  # left-right: the first in-plane axis of the canonical (RAS) slices
            mirror = self.network.predict(np.ascontiguousarray(inputs[..., ::-1, :]), sliced.brain[:, ::-1],
                                          self.batch_size)
            flipped = self._restacked(sliced, np.ascontiguousarray(mirror[..., ::-1, :]))
        timer.lap("segmentation")
        return Prediction(prepared, probabilities, synth, timer.seconds, warnings, checks, flipped, self.tta)

    @property
    def input_sequences(self) -> tuple[str, ...]:
        """The sequences these weights read where the exam holds them: those among their input channels, all four
        for the residual or a model that takes subsets, FLAIR, T1 and T2 too where stage 1 synthesizes T1ce."""
        read = (set(MODALITIES) if takes_subsets(self.channels) or needs_synthesis(self.channels)
                else set(self.channels) & set(MODALITIES))
        if self.synthesizer is not None and "t1ce" in read:
            read |= set(CONDITION_MODALITIES)
        return tuple(m for m in MODALITIES if m in read)

    @property
    def required_sequences(self) -> tuple[str, ...]:
        """The sequences these weights cannot do without: all they read (none beyond FLAIR or T2 for a model that
        takes subsets), but T1ce where stage 1 synthesizes it from FLAIR, T1 and T2."""
        if takes_subsets(self.channels):
            return ()
        synthesizable = {"t1ce"} if self.synthesizer is not None else set()
        return tuple(m for m in self.input_sequences if m not in synthesizable)

    @property
    def exam_requirements(self) -> tuple[str, ...]:
        """The sequences an exam must hold for a call: the weights' own, none beyond FLAIR or T2 for the default
        model (which hands incomplete exams on, ``for_patient``)."""
        return () if self.default_model else self.required_sequences

    def used_sequences(self, prepared: PreparedPatient) -> tuple[str, ...]:
        """The patient's sequences these weights read."""
        return tuple(m for m in prepared.present if m in self.input_sequences)

    def bundled(self, model: str) -> Segmenter:
        """A bundled model with these options, loaded on first use."""
        if model not in self._bundled:
            self._bundled[model] = Segmenter(model=model, **self.options)
        return self._bundled[model]

    def takes(self, patient: Patient) -> bool:
        """Whether the patient holds every sequence these weights require."""
        return all(m in patient.images for m in self.required_sequences)

    def for_patient(self, patient: Patient) -> Segmenter:
        """The segmenter for this patient's sequences: this one, or for the default model and an exam missing a
        sequence, the first of the bundled ``INCOMPLETE_EXAM_MODELS`` that takes it."""
        if not self.default_model or not patient.missing or not any(m in patient.images for m in FLUID_SENSITIVE):
            return self
        return next(chosen for chosen in map(self.bundled, INCOMPLETE_EXAM_MODELS) if chosen.takes(patient))

    def check_sequences(self, patient: Patient) -> None:
        """Refuse a patient without FLAIR and T2, or a set of sequences these weights were not trained for."""
        require_fluid_sensitive(patient)
        try:
            patient.require(self.required_sequences)
        except InputError as error:
            needed = ", ".join(m.upper() for m in self.required_sequences)
            raise InputError(f"{error}; the weights {self.weights.path.name} need {needed}, the bundled "
                             f"{SUBSET_MODEL!r} model (--model {SUBSET_MODEL}) takes any set holding FLAIR or T2"
                             ) from None

    def _restacked(self, sliced, slices: np.ndarray) -> dict[str, np.ndarray]:
        """Per region, (N, K, S, S) slice probabilities back in the canonical voxel grid."""
        return {region: sliced.transform.inverse(slices[:, k], "linear") for k, region in enumerate(self.targets)}

    def label_map(self, probabilities: dict[str, np.ndarray], brain: np.ndarray, voxel_ml: float, scheme: str,
                  warnings: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Post-processed region masks and the uint8 label map of region probabilities on one grid; appends to
        ``warnings`` for an empty or implausible mask."""
        masks = region_masks(probabilities, self.postprocess, voxel_ml)
        if not masks["whole"].any():
            warnings.append("the mask is empty: no tumour found above the threshold")
        warnings += mask_warnings(masks["whole"], brain, voxel_ml)
        labels = (masks["whole"].astype(np.uint8) if self.whole_tumour
                  else labels_from_regions(masks["whole"], masks["core"], masks["enhancing"], scheme))
        return masks, labels


def uncertainty_map(probabilities: dict[str, np.ndarray]) -> np.ndarray:
    """Per voxel, the largest over regions of the binary entropy (bits, in [0, 1]) of the probabilities."""
    return np.max([binary_entropy(p) for p in probabilities.values()], axis=0)


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in bits of a Bernoulli probability (0 at 0 and 1, 1 at 0.5)."""
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return (-(q * np.log2(q) + (1 - q) * np.log2(1 - q))).astype(np.float32)


def segment(patient: PatientLike, output: str | Path | None = None, overwrite: bool = False,
            **options) -> nib.Nifti1Image:
    """Segment one patient and return the mask image (written to ``output`` when given).

    ``options`` are those of ``Segmenter`` (weights, device, threshold, min_component_ml, whole_tumour, ...).
    """
    return _made_and_saved(lambda: Segmenter(**options)(patient).image, output, overwrite)


@dataclass
class Synthesis:
    """Stage 1 on one patient: the synthetic T1ce slices and what turns them into images of its grid."""

    prepared: PreparedPatient
    slices: np.ndarray
    weights: Weights
    sampler: SamplerConfig
    seconds: dict[str, float]
    clip: float
    """Normalized units times ``clip`` are z-score units."""
    device: torch.device

    def synth_volume(self) -> np.ndarray:
        """The synthetic T1ce in the canonical grid, z-score units, 0 outside the brain."""
        return restack_in_brain(self.prepared, self.slices) * self.clip

    def residual_volume(self, smooth_mm: float = 0.0) -> np.ndarray:
        """|T1ce - synthetic T1ce| in the canonical grid (z-score units), optionally Gaussian-smoothed in the brain."""
        volume = restack_in_brain(self.prepared, residual_slices(self.prepared, self.slices)) * self.clip
        if smooth_mm > 0:
            sigma = [smooth_mm / z for z in self.prepared.volumes.zooms]
            volume = ndimage.gaussian_filter(volume, sigma) * self.prepared.sliced.volume_brain
        return volume.astype(np.float32)


def run_stage_one(patient: PatientLike, weights: str | Path | None = None, device: str = "auto", *,
                  sampler: str | SamplerConfig | None = None, steps: int = 1, seed: int = 0,
                  batch_size: int | None = None, bf16: bool = True, on_stage=None,
                  model: str | None = None) -> Synthesis:
    """Synthesize one patient's T1ce with the DDPM (or regressor) of a DDPM, regressor or segmenter weights file
    (the bundled ``model`` by default); ``on_stage`` is called after "weights", "load", "preprocess" and
    "synthesis"."""
    found = as_patient(patient)
    found.require(CONDITION_MODALITIES)
    timer = StageTimer(on_stage)
    torch_device = resolve_device(device)
    stage_weights, synthesizer, preprocess = load_stage_one(Path(weights) if weights is not None else None,
                                                            torch_device, bf16, model)
    timer.lap("weights")
    prepared = prepare_patient(found, preprocess, on_loaded=lambda: timer.lap("load"))
    timer.lap("preprocess")
    config = sampler_config(sampler, steps) or SamplerConfig()
    slices = synthesizer.synthesize(prepared.conditions, prepared.sliced.brain, config, seed,
                                    inference_batch_size(torch_device, batch_size), start=prepared.t1ce)
    timer.lap("synthesis")
    return Synthesis(prepared, slices, stage_weights, config, timer.seconds, preprocess.clip, torch_device)


def synthesize(patient: PatientLike, output: str | Path | None = None, overwrite: bool = False,
               **options) -> nib.Nifti1Image:
    """The synthetic T1ce (float32, z-score units, 0 outside the brain) in the patient's own grid, written to
    ``output`` when given; ``options`` are those of ``run_stage_one`` (weights, device, sampler, steps, seed, ...)."""
    def make() -> nib.Nifti1Image:
        result = run_stage_one(patient, **options)
        return to_image(result.synth_volume(), result.prepared.volumes.geometry, np.float32)
    return _made_and_saved(make, output, overwrite)


def residual(patient: PatientLike, output: str | Path | None = None, overwrite: bool = False, smooth_mm: float = 0.0,
             **options) -> nib.Nifti1Image:
    """The residual |T1ce - synthetic T1ce| (float32, z-score units, 0 outside the brain), which marks what FLAIR,
    T1 and T2 could not predict; Gaussian-smoothed by ``smooth_mm`` when given; needs the patient's T1ce."""
    def make() -> nib.Nifti1Image:
        found = as_patient(patient)
        found.require(("t1ce",))
        result = run_stage_one(found, **options)
        return to_image(result.residual_volume(smooth_mm), result.prepared.volumes.geometry, np.float32)
    return _made_and_saved(make, output, overwrite)


def load_stage_one(weights: Path | None, device, bf16: bool = True,
                   model: str | None = None) -> tuple[Weights, StageOne, PreprocessConfig]:
    """The DDPM (or regressor) of a DDPM, regressor or segmenter weights file (the bundled ``model`` by default),
    and its slice settings."""
    from recoseg_cli.networks import build_synthesizer, synthesizer_weights

    path, checksum = resolve_weights_path(weights, model)
    loaded = synthesizer_weights(load_weights(path, ("ddpm", "regressor", "seg"), checksum))
    return loaded, build_synthesizer(loaded, device, bf16), PreprocessConfig(**loaded.extra["preprocess"])


def sampler_config(sampler: str | SamplerConfig | None, steps: int = 1) -> SamplerConfig | None:
    """A SamplerConfig from a sampler name and step count (a SamplerConfig or None passes through)."""
    if sampler is None or isinstance(sampler, SamplerConfig):
        return sampler
    if sampler not in SAMPLERS:
        raise InputError(f"sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
    return SamplerConfig(sampler, steps)


def save_image(image: nib.Nifti1Image, path: str | Path, overwrite: bool = False) -> Path:
    """Write a NIfTI image atomically; an existing file needs ``overwrite``."""
    check_nifti_output(Path(path), overwrite)
    return write_image(image, path)


def _made_and_saved(make, output: str | Path | None, overwrite: bool) -> nib.Nifti1Image:
    """The image ``make()`` returns, written to ``output`` when given; the output path is checked first, so a
    refused path costs no computation."""
    if output is not None:
        check_nifti_output(Path(output), overwrite)
    image = make()
    if output is not None:
        save_image(image, output, overwrite)
    return image


def as_patient(patient: PatientLike) -> Patient:
    """A Patient from a folder, a modality-to-file mapping, or a Patient."""
    if isinstance(patient, Patient):
        return patient
    if isinstance(patient, Mapping):
        return patient_from_paths(dict(patient))
    return discover_patient(patient)
