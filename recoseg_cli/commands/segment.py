"""``recoseg segment``: whole-tumour masks for one patient or a folder of patients."""

from __future__ import annotations

import json
import platform
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import nibabel
import numpy as np
import torch
from scipy import ndimage

from recoseg_cli import __version__
from recoseg_cli.console import console, progress_bar, warn
from recoseg_cli.devices import precision_name, resolve_device
from recoseg_cli.diffusion.samplers import SamplerConfig
from recoseg_cli.errors import InputError, RecosegError, WeightsError
from recoseg_cli.inputs import assemble, needs_synthesis
from recoseg_cli.io.discovery import Patient, discover_patient, find_patient_folders
from recoseg_cli.io.nifti import save_volume, write_atomically
from recoseg_cli.io.outputs import check_nifti_output, check_output_file, check_output_folder
from recoseg_cli.metrics import slice_dice, volume_metrics
from recoseg_cli.overlay import write_overlay
from recoseg_cli.pipeline import prepare_patient, residual_slices, restack, restack_in_brain, synthesize_t1ce
from recoseg_cli.preprocess import PreprocessConfig
from recoseg_cli.segmentation import Segmenter
from recoseg_cli.synthesis import build_synthesizer, synthesizer_weights
from recoseg_cli.weights import Weights, load_weights, resolve_weights_path

EXTRA_OUTPUTS = {"probabilities": "_prob", "residual": "_residual", "synth": "_synth"}


@dataclass
class SegmentOptions:
    """What ``recoseg segment`` was asked to do."""

    weights: Path | None = None
    device: str = "auto"
    sampler: SamplerConfig | None = None
    seed: int = 0
    batch_size: int = 32
    threshold: float | None = None
    min_component: int = 0
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
class CaseResult:
    """Outcome of one patient."""

    case_id: str
    output: Path
    report: dict = field(default_factory=dict)
    error: str | None = None


