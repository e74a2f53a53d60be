"""Commands that build and evaluate models: preprocess, make-cohort, train, crossval and benchmark."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Literal, Optional

import typer

from recoseg_cli.cli_options import (BATCH_DICE, DEEP_SUPERVISION, DEVICE, QUIET, Labels, Model, RuntimeChoice,
                                     Sampler, label_scheme, parse_shape, parse_source_weights, parse_widths,
                                     sampler_config)
from recoseg_cli.console import console, progress_bar
from recoseg_cli.errors import InputError


def preprocess(
    cohort: Path = typer.Argument(..., help="Cohort folder; patient folders may sit up to three levels down."),
    output: Path = typer.Option(..., "-o", "--output", help="Cache folder to write."),
    size: int = typer.Option(120, help="Side S of the S x S axial slices."),
    crop: bool = typer.Option(True, "--crop/--no-crop", help="Crop to the brain before resizing."),
    labels: Labels = typer.Option("auto", help="Label scheme: auto (from file names), brats2020 or brats2023."),
    workers: int = typer.Option(1, min=1, help="Parallel worker processes."),
    val_fraction: float = typer.Option(0.2, min=0.0, max=0.9, help="Fraction of subjects held out for validation."),
    seed: int = typer.Option(0, help="Seed of the train/validation split."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Rebuild a cache made with another configuration."),
    quiet: bool = QUIET,
) -> None:
    """Build a training cache of normalized slices; resumes where an interrupted run stopped."""
    from recoseg_cli.data.build_cache import build_cache
    from recoseg_cli.preprocess import PreprocessConfig

    config = PreprocessConfig(size=size, crop=crop)
    with progress_bar(quiet) as progress:
        task = progress.add_task("preprocess", total=None, info="")
        summary = build_cache(
            cohort, output, config, label_scheme(labels), workers, val_fraction, seed, overwrite,
            on_start=lambda n: progress.update(task, total=n),
            on_subject=lambda case: progress.update(task, advance=1, info=case),
        )
    if not quiet:
        console.print(
            f"[bold]cache[/bold] {output}\n"
            f"subjects {summary.subjects} ({summary.skipped} already cached, {summary.val_subjects} validation)\n"
            f"slices {summary.slices} ({summary.tumour_slices} with tumour) at {size}x{size}\n"
            f"size {summary.bytes / 2**20:.1f} MiB, time {summary.seconds:.1f} s"
        )


def make_cohort(
    output: Path = typer.Argument(..., help="Folder to write patients into (BraTS2020 layout)."),
    count: int = typer.Option(20, "-n", "--count", min=1, help="Number of patients."),
    seed: int = typer.Option(0, help="Seed of the first patient; patient i uses seed + i."),
    shape: str = typer.Option("240x240x155", help="Grid shape XxYxZ; the field of view stays 240x240x155 mm."),
    noise_draw: int = typer.Option(0, help="Redraw only the acquisition noise (for a noise ceiling)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing patient folders."),
    quiet: bool = QUIET,
) -> None:
    """Write a synthetic cohort on MNI152 anatomy with gliomas (research and testing data)."""
    from recoseg_cli.data.synthetic import SyntheticConfig, write_cohort

    config = SyntheticConfig(shape=parse_shape(shape))
    prefix = "Synth" if noise_draw == 0 else f"Synth_noise{noise_draw}"
    existing = [output / f"{prefix}_{seed + i:05d}" for i in range(count) if (output / f"{prefix}_{seed + i:05d}").exists()]
    if existing and not overwrite:
        raise InputError(f"{existing[0]}: already exists; use --overwrite to replace it")
    output.mkdir(parents=True, exist_ok=True)
    with progress_bar(quiet) as progress:
        task = progress.add_task("make-cohort", total=count, info="")
        write_cohort(output, count, seed, config, prefix=prefix, noise_draw=noise_draw,
                     on_patient=lambda case: progress.update(task, advance=1, info=case))
    if not quiet:
        console.print(f"wrote {count} synthetic patients ({prefix}_{seed:05d} to {prefix}_{seed + count - 1:05d}) "
                      f"into {output}", soft_wrap=True)


def make_dicom(
    patient: Path = typer.Argument(..., help="A patient folder of NIfTI sequences (any set holding FLAIR or T2)."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write the DICOM study into (new or empty)."),
    patient_id: str = typer.Option("RECOSEG-TEST-01", "--patient-id", help="PatientID of the study."),
    quiet: bool = QUIET,
) -> None:
    """Write a patient's NIfTI sequences as one DICOM MR study (a series per sequence and a localizer), e.g. to
    test a PACS pipeline; `recoseg segment STUDY` reads it back."""
    from recoseg_cli.data.dicom_study import StudyIds, write_study
    from recoseg_cli.io.discovery import discover_patient

    found = discover_patient(patient)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise InputError(f"{output}: exists and is not an empty folder")
    write_study(found.images, output, StudyIds(patient_id=patient_id))
    if not quiet:
        console.print(f"wrote {', '.join(m.upper() for m in found.images)} of {found.case_id} as a DICOM study "
                      f"into {output}", soft_wrap=True)


def export_onnx(
    weights: Path = typer.Argument(..., help="A segmenter weights file (.pt) whose stage 1 is the L1 regressor."),
    quiet: bool = QUIET,
) -> None:
    """Export weights to ONNX beside them (NAME.onnx, NAME.stage1.onnx), so `segment --weights NAME.pt` runs them
    with ONNX Runtime on a CPU, without torch."""
    from recoseg_cli.onnx_networks import export_onnx as export

    written = export(weights)
    if not quiet:
        console.print(f"wrote {', '.join(str(p) for p in written)}", soft_wrap=True)


def benchmark(
    out: Optional[Path] = typer.Option(None, "-o", "--output", "--out",
                                       help="Folder for results.json/.csv/.md and the PNG plots."),
    data: Optional[Path] = typer.Option(None, "--data", help="Cohort to study (e.g. BraTS2020/); default: a "
                                                              "synthetic cohort generated for the run."),
    folds: Optional[int] = typer.Option(None, min=2, help="Cross-validate by patient in this many folds (every "
                                                          "patient scored once) [default: one split]."),
    quick: bool = typer.Option(False, "--quick", help="Tiny budgets, at most 6 patients of --data: a smoke test "
                                                      "(a few minutes on 2 CPU cores)."),
    speed_only: bool = typer.Option(False, "--speed-only", help="Only the speed study (bundled weights)."),
    full_samplers: bool = typer.Option(False, "--full-samplers",
                                       help="Run every sampler setting on whole patients (for GPU users)."),
    device: str = DEVICE,
    seed: int = typer.Option(0, help="First training seed."),
    repeats: int = typer.Option(1, min=1, help="Train and evaluate everything with this many seeds."),
    train_patients: Optional[int] = typer.Option(None, min=2, help="Synthetic cohort: training patients "
                                                                   "[default: 16; --quick: 4]."),
    test_patients: Optional[int] = typer.Option(None, min=1, help="Synthetic cohort: test patients "
                                                                  "[default: 6; --quick: 2]."),
    size: Optional[int] = typer.Option(None, min=16, help="Slice side S [default: 64; --quick: 32]."),
    stage_one_steps: Optional[int] = typer.Option(None, min=1, help="Steps of each stage-1 model "
                                                                    "[default: 400; --quick: 10]."),
    seg_steps: Optional[int] = typer.Option(None, min=1, help="Steps of each segmenter [default: 300; --quick: 10]."),
    batch_size: Optional[int] = typer.Option(None, min=1, help="Slices per step [default: 16; --quick: 4]."),
    bf16: bool = typer.Option(True, "--bf16/--no-bf16", help="Speed study precision: bf16 autocast where it pays "
                                                           "(a GPU with bf16, a CPU with AMX), or fp32 throughout."),
    model: Optional[Model] = typer.Option(None, help="Speed study: the bundled model to time [default: the "
                                                     "default model]."),
    runtime: RuntimeChoice = typer.Option("auto", help="Speed study: what runs the timed segment's networks "
                                                       "(segment --runtime)."),
    quiet: bool = QUIET,
) -> None:
    """Compare ReCoSeg with UNet2D, UNet3D, DDMM-Synth and ablations on equal terms, and time it."""
    from recoseg_cli.commands.benchmark import make_plan, run_benchmark

    overrides = dict(folds=folds, train_patients=train_patients, test_patients=test_patients, size=size,
                     stage_one_steps=stage_one_steps, seg_steps=seg_steps, batch_size=batch_size)
    given = {"--data": data, "--device": None if device == "auto" else device, "--seed": seed or None,
             "--repeats": None if repeats == 1 else repeats,
             **{f"--{k.replace('_', '-')}": v for k, v in overrides.items()}}
    flags = [flag for flag, on in (("--quick", quick), ("--speed-only", speed_only), ("--full-samplers", full_samplers),
                                   ("--no-bf16", not bf16), (f"--model {model}", model),
                                   (f"--runtime {runtime}", runtime != "auto")) if on]
    command = " ".join(["recoseg benchmark", *flags, *(f"{k} {v}" for k, v in given.items() if v is not None)])
    plan = replace(make_plan(quick, seed, repeats, full_samplers, overrides), bf16=bf16, model=model, runtime=runtime)
    run_benchmark(plan, out, data, device, speed_only, quiet, command)


def crossval(
    data: Path = typer.Option(..., "--data", help="Labelled cohort folder (e.g. BraTS cases with seg files)."),
    output: Path = typer.Option(..., "-o", "--output", help="Run folder: cache, per-fold weights, results.json/.md."),
    folds: int = typer.Option(5, min=2, help="Folds; patients are split by a seeded permutation, stratified by the "
                                             "institution in BraTS 2018 case ids."),
    ddpm_steps: int = typer.Option(1000, min=1, help="DDPM optimizer steps per fold."),
    ddpm_widths: str = typer.Option("16,32,64,96", help="DDPM (and L1 regressor) U-Net channel widths per level."),
    seg_steps: int = typer.Option(800, min=1, help="Segmenter optimizer steps per fold and variant."),
    seg_widths: str = typer.Option("16,32,64,96", help="Segmenter U-Net channel widths per level."),
    ddpm_lr: float = typer.Option(2e-4, help="DDPM peak learning rate."),
    seg_lr: float = typer.Option(1e-3, help="Segmenter peak learning rate."),
    batch_size: int = typer.Option(16, min=1, help="Slices per step."),
    size: int = typer.Option(120, min=16, help="Slice side S."),
    variants: str = typer.Option("recoseg,modalities", help="Segmenters per fold: recoseg (modalities + residual), "
                                                             "modalities (the four modalities only), "
                                                             "any-subset (recoseg told which sequences are present, "
                                                             "trained on every set holding FLAIR or T2), flair+t1ce "
                                                             "and flair+t1+t2 (specialists reading those "
                                                             "sequences only), ddmm-synth (FLAIR, T1, T2 and the "
                                                             "synthetic T1ce: the paper's DDMM-Synth)."),
    batch_dice: bool = BATCH_DICE,
    deep_supervision: bool = DEEP_SUPERVISION,
    source_weight: list[str] = typer.Option([], "--source-weight", help="Segmenter: sampling weight of an "
                                                                        "institution's cases, e.g. TCIA=0.5 "
                                                                        "(repeatable; others 1)."),
    foreground_region: str = typer.Option("whole", "--foreground-region",
                                          help="Segmenter: half of each batch comes from slices holding this "
                                               "region: whole (any tumour) or core (over-samples TC/ET slices)."),
    l1_reference: bool = typer.Option(True, "--l1-reference/--no-l1-reference",
                                      help="Train and score both stage-1 models (DDPM and L1 regressor) in every "
                                           "fold; off, only the one --residual-from names."),
    residual_from: str = typer.Option("ddpm", "--residual-from",
                                      help="Stage-1 model whose synthetic T1ce makes the segmenters' residual: "
                                           "ddpm or regressor (the L1 regressor, then trained in every fold)."),
    seed: int = typer.Option(0, help="Seed of the folds and of training."),
    only_fold: Optional[int] = typer.Option(None, min=0, help="Train and score this fold only (to run folds side "
                                                             "by side); a run without it writes the summary."),
    device: str = DEVICE,
    bf16: bool = typer.Option(True, "--bf16/--no-bf16", help="bf16 autocast where it is faster than fp32 "
                                                              "(a GPU with bf16, a CPU with AMX)."),
    quick: bool = typer.Option(False, "--quick", help="A smoke run of every code path in minutes, not a measurement: "
                                                      "2 folds over the first 6 cases, 5 steps per model, 32 x 32 "
                                                      "slices, networks 8/16, the recoseg variant."),
    quiet: bool = QUIET,
) -> None:
    """Patient-level cross-validation: per fold, train both stages and score the held-out patients."""
    from recoseg_cli.crossval import VARIANTS, CrossValConfig, results_markdown, run_crossval
    from recoseg_cli.training.run import Callbacks

    chosen = tuple(v.strip() for v in variants.split(",") if v.strip())
    if not chosen or any(v not in VARIANTS for v in chosen):
        raise InputError(f"--variants: choose from {', '.join(VARIANTS)}, not {variants!r}")
    if foreground_region not in ("whole", "core"):
        raise InputError(f"--foreground-region: choose whole or core, not {foreground_region!r}")
    if residual_from not in ("ddpm", "regressor"):
        raise InputError(f"--residual-from: choose ddpm or regressor, not {residual_from!r}")
    config = CrossValConfig(folds=folds, seed=seed, ddpm_steps=ddpm_steps, ddpm_widths=parse_widths(ddpm_widths),
                            seg_steps=seg_steps, seg_widths=parse_widths(seg_widths), ddpm_lr=ddpm_lr, seg_lr=seg_lr,
                            batch_size=batch_size, bf16=bf16, variants=chosen, size=size, batch_dice=batch_dice,
                            deep_supervision=deep_supervision, l1_reference=l1_reference, source_weights=parse_source_weights(source_weight),
                            foreground_region=foreground_region, residual_from=residual_from)
    if quick:
        config = replace(config, folds=2, ddpm_steps=5, seg_steps=5, ddpm_widths=(8, 16), seg_widths=(8, 16),
                         batch_size=4, size=32, variants=("recoseg",), max_cases=QUICK_CASES)
    start = time.perf_counter()
    with progress_bar(quiet) as progress:
        task = progress.add_task("cross-validation", total=None, info="")

        def log(message: str) -> None:
            """A timestamped line per stage and case, so that a log file shows progress too."""
            if not quiet:
                progress.console.print(f"[dim]{time.perf_counter() - start:6.0f} s[/dim]  {message}", soft_wrap=True)

        def on_start(name: str, total: int) -> None:
            progress.reset(task, total=total, description=f"train {name}")
            log(f"{name}: {total} {'cases' if name == 'synthesis' else 'steps'}")

        callbacks = Callbacks(on_start, lambda number, loss: progress.update(task, completed=number))
        results = run_crossval(data, output, config, device, callbacks, on_progress=log, only_fold=only_fold)
    if not quiet:
        typer.echo(results_markdown(results) if results else f"fold {only_fold} done in {output}")


QUICK_CASES = 6
"""Cases a ``crossval --quick`` smoke run uses (the first by case id)."""


def _best_validation(score: float, folder: Path) -> str:
    """The best validation score in words: segmenters score 1 - Dice, stage-1 models a mean absolute error."""
    history = json.loads((folder / "history.json").read_text())["history"]
    if any("ema_dice" in entry or "raw_dice" in entry for entry in history):
        return f"Dice {1.0 - score:.4f} (higher is better)"
    return f"healthy-brain mean absolute error {score:.4f} (lower is better)"


def train(
    data: Path = typer.Option(..., "--data", help="Cohort folder, or a cache written by `recoseg preprocess`."),
    output: Path = typer.Option(..., "-o", "--output", help="Run folder for checkpoints, weights and history."),
    stage: Literal["ddpm", "seg", "all", "regressor"] = typer.Option("ddpm", help="ddpm (stage 1), seg (stage 2), all (both, in RUN/ddpm and RUN/seg), "
                                           "or regressor (deterministic L1 baseline of stage 1)."),
    max_steps: int = typer.Option(2000, help="Optimizer steps per stage (ignored when --epochs is given)."),
    epochs: Optional[float] = typer.Option(None, help="Passes over the training slices; overrides --max-steps."),
    max_minutes: float = typer.Option(0.0, help="Stop a stage after this many minutes (0: no limit)."),
    batch_size: int = typer.Option(16, min=1, help="Slices per step (per process under torchrun)."),
    lr: float = typer.Option(2e-4, help="Peak learning rate (AdamW, warm-up then cosine)."),
    seed: int = typer.Option(0, help="Seed of initialisation, sampling, noise, splits and the labelled subset."),
    device: str = DEVICE,
    bf16: bool = typer.Option(True, "--bf16/--no-bf16", help="bf16 autocast where it is faster than fp32 "
                                                              "(a GPU with bf16, a CPU with AMX)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run folder's checkpoint."),
    init_weights: Optional[Path] = typer.Option(None, help="Start from these weights (same stage and network): "
                                                           "fine-tuning with a fresh optimizer and schedule."),
    size: int = typer.Option(120, help="Slice side S when DATA is a raw cohort."),
    workers: int = typer.Option(1, min=1, help="Preprocessing workers when DATA is a raw cohort."),
    val_fraction: float = typer.Option(0.2, min=0.0, max=0.9, help="Validation subjects when DATA is a raw cohort."),
    val_every: int = typer.Option(200, min=1, help="Validate every N steps."),
    widths: str = typer.Option("16,32,64,96", help="DDPM (or regressor) U-Net channel widths per level."),
    prediction: Literal["v", "epsilon"] = typer.Option("v", help="DDPM target."),
    schedule: Literal["linear", "cosine"] = typer.Option("linear", help="DDPM noise schedule."),
    x0_bce_dice: float = typer.Option(0.0, help="Weight of the paper's BCE + Dice term on the predicted clean T1ce."),
    x0_l1: float = typer.Option(0.0, min=0.0, help="DDPM: weight of an L1 term on the predicted clean T1ce."),
    last_step_fraction: float = typer.Option(0.5, min=0.0, max=1.0,
                                             help="DDPM: fraction of each batch trained at the last timestep, "
                                                  "where the default one-step sampler reads the clean image."),
    mask_tumour: bool = typer.Option(False, "--mask-tumour/--no-mask-tumour",
                                     help="Leave labelled tumour voxels out of the DDPM loss (healthy-tissue model)."),
    ddpm_weights: Optional[Path] = typer.Option(None, help="Stage seg: DDPM (or L1 regressor) weights that make the "
                                                                  "residuals."),
    label_fraction: float = typer.Option(1.0, min=0.01, max=1.0, help="Stage seg: fraction of labelled subjects used."),
    seg_widths: str = typer.Option("16,32,64,96", help="Segmenter U-Net channel widths per level."),
    channels: str = typer.Option(",".join(("flair", "t1", "t1ce", "t2", "residual")),
                                 help="Segmenter inputs: flair, t1, t1ce, t2, residual, synth, subtraction, "
                                      "has_flair, has_t1, has_t1ce, has_t2 (which sequences are present)."),
    targets: str = typer.Option("whole,core,enhancing",
                                help="Stage seg: tumour regions, one output each: whole, core, enhancing."),
    batch_dice: bool = BATCH_DICE,
    deep_supervision: bool = DEEP_SUPERVISION,
    augment: bool = typer.Option(True, "--augment/--no-augment",
                                 help="Random rotation, zoom (both stages), intensity, bias field and noise (seg)."),
    sequence_dropout: float = typer.Option(0.15, min=0.0, max=1.0,
                                           help="Stage seg: fraction of slices trained with sequences missing "
                                                "(any set holding FLAIR or T2 when the channels include has_flair, "
                                                "has_t1, has_t1ce, has_t2; else T1ce, synthesized)."),
    sampler: Sampler = typer.Option("onestep", help="Sampler that makes the training residuals."),
    steps: int = typer.Option(1, min=1, help="Sampler network calls per slice."),
    quiet: bool = QUIET,
) -> None:
    """Train a stage; `torchrun --nproc_per_node=K -m recoseg_cli train ...` runs it data-parallel."""
    from recoseg_cli.diffusion.losses import DiffusionLossConfig
    from recoseg_cli.preprocess import PreprocessConfig
    from recoseg_cli.training.augment import AugmentConfig
    from recoseg_cli.training.ddpm_task import DDPMStageConfig, ddpm_unet
    from recoseg_cli.training.distributed import exit_worker
    from recoseg_cli.training.loop import TrainConfig
    from recoseg_cli.training.regressor_task import regressor_stage
    from recoseg_cli.training.run import Callbacks, train_stages
    from recoseg_cli.training.seg_task import segmenter_stage

    if init_weights is not None and stage == "all":
        raise InputError("--init-weights starts one stage; give --stage ddpm, seg or regressor")
    train_config = TrainConfig(max_steps=max_steps, batch_size=batch_size, lr=lr, seed=seed, bf16=bf16,
                               max_minutes=max_minutes, val_every=val_every, checkpoint_every=min(100, val_every))
    preprocess_config = PreprocessConfig(size=size)
    channel_list = tuple(c.strip() for c in channels.split(",") if c.strip())
    ddpm_stage = DDPMStageConfig(
        unet=ddpm_unet(parse_widths(widths)), schedule=schedule,
        loss=DiffusionLossConfig(prediction, x0_bce_dice, last_step_fraction, x0_l1), mask_tumour=mask_tumour)
    if not augment:
        ddpm_stage = replace(ddpm_stage, augment=None)
    target_list = tuple(t.strip() for t in targets.split(",") if t.strip())
    seg_stage = segmenter_stage(channel_list, target_list, parse_widths(seg_widths), deep_supervision,
                                sequence_dropout=sequence_dropout, label_fraction=label_fraction,
                                augment=AugmentConfig() if augment else None, batch_dice=batch_dice)
    regressor_config = regressor_stage(ddpm_stage.unet)
    _check_channels(channel_list)
    _check_targets(target_list)
    residual_sampler = sampler_config(sampler, steps, 999, 0.0)
    with progress_bar(quiet) as progress:
        clock = _StepClock()
        task = progress.add_task("train", total=None, info="")

        def start(name: str, total: int) -> None:
            clock.reset()
            progress.reset(task, total=total, description=f"train {name}" if name != "synthesis" else "synthesis")

        def step(number: int, loss: float) -> None:
            info = f"loss {loss:.4f}  {clock.rate(number):.2f} it/s" if loss == loss else ""
            progress.update(task, completed=number, info=info)

        callbacks = Callbacks(start, step, lambda entry: quiet or progress.console.print(_validation_line(entry)))
        common = dict(device=device, resume=resume, epochs=epochs, workers=workers, val_fraction=val_fraction,
                      callbacks=callbacks, init_weights=init_weights)
        results = train_stages(stage, data, output, train_config, preprocess_config, ddpm_stage, seg_stage,
                               regressor_config, ddpm_weights, residual_sampler, **common)
    if not quiet:
        validated = _has_validation_split(data, output)
        for folder, result in results:
            if validated:
                console.print(f"trained {result.steps} steps in {result.seconds / 60:.1f} min; best validation "
                              f"{_best_validation(result.best_score, folder)} at step {result.best_step}; weights in "
                              f"{folder / 'best.pt'}")
            else:
                console.print(f"trained {result.steps} steps in {result.seconds / 60:.1f} min; no validation split "
                              f"(the loop monitored a training case, so no validation score); final weights in "
                              f"{folder / 'last.pt'}")
    exit_worker()


def _has_validation_split(data: Path, output: Path) -> bool:
    """Whether the training cache (DATA itself, or the one built in OUTPUT) holds validation subjects."""
    from recoseg_cli.data.cache import MANIFEST

    cache = data if (data / MANIFEST).is_file() else output / "cache"
    return any(s["split"] == "val" for s in json.loads((cache / MANIFEST).read_text())["subjects"])


def _check_channels(channels: tuple[str, ...]) -> None:
    from recoseg_cli.pipeline import CHANNELS

    unknown = [c for c in channels if c not in CHANNELS]
    if unknown or not channels:
        raise InputError(f"--channels: unknown {unknown}; choose from {', '.join(CHANNELS)}")


def _check_targets(targets: tuple[str, ...]) -> None:
    from recoseg_cli.regions import REGIONS

    if not targets or any(t not in REGIONS for t in targets) or len(set(targets)) != len(targets):
        raise InputError(f"--targets: give distinct regions from {', '.join(REGIONS)}, not {','.join(targets)!r}")


def _validation_line(entry: dict) -> str:
    scores = "  ".join(f"{k} {v:.4f}" for k, v in entry.items() if k != "step")
    return f"step {entry['step']}: {scores}"


class _StepClock:
    """Steps per second since the first step seen."""

    def __init__(self) -> None:
        self.first: tuple[int, float] | None = None

    def reset(self) -> None:
        self.first = None

    def rate(self, step: int) -> float:
        now = time.perf_counter()
        if self.first is None:
            self.first = (step, now)
            return 0.0
        return (step - self.first[0]) / max(now - self.first[1], 1e-9)


COMMANDS = {"preprocess": preprocess, "make-cohort": make_cohort, "make-dicom": make_dicom, "export-onnx": export_onnx,
            "train": train, "crossval": crossval, "benchmark": benchmark}
