"""Command-line interface: the app and its entry point, and the patient commands (segment, synthesize, residual).

The model commands (train, crossval, benchmark, preprocess, make-cohort) are in ``cli_models``; shared options
in ``cli_options``. Each command is options, then one call, then a printed summary.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Optional

import typer

from recoseg_cli import __version__
from recoseg_cli.allocator import keep_freed_memory, small_pages_for_arrays
from recoseg_cli.cli_models import COMMANDS
from recoseg_cli.cli_options import (BATCH_SIZE, DEVICE, FLAIR, MODEL, OVERWRITE, QUIET, SEED, SEG, STAGE_ONE_SAMPLER,
                                     STAGE_ONE_WEIGHTS, STEPS, T1, T1CE, T1CE_REQUIRED, T2, Labels, Model, Prepare,
                                     RuntimeChoice, Sampler, label_scheme, parse_shard, patient_from_options,
                                     sampler_config)
from recoseg_cli.console import console, error
from recoseg_cli.errors import InputError, RecosegError

app = typer.Typer(name="recoseg", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="Brain tumour segmentation with residual-guided cross-modal diffusion (ReCoSeg).")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"recoseg {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Segment brain tumours in MRI patient folders (FLAIR, T1, T1ce, T2)."""


@app.command()
def synthesize(
    patient: Optional[Path] = typer.Argument(None, help="Patient folder (BraTS2020, BraTS2023 or nnU-Net names)."),
    output: Path = typer.Option(..., "-o", "--output", help="Synthetic T1ce NIfTI to write (float32, z-score units)."),
    weights: Optional[Path] = STAGE_ONE_WEIGHTS, model: Optional[Model] = MODEL, sampler: Sampler = STAGE_ONE_SAMPLER,
    steps: int = STEPS,
    start_step: int = typer.Option(999, help="One-step sampler: timestep the real T1ce (if any) is noised to."),
    eta: float = typer.Option(0.0, help="DDIM stochasticity."),
    seed: int = SEED,
    device: str = DEVICE,
    batch_size: Optional[int] = BATCH_SIZE,
    report: Optional[Path] = typer.Option(None, help="Write PSNR/SSIM (when T1ce exists) and timings as JSON."),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
    flair: Optional[Path] = FLAIR, t1: Optional[Path] = T1, t1ce: Optional[Path] = T1CE, t2: Optional[Path] = T2,
    seg: Optional[Path] = SEG,
) -> None:
    """Synthesize T1ce from FLAIR, T1 and T2 with stage 1 of the weights (the default model's L1 regressor, or the
    conditional DDPM of --model ddpm), in the patient's own geometry."""
    found = patient_from_options(patient, flair, t1, t1ce, t2, seg)
    from recoseg_cli.commands.synthesize import run_synthesize

    run_synthesize(found, output, weights, sampler_config(sampler, steps, start_step, eta), seed, device, batch_size, report,
                   overwrite, quiet, model)


@app.command()
def residual(
    patient: Optional[Path] = typer.Argument(None, help="Patient folder with FLAIR, T1, T1ce and T2."),
    output: Path = typer.Option(..., "-o", "--output", help="Residual NIfTI to write (float32, z-score units)."),
    weights: Optional[Path] = STAGE_ONE_WEIGHTS, model: Optional[Model] = MODEL, sampler: Sampler = STAGE_ONE_SAMPLER,
    steps: int = STEPS, smooth: float = typer.Option(0.0, min=0.0, help="Gaussian smoothing sigma in mm (0: none)."),
    seed: int = SEED,
    device: str = DEVICE,
    batch_size: Optional[int] = BATCH_SIZE,
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
    flair: Optional[Path] = FLAIR, t1: Optional[Path] = T1, t1ce: Optional[Path] = T1CE_REQUIRED,
    t2: Optional[Path] = T2,
) -> None:
    """Write the residual |T1ce - synthetic T1ce|, which marks what FLAIR, T1 and T2 could not predict."""
    found = patient_from_options(patient, flair, t1, t1ce, t2, None)
    from recoseg_cli import api

    api.residual(found, output, overwrite, smooth, weights=weights, model=model, device=device,
                 sampler=sampler_config(sampler, steps, 999, 0.0), seed=seed, batch_size=batch_size)
    if not quiet:
        console.print(f"residual -> {output}")


