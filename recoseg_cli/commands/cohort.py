"""``recoseg segment`` on a folder of patients: one mask per patient folder, a summary report, resumable."""

from __future__ import annotations

import json
import traceback
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from recoseg_cli.api import Segmenter
from recoseg_cli.commands.segment import STAGES, SegmentOptions, extra_path, next_stage, summary_line, write_outputs
from recoseg_cli.console import console, progress_bar
from recoseg_cli.console import error as print_error
from recoseg_cli.dicom.exam import report_details, study_as_exam
from recoseg_cli.dicom.study import is_dicom_folder
from recoseg_cli.errors import InputError, RecosegError
from recoseg_cli.io.discovery import discover_patient, find_patient_folders
from recoseg_cli.io.json_io import write_json
from recoseg_cli.io.outputs import check_output_file, check_output_folder
from recoseg_cli.io.report_table import failed_row, is_csv, read_rows, report_row, write_rows
from recoseg_cli.io.nifti import load_volume
from recoseg_cli.metrics import summary_stats
from recoseg_cli.regions import REGIONS, region_mask, region_volumes_ml

COHORT_RUNTIME = "torch"
"""What runs a cohort's networks under ``--runtime auto``: torch, whose import a cohort pays once (20 patients on
a 2-core Xeon: 84.8 and 90.7 s with torch, 99.6 and 99.0 s with ONNX Runtime; ``examples/speed/README.md``).
One patient's command takes ONNX Runtime, which spares the import."""


@dataclass
class CaseResult:
    """Outcome of one patient."""

    case_id: str
    output: Path
    report: dict = field(default_factory=dict)
    error: str | None = None
    skipped: bool = False
    """Its mask existed and ``--skip-existing`` was given."""



def cohort_names(root: Path, folders: list[Path]) -> list[str]:
    """Output name of each patient folder: its name, or where names repeat, its path below ``root`` joined by _.

    A BIDS ``anat`` folder is named by the folders above it (``sub-01/ses-1/anat`` -> ``sub-01_ses-1``).
    """
    def own(folder: Path) -> str:
        parts = folder.relative_to(root).parts if folder != root else (folder.name,)
        return "_".join(parts[:-1]) if parts[-1] == "anat" and len(parts) > 1 else parts[-1]

    names = [own(folder) for folder in folders]
    counts = Counter(names)
    return [name if counts[name] == 1 else "_".join(folder.relative_to(root).parts) or folder.name
            for name, folder in zip(names, folders)]


def segment_cohort(root: Path, out_dir: Path, options: SegmentOptions,
                   studies: list[tuple[Path, str]] | None = None) -> list[CaseResult]:
    """Segment every patient folder under ``root`` (or the given DICOM ``studies``, folder and name) into
    ``out_dir/<name>.nii.gz`` (overlay ``<name>.png``, report ``case_id`` the same name); failures are collected,
    existing masks skipped with ``--skip-existing``."""
    if studies is None:
        folders = find_patient_folders(root)
        studies = list(zip(folders, cohort_names(root, folders)))
    if Path(out_dir).name.lower().endswith((".nii", ".nii.gz")):
        raise InputError(f"{out_dir}: a folder of patients writes one mask each into a folder; give a folder name, "
                         "not a .nii/.nii.gz file name")
    check_output_folder(out_dir)
    resuming = options.skip_existing and options.report is not None and Path(options.report).is_file()
    check_output_file(options.report, options.overwrite or resuming)
    if options.overlay is not None:
        check_output_folder(options.overlay)
    index, count = options.shard
    planned = studies[index::count]
    outputs = {name: _case_outputs(out_dir, name, options) for _, name in planned}
    skipped = {name for _, name in planned if options.skip_existing and outputs[name][0].exists()}
    existing = [path for _, name in planned if name not in skipped for path in outputs[name] if path.exists()]
    if existing and not options.overwrite:
        remedy = "--overwrite" if options.skip_existing else "--skip-existing or --overwrite"
        raise InputError(f"{existing[0]}: already exists ({len(existing)} outputs do); use {remedy}")
    created = [folder for folder in (out_dir, options.overlay) if folder is not None and not Path(folder).exists()]
    for folder in created:
        Path(folder).mkdir(parents=True, exist_ok=True)
    previous = _previous_reports(options.report) if resuming else {}
    runtime = COHORT_RUNTIME if options.runtime == "auto" else options.runtime
    segmenter = replace(options, runtime=runtime).segmenter()
    results: list[CaseResult] = []
    interrupted = False
    with progress_bar(options.quiet) as progress:
        task = progress.add_task("patients", total=len(planned) - len(skipped), info="")
        try:
            for folder, name in planned:
                output = outputs[name][0]
                if name in skipped:
                    results.append(CaseResult(name, output, previous.get(name) or mask_entry(name, output),
                                              skipped=True))
                    continue
                progress.update(task, info=f"{name}: {STAGES[0]}")
                results.append(_run_case(segmenter, options, folder, name, output,
                                         lambda stage, name=name: progress.update(
                                             task, info=f"{name}: {next_stage(stage, options.overlay is not None)}")))
                progress.update(task, advance=1)
                if not options.quiet and results[-1].report:
                    progress.console.print(summary_line(results[-1].report), soft_wrap=True)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the report still covers the finished patients
            interrupted = True
    for folder in created:
        if Path(folder).is_dir() and not any(Path(folder).iterdir()):
            Path(folder).rmdir()  # nothing was written: leave no empty folder behind
    if options.report is not None:
        write_cohort_report(Path(options.report), results, [name for _, name in planned[len(results):]])
    if interrupted:
        raise KeyboardInterrupt
    return results


