"""``recoseg segment`` for one patient: the API's Segmenter, plus the files, overlay and report the CLI writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib

from recoseg_cli.api import STAGES as PREDICT_STAGES, SegmentationResult, Segmenter
from recoseg_cli.console import console, progress_bar, warn
from recoseg_cli.diffusion.sampler_config import SamplerConfig
from recoseg_cli.io.discovery import Patient
from recoseg_cli.io.json_io import write_json
from recoseg_cli.io.nifti import write_image
from recoseg_cli.io.outputs import check_nifti_output, check_output_file
from recoseg_cli.io.report_table import is_csv, report_row, write_rows
from recoseg_cli.overlay import check_picture_name, write_overlay
from recoseg_cli.prepare.exam import reference_sequence
from recoseg_cli.prepare.qc import write_qc
from recoseg_cli.provenance import StageTimer, package_versions, peak_rss_gb, seconds_since_start
from recoseg_cli.regions import REGION_ABBREVIATIONS, REGIONS
from recoseg_cli.sequences import expected_dice

STAGES = (*PREDICT_STAGES, "write", "overlay")
"""Stages of one patient, in order; ``on_stage`` callbacks receive each one as it finishes."""


def next_stage(finished: str, overlay: bool) -> str:
    """The stage that starts when ``finished`` ends (for progress displays)."""
    stages = ("prepare", *(STAGES if overlay else STAGES[:-1]))
    index = stages.index(finished) + 1
    return stages[index] if index < len(stages) else "done"


EXTRA_OUTPUTS = {"probabilities": "_prob", "probabilities_core": "_prob_core",
                 "probabilities_enhancing": "_prob_enhancing", "residual": "_residual", "synth": "_synth",
                 "uncertainty": "_uncertainty"}
"""Extra images a patient can write beside its mask, by kind, and their name suffixes."""

PROBABILITY_KINDS = {"probabilities": "whole", "probabilities_core": "core", "probabilities_enhancing": "enhancing"}


@dataclass
class SegmentOptions:
    """What ``recoseg segment`` was asked to do."""

    weights: Path | None = None
    model: str | None = None
    """A bundled model by name (``weights.BUNDLED_MODELS``); None: the default, or ``weights``."""
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
    runtime: str = "auto"
    """Which library runs the networks (``runtime.RUNTIMES``)."""
    force: bool = False
    tta: bool = False
    prepare: str = "auto"
    """auto: prepare exams that are not BraTS-ready (``prepare.exam.readiness``); full: always; off: never."""
    keep_prepared: Path | None = None
    qc: Path | None = None
    """Quality-control picture of a prepared exam."""

    def segmenter(self) -> Segmenter:
        """The API's Segmenter with these options."""
        return Segmenter(self.weights, self.device, threshold=self.threshold, min_component_ml=self.min_component_ml,
                         whole_tumour=self.whole_tumour_only, labels=self.label_scheme, sampler=self.sampler,
                         seed=self.seed, batch_size=self.batch_size, bf16=self.bf16,
                         force=self.force, tta=self.tta, model=self.model, runtime=self.runtime)


def write_outputs(segmenter: Segmenter, patient: Patient, output: Path, options: SegmentOptions, on_stage=None,
                  on_slices=None) -> dict:
    """Segment one patient with the API (which prepares a raw exam and maps every output back to its native
    reference grid) and write the mask, the asked-for extras, the overlay and the QC picture; returns its report."""
    def preparing(reasons: list[str]) -> None:
        if not options.quiet:
            console.print(f"{patient.case_id}: preparing the exam ({'; '.join(reasons)})", soft_wrap=True)

    result = segmenter(patient, probabilities=any(kind in options.save for kind in PROBABILITY_KINDS),
                       residual="residual" in options.save, synth="synth" in options.save,
                       uncertainty="uncertainty" in options.save, prepare=options.prepare,
                       keep_prepared=options.keep_prepared, qc=options.qc is not None, on_stage=on_stage,
                       on_slices=on_slices, on_prepare=preparing)
    timer = StageTimer(on_stage, result.seconds)
    write_image(result.image, output)
    for kind, image in _extras(result).items():
        if kind in options.save:
            write_image(image, extra_path(output, kind))
    if result.qc_figure is not None:
        write_qc(Path(options.qc), result.qc_figure)
    timer.lap("write")
    used = result.segmenter  # another bundled model, for an exam the default model hands on
    if options.overlay is not None:
        _write_overlay(used, result, Path(options.overlay), patient.case_id)
        timer.lap("overlay")
    for message in result.warnings:
        warn(f"{patient.case_id}: {message}")
    return _report(used, patient, output, result)


def _extras(result: SegmentationResult) -> dict[str, nib.Nifti1Image]:
    """The result's extra images by ``EXTRA_OUTPUTS`` kind."""
    images = {kind: result.probabilities[region] for kind, region in PROBABILITY_KINDS.items()
              if region in result.probabilities}
    return {**images, **{kind: image for kind, image in (("residual", result.residual), ("synth", result.synth),
                                                          ("uncertainty", result.uncertainty)) if image is not None}}