class Predictor:
    """Loaded stage-1 and stage-2 models, reused across patients."""

    def __init__(self, options: SegmentOptions):
        self.device = resolve_device(options.device)
        path, checksum = resolve_weights_path(options.weights)
        self.weights: Weights = load_weights(path, ("seg",), checksum)
        extra = self.weights.extra
        self.channels = tuple(extra["channels"])
        self.preprocess = PreprocessConfig(**extra["preprocess"])
        self.threshold = options.threshold if options.threshold is not None else float(extra["threshold"])
        self.sampler = options.sampler or SamplerConfig(**extra["sampler"])
        targets = extra.get("targets", ["whole"])
        if "whole" not in targets:
            raise WeightsError(f"{path}: segments {', '.join(targets)} only; `segment` needs whole-tumour weights")
        self.whole_channel = targets.index("whole")
        self.segmenter = Segmenter.from_weights(self.weights, self.device, options.bf16)
        self.synthesizer = None
        if extra.get("ddpm") is not None:
            self.synthesizer = build_synthesizer(synthesizer_weights(self.weights), self.device, options.bf16)
        self.options = options

    def run(self, patient: Patient, output: Path, on_stage=None) -> dict:
        """Segment one patient and write the mask (and asked-for extras); returns its report."""
        seconds: dict[str, float] = {}
        warnings: list[str] = []
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            seconds[name] = round(now - clock, 3)
            clock = now
            if on_stage:
                on_stage(name)

        prepared = prepare_patient(patient, self.preprocess, self.options.label_scheme,
                                   on_loaded=lambda: lap("load"))
        lap("preprocess")
        sliced = prepared.sliced
        synth = None
        if self.synthesizer is not None and (needs_synthesis(self.channels) or not prepared.has_t1ce):
            synth = synthesize_t1ce(prepared, self.synthesizer, self.sampler, self.options.seed, self.options.batch_size)
        lap("synthesis")
        missing = None
        if not prepared.has_t1ce:
            if synth is None:
                raise InputError(f"{patient.folder or patient.case_id}: no T1ce, and these weights cannot synthesize one")
            missing = np.ones(len(sliced.images), bool)
            warnings.append("no T1ce: used the synthetic T1ce in its place and a zero residual")
        inputs = assemble(sliced.images, sliced.brain, self.channels, synth, missing)
        probabilities = self.segmenter.predict(inputs, sliced.brain, self.options.batch_size)[:, self.whole_channel]
        lap("segmentation")

        volumes = prepared.volumes
        probability_volume = restack(prepared, probabilities)
        mask = probability_volume >= self.threshold
        if self.options.min_component > 0:
            mask = drop_small_components(mask, self.options.min_component)
        if not mask.any():
            warnings.append("the mask is empty: no tumour found above the threshold")
        save_volume(mask.astype(np.uint8), volumes.geometry, output, np.uint8)
        wants_residual = synth is not None and ("residual" in self.options.save or self.options.overlay is not None)
        residual_volume = restack_in_brain(prepared, residual_slices(prepared, synth)) if wants_residual else None
        self._save_extras(output, prepared, probability_volume, residual_volume, synth)
        lap("write")
        if self.options.overlay is not None:
            overlay_path = self._overlay_path(output, patient.case_id)
            image = volumes.images.get("t1ce", volumes.images["flair"])
            write_overlay(overlay_path, image, residual_volume, mask, volumes.seg, prepared.sliced.volume_brain,
                          patient.case_id)
            lap("overlay")
        for message in warnings:
            warn(f"{patient.case_id}: {message}")
        return self._report(patient, output, prepared, mask, seconds, warnings)

    def _save_extras(self, output: Path, prepared, probabilities, residual, synth) -> None:
        geometry = prepared.volumes.geometry
        clip = self.preprocess.clip
        if "probabilities" in self.options.save:
            save_volume(probabilities, geometry, extra_path(output, "probabilities"), np.float32)
        if "residual" in self.options.save and residual is not None:
            save_volume(residual * clip, geometry, extra_path(output, "residual"), np.float32)
        if "synth" in self.options.save and synth is not None:
            save_volume(restack_in_brain(prepared, synth) * clip, geometry, extra_path(output, "synth"), np.float32)

    def _overlay_path(self, output: Path, case_id: str) -> Path:
        overlay = Path(self.options.overlay)
        return overlay / f"{case_id}.png" if overlay.is_dir() else overlay

    def _report(self, patient: Patient, output: Path, prepared, mask: np.ndarray, seconds: dict,
                warnings: list[str]) -> dict:
        zooms = prepared.volumes.geometry.zooms
        report = {
            "case_id": patient.case_id, "output": str(output),
            "inputs": {m: str(p) for m, p in patient.images.items()},
            "tumour_volume_ml": round(float(mask.sum()) * float(np.prod(zooms)) / 1000.0, 3),
            "slices_processed": int(len(prepared.sliced.images)), "seconds": seconds,
            "seconds_total": round(sum(seconds.values()), 3), "t1ce_present": prepared.has_t1ce,
            "warnings": warnings, "threshold": self.threshold, "sampler": self.sampler.to_dict(),
            "channels": list(self.channels), "weights": str(self.weights.path), "weights_sha256": self.weights.sha256,
            "device": str(self.device), "precision": precision_name(self.device, self.options.bf16),
            "versions": package_versions(),
        }
        if prepared.volumes.seg is not None:
            truth = prepared.volumes.seg > 0
            metrics = volume_metrics(mask, truth, prepared.volumes.zooms)
            slice_dices, slice_ious = slice_dice(mask, truth)
            metrics.update({"slice_dice_mean": float(np.mean(slice_dices)) if slice_dices else float("nan"),
                            "slice_iou_mean": float(np.mean(slice_ious)) if slice_ious else float("nan"),
                            "tumour_slices": len(slice_dices)})
            report["metrics_vs_ground_truth"] = metrics
        return report


def extra_path(output: Path, kind: str) -> Path:
    """``mask.nii.gz`` -> ``mask_prob.nii.gz`` (and _residual, _synth)."""
    name = output.name
    stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else name.rsplit(".", 1)[0]
    return output.with_name(f"{stem}{EXTRA_OUTPUTS[kind]}.nii.gz")