def status(result: CaseResult) -> str:
    """A patient's line in a cohort report: failed, skipped, flagged (written with a warning) or ok."""
    if result.error:
        return "failed"
    if result.skipped:
        return "skipped"
    return "flagged" if result.report.get("flagged") else "ok"


def write_cohort_report(path: Path, results: list[CaseResult], not_run: list[str]) -> None:
    """The cohort's report, CSV or JSON: every patient's entry with its status, those an interruption left
    ``not_run``, and (JSON) a summary over the patients with volumes."""
    if is_csv(path):
        write_rows(path, [failed_row(r.case_id, r.error) if r.error else report_row(r.report, status(r))
                          for r in results] + [{"case_id": name, "status": "not run"} for name in not_run])
        return
    counts = Counter(status(r) for r in results)
    reports = [r.report for r in results if "volumes_ml" in r.report]
    write_json(path, {"summary": {**cohort_summary(reports), **{s: counts[s] for s in STATUSES},
                                  "not_run": len(not_run)},
                      "cases": [{**(r.report or {"case_id": r.case_id, "error": r.error}), "status": status(r)}
                                for r in results],
                      "failed": [r.case_id for r in results if r.error], "not_run": not_run})


STATUSES = ("ok", "flagged", "skipped", "failed")


def mask_entry(case_id: str, mask: Path) -> dict:
    """A skipped patient's entry without an earlier report: the volumes of its existing mask."""
    labels, geometry = load_volume(mask)
    scheme = "brats2023" if (labels == 3).any() else "brats2020"
    masks = {region: region_mask(labels, region, scheme) for region in REGIONS}
    voxel_ml = float(np.prod(geometry.canonical_zooms)) / 1000.0
    return {"case_id": case_id, "output": str(mask.resolve()), "volumes_ml": region_volumes_ml(masks, voxel_ml),
            "from_existing_mask": True}


def cohort_summary(reports: list[dict]) -> dict:
    """Statistics over patients (mean, std, median, range, count) of each volume and, where ground truths
    exist, of each metric."""
    def stats(values: list) -> dict[str, float]:
        return {key: round(value, 4) for key, value in summary_stats(values).items()}

    summary: dict = {"patients": len(reports),
                     "volumes_ml": {name: stats([r["volumes_ml"][name] for r in reports])
                                    for name in (reports[0]["volumes_ml"] if reports else ())}}
    scored = [r["metrics_vs_ground_truth"] for r in reports if "metrics_vs_ground_truth" in r]
    if scored:
        summary["metrics_vs_ground_truth"] = {region: {key: stats([m[region].get(key) for m in scored])
                                                       for key in scored[0][region]} for region in scored[0]}
    return summary


def _case_outputs(out_dir: Path, name: str, options: SegmentOptions) -> list[Path]:
    """The files one cohort patient writes, its mask first."""
    mask = out_dir / f"{name}.nii.gz"
    paths = [mask] + [extra_path(mask, kind) for kind in options.save]
    return paths + ([Path(options.overlay) / f"{name}.png"] if options.overlay is not None else [])


def _previous_reports(path: Path) -> dict[str, dict]:
    """Per-case entries of an earlier cohort report (to keep those of skipped patients)."""
    if is_csv(path):
        return read_rows(path)
    try:
        cases = json.loads(Path(path).read_text())["cases"]
        return {case["case_id"]: case for case in cases if "output" in case}
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"{path}: not a cohort report of `recoseg segment`; give another --report") from None


def _run_case(segmenter: Segmenter, options: SegmentOptions, folder: Path, name: str, output: Path,
              on_stage) -> CaseResult:
    try:
        if is_dicom_folder(folder):
            with study_as_exam(folder, case_id=name, required=segmenter.exam_requirements) as (patient, roles, study):
                report = write_outputs(segmenter, patient, output, options, on_stage)
                return CaseResult(name, output, {**report, **report_details(folder, roles, study)})
        patient = replace(discover_patient(folder), case_id=name)
        return CaseResult(name, output, write_outputs(segmenter, patient, output, options, on_stage))
    except RecosegError as error:
        print_error(str(error))
        return CaseResult(name, output, error=str(error))
    except Exception as error:  # an internal bug in one case must not stop the cohort; keep its traceback
        console.print(traceback.format_exc(), markup=False)
        return CaseResult(name, output, error=f"internal error: {error.__class__.__name__}: {error}")
