"""``recoseg segment`` for one patient: the Predictor (both stages, post-processing), its outputs and report."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from recoseg_cli.console import console, progress_bar, warn
from recoseg_cli.devices import inference_batch_size, precision_name, resolve_device
from recoseg_cli.diffusion.samplers import SamplerConfig
from recoseg_cli.errors import InputError, WeightsError
from recoseg_cli.inputs import assemble, needs_synthesis
from recoseg_cli.io.discovery import Patient
from recoseg_cli.io.json_io import write_json
from recoseg_cli.io.nifti import save_volume
from recoseg_cli.io.outputs import check_nifti_output, check_output_file
from recoseg_cli.metrics import lesion_wise_dice, slice_dice, volume_metrics
from recoseg_cli.overlay import write_overlay
from recoseg_cli.pipeline import (PreparedPatient, prepare_patient, residual_slices, restack, restack_in_brain,
                                  synthesize_t1ce)
from recoseg_cli.postprocess import PostprocessConfig, region_masks
from recoseg_cli.preprocess import PreprocessConfig
from recoseg_cli.provenance import StageTimer, package_versions, peak_rss_gb
from recoseg_cli.regions import REGIONS, labels_from_regions, region_mask, subregion_masks
from recoseg_cli.segmentation import Segmenter
from recoseg_cli.synthesis import build_synthesizer, synthesizer_weights
from recoseg_cli.weights import Weights, load_weights, resolve_weights_path

LARGEST_BRAIN_ML = 2500.0
"""Non-zero region above which the images look not skull-stripped (BraTS brains measure 1.2-1.7 L)."""

STAGES = ("load", "preprocess", "synthesis", "segmentation", "write", "overlay")
"""Stages of one patient, in order; ``on_stage`` callbacks receive each one as it finishes."""


def next_stage(finished: str, overlay: bool) -> str:
    """The stage that starts when ``finished`` ends (for progress displays)."""
    stages = STAGES if overlay else STAGES[:-1]
    index = stages.index(finished) + 1
    return stages[index] if index < len(stages) else "done"


EXTRA_OUTPUTS = {"probabilities": "_prob", "residual": "_residual", "synth": "_synth"}


@dataclass
class SegmentOptions:
    """What ``recoseg segment`` was asked to do."""

    weights: Path | None = None
    device: str = "auto"
    sampler: SamplerConfig | None = None
    seed: int = 0
    batch_size: int | None = None
    """Slices per network call; None: ``devices.inference_batch_size``."""
    threshold: float | None = None
    min_component_ml: float | None = None
    whole_tumour_only: bool = False
    save: tuple[str, ...] = ()
    overlay: Path | None = None
    report: Path | None = None
    overwrite: bool = False
    skip_existing: bool = False
    shard: tuple[int, int] = (0, 1)
    label_scheme: str | None = None
    quiet: bool = False
    bf16: bool = True


@dataclass
class Prediction:
    """Region probabilities of one patient in its canonical voxel grid, before post-processing."""

    prepared: PreparedPatient
    probabilities: dict[str, np.ndarray]
    synth: np.ndarray | None
    seconds: dict[str, float]
    warnings: list[str]

    @property
    def voxel_ml(self) -> float:
        return self.prepared.voxel_ml

    def synth_volume(self) -> np.ndarray:
        """The synthetic T1ce in the canonical voxel grid (normalized units, 0 outside the brain)."""
        return restack_in_brain(self.prepared, self.synth)

    def residual_volume(self) -> np.ndarray:
        """|T1ce - synthetic T1ce| in the canonical voxel grid (normalized units, 0 outside the brain)."""
        return restack_in_brain(self.prepared, residual_slices(self.prepared, self.synth))


class Predictor:
    """Loaded stage-1 and stage-2 models, reused across patients."""

    def __init__(self, options: SegmentOptions):
        self.device = resolve_device(options.device)
        self.batch_size = inference_batch_size(self.device, options.batch_size)
        path, checksum = resolve_weights_path(options.weights)
        self.weights: Weights = load_weights(path, ("seg",), checksum)
        extra = self.weights.extra
        self.channels = tuple(extra["channels"])
        self.preprocess = PreprocessConfig(**extra["preprocess"])
        self.sampler = options.sampler or SamplerConfig(**extra["sampler"])
        self.targets = tuple(extra.get("targets", ["whole"]))
        if "whole" not in self.targets:
            raise WeightsError(f"{path}: segments {', '.join(self.targets)} only; `segment` needs whole-tumour weights")
        chosen = PostprocessConfig(**extra.get("postprocess", {"threshold": float(extra["threshold"])}))
        self.postprocess = replace(
            chosen, threshold=chosen.threshold if options.threshold is None else options.threshold,
            min_component_ml=chosen.min_component_ml if options.min_component_ml is None else options.min_component_ml)
        self.segmenter = Segmenter.from_weights(self.weights, self.device, options.bf16)
        self.synthesizer = None
        if extra.get("ddpm") is not None:
            self.synthesizer = build_synthesizer(synthesizer_weights(self.weights), self.device, options.bf16)
        self.options = options

    def predict(self, patient: Patient, on_stage=None, on_slices=None) -> Prediction:
        """Region probabilities of one patient (no files written).

        ``on_stage(name)`` is called as each stage ends; ``on_slices(stage, done, total)`` as the networks
        finish batches of slices (stage "synthesis" or "segmentation").
        """
        warnings: list[str] = []
        timer = StageTimer(on_stage)
        seconds, lap = timer.seconds, timer.lap

        prepared = prepare_patient(patient, self.preprocess, self.options.label_scheme,
                                   on_loaded=lambda: lap("load"))
        lap("preprocess")
        sliced = prepared.sliced

        def counter(stage: str):
            done = 0

            def advance(count: int) -> None:
                nonlocal done
                done += count
                on_slices(stage, done, len(sliced.images))
            return advance if on_slices else None

        synth = None
        if self.synthesizer is not None and (needs_synthesis(self.channels) or not prepared.has_t1ce):
            synth = synthesize_t1ce(prepared, self.synthesizer, self.sampler, self.options.seed, self.batch_size,
                                    counter("synthesis"))
        lap("synthesis")
        missing = None
        if not prepared.has_t1ce:
            if synth is None:
                raise InputError(f"{patient.folder or patient.case_id}: no T1ce, and these weights cannot synthesize one")
            missing = np.ones(len(sliced.images), bool)
            warnings.append("no T1ce: used the synthetic T1ce in its place and a zero residual")
        brain_ml = float(sliced.volume_brain.sum()) * prepared.voxel_ml
        if brain_ml > LARGEST_BRAIN_ML:
            warnings.append(f"the non-zero region measures {brain_ml / 1000:.1f} L, more than a brain: the images "
                            "look not skull-stripped; the models expect skull-stripped scans like BraTS's")
        inputs = assemble(sliced.images, sliced.brain, self.channels, synth, missing)
        slices = self.segmenter.predict(inputs, sliced.brain, self.batch_size, counter("segmentation"))
        probabilities = {region: restack(prepared, slices[:, k]) for k, region in enumerate(self.targets)}
        lap("segmentation")
        return Prediction(prepared, probabilities, synth, seconds, warnings)

    def run(self, patient: Patient, output: Path, on_stage=None, on_slices=None) -> dict:
        """Segment one patient and write the mask (and asked-for extras); returns its report."""
        prediction = self.predict(patient, on_stage, on_slices)
        prepared, volumes = prediction.prepared, prediction.prepared.volumes
        timer = StageTimer(on_stage, prediction.seconds)
        masks, labels = self.label_map(prediction)
        save_volume(labels, volumes.geometry, output, np.uint8)
        synth = prediction.synth
        wants_residual = synth is not None and ("residual" in self.options.save or self.options.overlay is not None)
        residual_volume = prediction.residual_volume() if wants_residual else None
        self._save_extras(output, prediction, residual_volume)
        timer.lap("write")
        if self.options.overlay is not None:
            image = volumes.images.get("t1ce", volumes.images["flair"])
            write_overlay(self._overlay_path(output, patient.case_id), image, residual_volume, masks,
                          volumes.seg, volumes.label_scheme, prepared.sliced.volume_brain, patient.case_id,
                          prediction.voxel_ml)
            timer.lap("overlay")
        for message in prediction.warnings:
            warn(f"{patient.case_id}: {message}")
        return self._report(patient, output, prediction, masks)

    def label_map(self, prediction: Prediction) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Post-processed region masks and the uint8 label map (canonical grid); warns on an empty mask."""
        masks = region_masks(prediction.probabilities, self.postprocess, prediction.voxel_ml)
        if not masks["whole"].any():
            prediction.warnings.append("the mask is empty: no tumour found above the threshold")
        scheme = prediction.prepared.volumes.label_scheme
        labels = (masks["whole"].astype(np.uint8) if self.options.whole_tumour_only
                  else labels_from_regions(masks["whole"], masks["core"], masks["enhancing"], scheme))
        return masks, labels

    def _save_extras(self, output: Path, prediction: Prediction, residual) -> None:
        prepared = prediction.prepared
        geometry = prepared.volumes.geometry
        clip = self.preprocess.clip
        if "probabilities" in self.options.save:
            save_volume(prediction.probabilities["whole"], geometry, extra_path(output, "probabilities"), np.float32)
        if "residual" in self.options.save and residual is not None:
            save_volume(residual * clip, geometry, extra_path(output, "residual"), np.float32)
        if "synth" in self.options.save and prediction.synth is not None:
            save_volume(prediction.synth_volume() * clip, geometry, extra_path(output, "synth"),
                        np.float32)

    def _overlay_path(self, output: Path, case_id: str) -> Path:
        overlay = Path(self.options.overlay)
        return overlay / f"{case_id}.png" if overlay.is_dir() else overlay

    def _report(self, patient: Patient, output: Path, prediction: Prediction, masks: dict[str, np.ndarray]) -> dict:
        prepared = prediction.prepared
        seconds = prediction.seconds
        report = {
            "case_id": patient.case_id, "output": str(output.resolve()),
            "inputs": {m: str(p.resolve()) for m, p in patient.images.items()},
            "labels": "whole tumour = 1" if self.options.whole_tumour_only else prepared.volumes.label_scheme,
            "volumes_ml": region_volumes_ml(masks, prediction.voxel_ml),
            "tumour_volume_ml": round(float(masks["whole"].sum()) * prediction.voxel_ml, 3),
            "slices_processed": int(len(prepared.sliced.images)), "seconds": seconds,
            "seconds_total": round(sum(seconds.values()), 3), "t1ce_present": prepared.has_t1ce,
            "warnings": prediction.warnings, "postprocess": self.postprocess.to_dict(),
            "sampler": self.sampler.to_dict(), "channels": list(self.channels), "regions": list(self.targets),
            "weights": str(self.weights.path), "weights_sha256": self.weights.sha256,
            "device": str(self.device), "precision": precision_name(self.device, self.options.bf16),
            "peak_rss_gb": peak_rss_gb(), "versions": package_versions(),
        }
        if prepared.volumes.seg is not None:
            report["metrics_vs_ground_truth"] = region_metrics(masks, prepared.volumes.seg, prepared.volumes.zooms)
        return report