def drop_small_components(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    """Remove connected components (26-connectivity) smaller than ``min_voxels``."""
    labels, count = ndimage.label(mask, np.ones((3, 3, 3), bool))
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[labels]


def package_versions() -> dict[str, str]:
    return {"recoseg": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "nibabel": nibabel.__version__, "python": platform.python_version()}


def parse_shard(text: str) -> tuple[int, int]:
    """``i/n`` (0-based i) -> (i, n)."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise InputError(f"--shard must look like i/n (0-based), not {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise InputError(f"--shard {text}: need 0 <= i < n")
    return index, count


def segment_one(patient: Patient, output: Path, options: SegmentOptions) -> dict:
    """Segment a single patient into ``output``; bad input raises."""
    check_nifti_output(output, options.overwrite)
    check_output_file(options.report, options.overwrite)
    for kind in options.save:
        check_output_file(extra_path(output, kind), options.overwrite)
    predictor = Predictor(options)
    with progress_bar(options.quiet) as progress:
        task = progress.add_task(patient.case_id, total=5 + (options.overlay is not None), info="")
        report = predictor.run(patient, output, lambda stage: progress.update(task, advance=1, info=stage))
    if options.report is not None:
        write_json(options.report, report)
    if not options.quiet:
        console.print(f"{patient.case_id}: tumour {report['tumour_volume_ml']:.1f} mL, "
                      f"{report['seconds_total']:.1f} s -> {output}")
    return report


def segment_cohort(root: Path, out_dir: Path, options: SegmentOptions) -> list[CaseResult]:
    """Segment every patient folder under ``root`` into ``out_dir/<case>.nii.gz``; failures are collected."""
    check_output_folder(out_dir)
    check_output_file(options.report, options.overwrite)
    folders = find_patient_folders(root)
    index, count = options.shard
    folders = folders[index::count]
    planned = [(folder, out_dir / f"{folder.name}.nii.gz") for folder in folders]
    existing = [out for _, out in planned if out.exists()]
    if existing and not (options.overwrite or options.skip_existing):
        raise InputError(f"{existing[0]}: already exists ({len(existing)} outputs do); "
                         "use --skip-existing or --overwrite")
    if options.skip_existing:
        planned = [(folder, out) for folder, out in planned if not out.exists()]
    out_dir.mkdir(parents=True, exist_ok=True)
    if options.overlay is not None:
        Path(options.overlay).mkdir(parents=True, exist_ok=True)
    predictor = Predictor(options)
    results: list[CaseResult] = []
    with progress_bar(options.quiet) as progress:
        task = progress.add_task("patients", total=len(planned), info="")
        for folder, output in planned:
            progress.update(task, info=folder.name)
            results.append(_run_case(predictor, folder, output,
                                     lambda stage, name=folder.name: progress.update(task, info=f"{name}: {stage}")))
            progress.update(task, advance=1)
    if options.report is not None:
        write_json(options.report, {"cases": [r.report or {"case_id": r.case_id, "error": r.error} for r in results],
                                    "failed": [r.case_id for r in results if r.error]})
    return results


def _run_case(predictor: Predictor, folder: Path, output: Path, on_stage) -> CaseResult:
    try:
        patient = discover_patient(folder)
        return CaseResult(patient.case_id, output, predictor.run(patient, output, on_stage))
    except RecosegError as error:
        console.print(f"[red]error:[/red] {error}", soft_wrap=True)
        return CaseResult(folder.name, output, error=str(error))
    except Exception as error:  # an internal bug in one case must not stop the cohort; keep its traceback
        console.print(traceback.format_exc(), markup=False)
        return CaseResult(folder.name, output, error=f"internal error: {error.__class__.__name__}: {error}")


def write_json(path: Path, data: dict) -> None:
    """JSON with NaN written as null, so strict parsers read it."""
    text = json.dumps(_nan_to_none(data), indent=2, allow_nan=False)
    write_atomically(Path(path), lambda tmp: tmp.write_text(text))


def _nan_to_none(value):
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value