def _write_overlay(segmenter: Segmenter, result: SegmentationResult, overlay: Path, case_id: str) -> None:
    """The overlay picture, drawn on the grid the networks worked on (1 mm for a prepared exam)."""
    prediction = result.prediction
    volumes, brain = prediction.prepared.volumes, prediction.prepared.sliced.volume_brain
    masks, _ = segmenter.label_map(prediction.labelled(), brain, prediction.voxel_ml, volumes.label_scheme, [])
    shown = reference_sequence(volumes.images)
    residual = (prediction.residual_volume() * segmenter.preprocess.clip
                if prediction.synth is not None and not prediction.prepared.missing else None)
    write_overlay(overlay / f"{case_id}.png" if overlay.is_dir() else overlay, volumes.images[shown], residual, masks,
                  volumes.seg, volumes.label_scheme, brain, case_id, volumes.zooms, result.warnings,
                  prediction.uncertainty() if prediction.mirrored is not None else None, shown)


def _report(segmenter: Segmenter, patient: Patient, output: Path, result: SegmentationResult) -> dict:
    prediction = result.prediction
    prepared, seconds = prediction.prepared, result.seconds
    report = {
        "case_id": result.case_id, "output": str(output.resolve()),
        "inputs": {m: str(p.resolve()) for m, p in patient.images.items()},
        "labels": "whole tumour = 1" if segmenter.whole_tumour else prepared.volumes.label_scheme,
        "volumes_ml": result.volumes_ml, "tumour_volume_ml": result.volumes_ml["whole"],
        "components": result.components,
        "slices_processed": int(len(prepared.sliced.images)), "seconds": seconds,
        "seconds_total": round(sum(seconds.values()), 3), "seconds_since_start": seconds_since_start(),
        "t1ce_present": prepared.has_t1ce,
        "sequences": {"used": list(segmenter.used_sequences(prepared)), "missing": list(prepared.missing),
                      "not_read": [m for m in prepared.present if m not in segmenter.input_sequences],
                      "expected_dice": expected_dice(segmenter.subset_dice, prepared.present)},
        "warnings": result.warnings, "flagged": bool(result.warnings), "sequence_checks": prediction.sequence_checks,
        "uncertainty_score": result.uncertainty_score,
        "postprocess": segmenter.postprocess.to_dict(),
        "sampler": segmenter.sampler.to_dict(), "channels": list(segmenter.channels),
        "regions": list(segmenter.targets),
        "weights": str(segmenter.weights.path), "weights_sha256": segmenter.weights.sha256,
        "tta": segmenter.tta, "device": str(segmenter.device),
        "runtime": segmenter.runtime, "precision": segmenter.precision,
        "peak_rss_gb": peak_rss_gb(), "versions": package_versions(),
    }
    if result.preparation is not None:
        report["preparation"] = result.preparation
    if result.metrics is not None:
        report["metrics_vs_ground_truth"] = result.metrics
    return report


def extra_path(output: Path, kind: str) -> Path:
    """``mask.nii.gz`` -> ``mask_prob.nii.gz`` (and the other suffixes of ``EXTRA_OUTPUTS``)."""
    name = output.name
    stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else name.rsplit(".", 1)[0]
    return output.with_name(f"{stem}{EXTRA_OUTPUTS[kind]}.nii.gz")


def segment_one(patient: Patient, output: Path, options: SegmentOptions, details: dict | None = None,
                segmenter: Segmenter | None = None) -> dict:
    """Segment a single patient into ``output`` (with ``segmenter`` when already loaded); bad input raises.
    ``details`` go into the report as they are."""
    check_nifti_output(output, options.overwrite)
    check_output_file(options.report, options.overwrite)
    for kind in options.save:
        check_output_file(extra_path(output, kind), options.overwrite)
    if options.overlay is not None and not Path(options.overlay).is_dir():
        check_output_file(options.overlay, options.overwrite)
        check_picture_name(Path(options.overlay))
    if options.qc is not None:
        check_output_file(options.qc, options.overwrite)
        check_picture_name(Path(options.qc))
    segmenter = segmenter or options.segmenter()
    with progress_bar(options.quiet) as progress:
        overlay = options.overlay is not None
        task = progress.add_task(patient.case_id, total=None, info=STAGES[0])

        def on_slices(stage: str, done: int, total: int) -> None:
            """The bar counts the slices of both networks (most of the time), so its ETA means something."""
            offset = total if stage == "segmentation" else 0
            progress.update(task, total=2 * total, completed=offset + done, info=f"{stage} {done}/{total} slices")

        report = write_outputs(segmenter, patient, output, options,
                               lambda stage: progress.update(task, info=next_stage(stage, overlay)), on_slices)
    report.update(details or {})
    if options.report is not None and is_csv(options.report):
        write_rows(options.report, [report_row(report)])
    elif options.report is not None:
        write_json(options.report, report)
    if not options.quiet:
        console.print(summary_line(report), soft_wrap=True)
    return report


def summary_line(report: dict) -> str:
    """One patient's result in one line: volumes, Dice against its ground truth when it has one, time, file."""
    volumes = report["volumes_ml"]
    line = (f"{report['case_id']}: whole tumour {volumes['whole']:.1f} mL (core {volumes['core']:.1f}, "
            f"enhancing {volumes['enhancing']:.1f})")
    if "metrics_vs_ground_truth" in report:
        metrics = report["metrics_vs_ground_truth"]
        line += ", Dice " + ", ".join(f"{REGION_ABBREVIATIONS[region]} {metrics[region]['dice']:.3f}"
                                      for region in REGIONS if region in metrics)
    since = report.get("seconds_since_start")
    wall = f" ({since:.0f} s since the command started)" if since is not None else ""
    return f"{line}, {report['seconds_total']:.1f} s{wall} -> {report['output']}"