def region_volumes_ml(masks: dict[str, np.ndarray], voxel_ml: float) -> dict[str, float]:
    """Volumes (mL) of the sub-regions (NCR/NET, edema, ET) and the regions (TC, WT)."""
    voxels = {**subregion_masks(masks), "core": masks["core"], "whole": masks["whole"]}
    return {name: round(float(mask.sum()) * voxel_ml, 3) for name, mask in voxels.items()}


def region_metrics(masks: dict[str, np.ndarray], seg: np.ndarray, spacing) -> dict[str, dict[str, float]]:
    """Per region (whole, core, enhancing): volume Dice, IoU, HD95, sensitivity, specificity, lesion-wise Dice;
    for the whole tumour also the per-slice Dice over slices with tumour."""
    out = {}
    for region in REGIONS:
        truth = region_mask(seg, region)
        metrics = volume_metrics(masks[region], truth, spacing)
        metrics["lesion_dice"] = lesion_wise_dice(masks[region], truth)
        metrics["truth_ml"] = float(truth.sum()) * float(np.prod(spacing)) / 1000.0
        out[region] = {key: round(value, 4) for key, value in metrics.items()}
    slice_dices, _ = slice_dice(masks["whole"], region_mask(seg, "whole"))
    out["whole"]["slice_dice_mean"] = round(float(np.mean(slice_dices)), 4) if slice_dices else float("nan")
    return out