@app.command()
def segment(
    input: Optional[Path] = typer.Argument(None, help="A patient folder, a DICOM study folder, or a folder of "
                                                      "patient folders."),
    output: Path = typer.Option(..., "-o", "--output", help="Mask file (one patient) or folder (several)."),
    dicom_seg: Optional[Path] = typer.Option(None, "--dicom-seg", help="DICOM study: also write the mask as a "
                                                                       "DICOM Segmentation on the T1ce series."),
    weights: Optional[Path] = typer.Option(None, help="Segmenter weights; default: bundled (or $RECOSEG_WEIGHTS)."),
    model: Optional[Model] = MODEL,
    device: str = DEVICE,
    sampler: Optional[Sampler] = typer.Option(None, help="Override the weights' sampler."),
    steps: int = typer.Option(1, min=1, help="With --sampler: network calls per slice."),
    threshold: Optional[float] = typer.Option(None, min=0.0, max=1.0, help="Probability threshold (default: weights')."),
    min_component: Optional[float] = typer.Option(
        None, "--min-component", min=0.0, help="Drop tumour components smaller than this many mL (default: weights')."),
    whole_tumour: bool = typer.Option(False, "--whole-tumour/--sub-regions",
                                      help="Write a binary whole-tumour mask (1) instead of the BraTS sub-region labels."),
    save_probabilities: bool = typer.Option(False, "--save-probabilities/--no-save-probabilities",
                                            help="Also write the float32 probabilities: <mask>_prob.nii.gz (whole "
                                                 "tumour), _prob_core and _prob_enhancing."),
    save_uncertainty: bool = typer.Option(False, "--save-uncertainty/--no-save-uncertainty",
                                          help="Also write <mask>_uncertainty.nii.gz (per voxel, 0-1, from a second "
                                               "pass on mirrored slices) and a per-case score in the report."),
    save_residual: bool = typer.Option(False, "--save-residual/--no-save-residual",
                                       help="Also write <mask>_residual.nii.gz (z-score units)."),
    save_synth: bool = typer.Option(False, "--save-synth/--no-save-synth",
                                    help="Also write <mask>_synth.nii.gz, the synthetic T1ce (z-score units)."),
    overlay: Optional[Path] = typer.Option(None, help="PNG picture (one patient) or folder of <case>.png (several)."),
    report: Optional[Path] = typer.Option(None, help="Report: .json (volumes, checks, timings, weights, versions, "
                                                     "device) or .csv (one row per patient)."),
    seed: int = SEED,
    batch_size: Optional[int] = BATCH_SIZE,
    bf16: bool = typer.Option(True, "--bf16/--no-bf16", help="bf16 autocast where it is faster than fp32 (a GPU with "
                                                              "bf16, a CPU with AMX)."),
    runtime: RuntimeChoice = typer.Option("auto", help="What runs the networks: onnx (ONNX Runtime, CPU, fp32, "
                                                       "torch never imported), torch, or auto (one patient on a "
                                                       "CPU: onnx where the weights have an ONNX export and bf16 "
                                                       "does not pay; several patients: torch)."),
    labels: Labels = typer.Option("auto", help="Label scheme of the output mask and of ground-truth files: brats2020 "
                                            "(1/2/4), brats2023 (1/2/3), or auto (from the file names)."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Several patients: skip those already done."),
    shard: str = typer.Option("0/1", help="Several patients: process shard i of n (0-based), e.g. for job arrays."),
    prepare: Prepare = typer.Option("auto", help="Exams whose sequences lie on different grids (or with the skull "
                                                 "on): auto co-registers them to the reference (T1ce, else FLAIR, "
                                                 "T2, T1) and writes every output on its grid; full always "
                                                 "prepares; off refuses them."),
    keep_prepared: Optional[Path] = typer.Option(None, help="Keep each prepared exam in DIR/<case>/ (BraTS names)."),
    qc: Optional[Path] = typer.Option(None, help="One patient: quality-control picture of the preparation."),
    tta: bool = typer.Option(False, "--tta/--no-tta", help="Label the mean of the plain and the left-right mirrored "
                                                           "segmenter pass (the segmenter's time doubles)."),
    case_id: Optional[str] = typer.Option(None, "--case-id", help="One patient: its name in the report and "
                                                                  "overlay (default: from the file names)."),
    force: bool = typer.Option(False, "--force", help="Segment even when two sequences look swapped (T1/T1ce, "
                                                    "FLAIR/T2), or a raw exam's sequence looks mirrored or of "
                                                    "another patient; a warning stays in the report."),
    strict: bool = typer.Option(False, "--strict", help="Exit with code 3 when a mask was written with a warning "
                                                      "(flagged for review); 0 only for unflagged masks."),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
    flair: Optional[Path] = FLAIR, t1: Optional[Path] = T1, t1ce: Optional[Path] = T1CE, t2: Optional[Path] = T2,
    seg: Optional[Path] = SEG,
) -> None:
    """Segment the tumour sub-regions: a uint8 BraTS label mask (or binary whole tumour) in the patient's geometry."""
    from recoseg_cli.io.discovery import is_patient_folder, looks_like_one_patient

    shards, scheme = parse_shard(shard), label_scheme(labels)
    if input is not None and not input.is_dir():
        raise InputError(f"{input}: expected a patient folder or a folder of them, got a file" if input.exists()
                         else f"{input}: no such folder")
    from recoseg_cli.commands.cohort import segment_cohort
    from recoseg_cli.commands.segment import SegmentOptions, segment_one
    from recoseg_cli.dicom.study import is_dicom_folder, study_folders

    study = input is not None and is_dicom_folder(input)
    if dicom_seg is not None and not study:
        raise InputError("--dicom-seg needs a DICOM study folder as input")
    one = not study and (input is None or is_patient_folder(input) or looks_like_one_patient(input))
    patient = patient_from_options(input, flair, t1, t1ce, t2, seg, case_id) if one else None

    save = tuple(name for name, on in (("probabilities", save_probabilities),
                                       ("probabilities_core", save_probabilities),
                                       ("probabilities_enhancing", save_probabilities), ("residual", save_residual),
                                       ("synth", save_synth), ("uncertainty", save_uncertainty)) if on)
    options = SegmentOptions(
        weights=weights, model=model, device=device,
        sampler=sampler_config(sampler, steps, 999, 0.0) if sampler else None, seed=seed, batch_size=batch_size,
        threshold=threshold, min_component_ml=min_component, whole_tumour_only=whole_tumour, save=save, overlay=overlay,
        report=report, overwrite=overwrite, skip_existing=skip_existing, shard=shards,
        label_scheme=scheme, quiet=quiet, bf16=bf16, runtime=runtime, force=force, tta=tta, prepare=prepare,
        keep_prepared=keep_prepared, qc=qc)
    studies = study_folders(input) if study else []
    if len(studies) == 1:
        from recoseg_cli.commands.dicom_study import segment_study

        choices = {"flair": flair, "t1": t1, "t1ce": t1ce, "t2": t2}  # series numbers or UIDs here
        report = segment_study(input, output, options, {r: str(v) for r, v in choices.items() if v}, dicom_seg,
                               case_id)
        _exit_if_flagged(strict, [report])
        return
    if dicom_seg is not None and studies:
        raise InputError(f"{input}: a folder of {len(studies)} DICOM studies; --dicom-seg takes one study")
    if patient is not None:
        _exit_if_flagged(strict, [segment_one(patient, output, options)])
        return
    if any((flair, t1, t1ce, t2, seg, case_id)):
        raise InputError("explicit modality paths and --case-id describe one patient; give no cohort folder with them")
    results = segment_cohort(input, output, options, studies or None)
    failed = [r for r in results if r.error]
    skipped = [r for r in results if r.skipped]
    if not quiet:
        kept = f" ({len(skipped)} skipped: their masks exist)" if skipped else ""
        console.print(f"segmented {len(results) - len(failed) - len(skipped)} of {len(results)} patients into "
                      f"{output}{kept}")
    if failed:
        console.print(f"[red]failed:[/red] {', '.join(r.case_id for r in failed)}")
        raise typer.Exit(2)
    _exit_if_flagged(strict, [r.report for r in results if not r.skipped])


FLAGGED_EXIT = 3
"""``segment --strict``: every mask was written, and at least one carries a warning."""


def _exit_if_flagged(strict: bool, reports: list[dict]) -> None:
    flagged = [report["case_id"] for report in reports if report.get("flagged")]
    if strict and flagged:
        error(f"flagged for review (--strict): {', '.join(flagged)}")
        raise typer.Exit(FLAGGED_EXIT)


@app.command()
def prepare(
    input: Optional[Path] = typer.Argument(None, help="Exam folder: the four sequences on any grids, skull on or "
                                                      "off."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write the prepared exam into."),
    qc: Optional[Path] = typer.Option(None, help="Quality-control picture (PNG, JPEG, PDF or SVG)."),
    device: str = DEVICE,
    bf16: bool = typer.Option(True, "--bf16/--no-bf16", help="bf16 autocast in brain extraction where it "
                                                              "is faster than fp32 (a GPU with bf16, a CPU with AMX)."),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
    flair: Optional[Path] = FLAIR, t1: Optional[Path] = T1, t1ce: Optional[Path] = T1CE, t2: Optional[Path] = T2,
) -> None:
    """Co-register an exam to its reference (T1ce, else FLAIR, T2, T1), resample it to 1 mm and remove the skull
    (HD-BET, recoseg[raw]): BraTS-named images, brain mask and transforms."""
    found = patient_from_options(input, flair, t1, t1ce, t2, None)
    from recoseg_cli.commands.prepare import run_prepare

    run_prepare(found, output, qc, overwrite, quiet, device, bf16)


for name, command in COMMANDS.items():
    app.command(name)(command)

COMMAND_ORDER = ("segment", "prepare", "synthesize", "residual", "train", "crossval", "benchmark", "preprocess",
                 "make-cohort", "make-dicom", "export-onnx")
app.registered_commands.sort(key=lambda command: COMMAND_ORDER.index(command.name or command.callback.__name__))

USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
"""Typer's base of option and usage errors (click's ClickException, vendored in recent Typer)."""


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: Optional[list[str]] = None) -> None:
    """The commands: bad input or options become one line on stderr and exit code 2; SIGTERM (a cluster's
    time limit) ends a command as Ctrl-C does, with exit code 130."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = app(args=argv, prog_name="recoseg", standalone_mode=False)
    except RecosegError as exc:
        error(str(exc))
        sys.exit(2)
    except USAGE_ERROR as exc:
        command = f"{exc.ctx.command_path} --help" if getattr(exc, "ctx", None) else "recoseg --help"
        error(f"{exc.format_message()} (see {command})")
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        code = 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code == 130:
        error("interrupted")
    if isinstance(code, int) and code:
        sys.exit(code)


def console_main() -> None:
    """The `recoseg` program and `python -m recoseg_cli`: ``main`` in a process of its own. glibc keeps freed
    network activations for reuse and large arrays take ordinary pages (``allocator``), and once every output is
    closed the process ends without Python's teardown of torch's modules (0.6-0.9 s of a `segment` run on a 2-core
    CPU)."""
    keep_freed_memory()
    small_pages_for_arrays()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