def extra_path(output: Path, kind: str) -> Path:
    """``mask.nii.gz`` -> ``mask_prob.nii.gz`` (and _residual, _synth)."""
    name = output.name
    stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else name.rsplit(".", 1)[0]
    return output.with_name(f"{stem}{EXTRA_OUTPUTS[kind]}.nii.gz")


def segment_one(patient: Patient, output: Path, options: SegmentOptions) -> dict:
    """Segment a single patient into ``output``; bad input raises."""
    check_nifti_output(output, options.overwrite)
    check_output_file(options.report, options.overwrite)
    for kind in options.save:
        check_output_file(extra_path(output, kind), options.overwrite)
    if options.overlay is not None and not Path(options.overlay).is_dir():
        check_output_file(options.overlay, options.overwrite)
    predictor = Predictor(options)
    with progress_bar(options.quiet) as progress:
        overlay = options.overlay is not None
        task = progress.add_task(patient.case_id, total=None, info=STAGES[0])

        def on_slices(stage: str, done: int, total: int) -> None:
            """The bar counts the slices of both networks (most of the time), so its ETA means something."""
            offset = total if stage == "segmentation" else 0
            progress.update(task, total=2 * total, completed=offset + done, info=f"{stage} {done}/{total} slices")

        report = predictor.run(patient, output, lambda stage: progress.update(task, info=next_stage(stage, overlay)),
                               on_slices)
    if options.report is not None:
        write_json(options.report, report)
    if not options.quiet:
        volumes = report["volumes_ml"]
        console.print(f"{patient.case_id}: whole tumour {volumes['whole']:.1f} mL (core {volumes['core']:.1f}, "
                      f"enhancing {volumes['enhancing']:.1f}), "
                      f"{report['seconds_total']:.1f} s -> {output}", soft_wrap=True)
    return report
