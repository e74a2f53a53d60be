"""Command-line interface: one small function per subcommand, no logic beyond options and calls."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from recoseg_cli import __version__
from recoseg_cli.console import console, progress_bar
from recoseg_cli.errors import InputError, RecosegError

app = typer.Typer(name="recoseg", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Brain tumour segmentation with residual-guided cross-modal diffusion (ReCoSeg).")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"recoseg {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Segment brain tumours in MRI patient folders (FLAIR, T1, T1ce, T2)."""


def _label_scheme(labels: str) -> Optional[str]:
    if labels not in ("auto", "brats2020", "brats2023"):
        raise InputError(f"--labels must be auto, brats2020 or brats2023, not {labels!r}")
    return None if labels == "auto" else labels


@app.command()
def preprocess(
    cohort: Path = typer.Argument(..., help="Cohort folder; patient folders may sit up to three levels down."),
    output: Path = typer.Option(..., "-o", "--output", help="Cache folder to write."),
    size: int = typer.Option(120, help="Side S of the S x S axial slices."),
    crop: bool = typer.Option(True, "--crop/--no-crop", help="Crop to the brain before resizing."),
    labels: str = typer.Option("auto", help="Label scheme: auto (from file names), brats2020 or brats2023."),
    workers: int = typer.Option(1, min=1, help="Parallel worker processes."),
    val_fraction: float = typer.Option(0.2, min=0.0, max=0.9, help="Fraction of subjects held out for validation."),
    seed: int = typer.Option(0, help="Seed of the train/validation split."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Rebuild a cache made with another configuration."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display or summary."),
) -> None:
    """Build a training cache of normalized slices; resumes where an interrupted run stopped."""
    from recoseg_cli.data.build_cache import build_cache
    from recoseg_cli.preprocess import PreprocessConfig

    config = PreprocessConfig(size=size, crop=crop)
    with progress_bar(quiet) as progress:
        task = progress.add_task("preprocess", total=None, info="")
        summary = build_cache(
            cohort, output, config, _label_scheme(labels), workers, val_fraction, seed, overwrite,
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


@app.command("make-cohort")
def make_cohort(
    output: Path = typer.Argument(..., help="Folder to write patients into (BraTS2020 layout)."),
    count: int = typer.Option(20, "-n", "--count", min=1, help="Number of patients."),
    seed: int = typer.Option(0, help="Seed of the first patient; patient i uses seed + i."),
    shape: str = typer.Option("240x240x155", help="Grid shape XxYxZ; the field of view stays 240x240x155 mm."),
    noise_draw: int = typer.Option(0, help="Redraw only the acquisition noise (for a noise ceiling)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing patient folders."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Write a synthetic cohort on MNI152 anatomy with gliomas (research and testing data)."""
    from recoseg_cli.data.synthetic import SyntheticConfig, write_cohort

    config = SyntheticConfig(shape=_parse_shape(shape))
    prefix = "Synth" if noise_draw == 0 else f"Synth_noise{noise_draw}"
    existing = [output / f"{prefix}_{seed + i:05d}" for i in range(count) if (output / f"{prefix}_{seed + i:05d}").exists()]
    if existing and not overwrite:
        raise InputError(f"{existing[0]}: already exists; use --overwrite to replace it")
    output.mkdir(parents=True, exist_ok=True)
    with progress_bar(quiet) as progress:
        task = progress.add_task("make-cohort", total=count, info="")
        write_cohort(output, count, seed, config, prefix=prefix, noise_draw=noise_draw,
                     on_patient=lambda case: progress.update(task, advance=1, info=case))


def _patient(folder: Optional[Path], flair: Optional[Path], t1: Optional[Path], t1ce: Optional[Path],
             t2: Optional[Path], seg: Optional[Path]):
    """A patient from a folder, or from explicit per-modality paths."""
    from recoseg_cli.io.discovery import discover_patient, patient_from_paths

    explicit = {"flair": flair, "t1": t1, "t1ce": t1ce, "t2": t2, "seg": seg}
    if folder is not None and any(explicit.values()):
        raise InputError("give a patient folder or explicit --flair/--t1/--t1ce/--t2 paths, not both")
    if folder is None:
        if not any(explicit.values()):
            raise InputError("give a patient folder or explicit --flair/--t1/--t1ce/--t2 paths")
        return patient_from_paths(explicit)
    return discover_patient(folder)


FLAIR = typer.Option(None, "--flair", help="Explicit FLAIR path (instead of a patient folder).")
T1 = typer.Option(None, "--t1", help="Explicit T1 path.")
T1CE = typer.Option(None, "--t1ce", help="Explicit T1ce path (optional).")
T2 = typer.Option(None, "--t2", help="Explicit T2 path.")
SEG = typer.Option(None, "--seg", help="Explicit segmentation path (optional, for metrics).")


@app.command()
def synthesize(
    patient: Optional[Path] = typer.Argument(None, help="Patient folder (BraTS2020, BraTS2023 or nnU-Net names)."),
    output: Path = typer.Option(..., "-o", "--output", help="Synthetic T1ce NIfTI to write (float32, z-score units)."),
    weights: Optional[Path] = typer.Option(None, help="DDPM or segmenter weights; default: bundled (or $RECOSEG_WEIGHTS)."),
    sampler: str = typer.Option("onestep", help="onestep, ddim or ddpm."),
    steps: int = typer.Option(1, min=1, help="Network calls per slice (DDIM/DDPM steps, or one-step draws averaged)."),
    start_step: int = typer.Option(999, help="One-step sampler: timestep the real T1ce (if any) is noised to."),
    eta: float = typer.Option(0.0, help="DDIM stochasticity."),
    seed: int = typer.Option(0, help="Seed of the sampling noise."),
    device: str = typer.Option("auto", help="auto, cpu or cuda[:i]."),
    batch_size: int = typer.Option(32, min=1, help="Slices per network call; lower it if memory runs out."),
    report: Optional[Path] = typer.Option(None, help="Write PSNR/SSIM (when T1ce exists) and timings as JSON."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    flair: Optional[Path] = FLAIR, t1: Optional[Path] = T1, t1ce: Optional[Path] = T1CE, t2: Optional[Path] = T2,
    seg: Optional[Path] = SEG,
) -> None:
    """Synthesize T1ce from FLAIR, T1 and T2 with the conditional DDPM, in the patient's own geometry."""
    from recoseg_cli.commands.synthesize import run_synthesize

    run_synthesize(_patient(patient, flair, t1, t1ce, t2, seg), output, weights, _sampler(sampler, steps, start_step, eta),
                   seed, device, batch_size, report, overwrite, quiet)


def _sampler(name: str, steps: int, start_step: int, eta: float):
    from recoseg_cli.diffusion.samplers import SAMPLERS, SamplerConfig

    if name not in SAMPLERS:
        raise InputError(f"--sampler must be one of {', '.join(SAMPLERS)}, not {name!r}")
    if not 0 <= start_step <= 999 or steps > 1000:
        raise InputError("--start-step must be in 0..999 and --steps at most 1000")
    return SamplerConfig(name, steps, eta, start_step)


def _parse_widths(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 4:
        raise InputError(f"--widths must look like 32,64,96,128, not {text!r}")
    return values


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="Cohort folder, or a cache written by `recoseg preprocess`."),
    output: Path = typer.Option(..., "-o", "--output", help="Run folder for checkpoints, weights and history."),
    stage: str = typer.Option("ddpm", help="ddpm (stage 1)."),
    max_steps: int = typer.Option(2000, help="Optimizer steps (ignored when --epochs is given)."),
    epochs: Optional[float] = typer.Option(None, help="Passes over the training slices; overrides --max-steps."),
    max_minutes: float = typer.Option(0.0, help="Stop after this many minutes (0: no limit)."),
    batch_size: int = typer.Option(16, min=1, help="Slices per step (per process under torchrun)."),
    lr: float = typer.Option(2e-4, help="Peak learning rate (AdamW, warm-up then cosine)."),
    seed: int = typer.Option(0, help="Seed of sampling, noise and the validation split."),
    device: str = typer.Option("auto", help="auto, cpu or cuda[:i]."),
    bf16: bool = typer.Option(True, "--bf16/--no-bf16", help="bf16 autocast where the hardware supports it."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run folder's checkpoint."),
    widths: str = typer.Option("32,64,96,128", help="U-Net channel widths per level."),
    size: int = typer.Option(120, help="Slice side S when DATA is a raw cohort."),
    workers: int = typer.Option(1, min=1, help="Preprocessing workers when DATA is a raw cohort."),
    val_fraction: float = typer.Option(0.2, min=0.0, max=0.9, help="Validation subjects when DATA is a raw cohort."),
    prediction: str = typer.Option("v", help="DDPM target: v or epsilon."),
    schedule: str = typer.Option("linear", help="Noise schedule: linear or cosine."),
    x0_bce_dice: float = typer.Option(0.0, help="Weight of the paper's BCE + Dice term on the predicted clean T1ce."),
    mask_tumour: bool = typer.Option(False, "--mask-tumour/--no-mask-tumour",
                                     help="Leave labelled tumour voxels out of the DDPM loss (healthy-tissue model)."),
    val_every: int = typer.Option(200, min=1, help="Validate every N steps."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Train a stage; `torchrun --nproc_per_node=K -m recoseg_cli train ...` runs it data-parallel."""
    from recoseg_cli.diffusion.losses import DiffusionLossConfig
    from recoseg_cli.models.unet import UNetConfig
    from recoseg_cli.preprocess import PreprocessConfig
    from recoseg_cli.training.ddpm_task import DDPMStageConfig
    from recoseg_cli.training.loop import TrainConfig
    from recoseg_cli.training.run import train_ddpm

    if stage != "ddpm":
        raise InputError(f"--stage must be ddpm, not {stage!r}")
    if prediction not in ("v", "epsilon") or schedule not in ("linear", "cosine"):
        raise InputError("--prediction must be v or epsilon and --schedule linear or cosine")
    train_config = TrainConfig(max_steps=max_steps, batch_size=batch_size, lr=lr, seed=seed, bf16=bf16,
                               max_minutes=max_minutes, val_every=val_every, checkpoint_every=min(100, val_every))
    stage_config = DDPMStageConfig(
        unet=UNetConfig(in_channels=4, out_channels=1, widths=_parse_widths(widths), time_embedding=True),
        schedule=schedule, loss=DiffusionLossConfig(prediction, x0_bce_dice), mask_tumour=mask_tumour)
    with progress_bar(quiet) as progress:
        task = progress.add_task(f"train {stage}", total=None, info="")
        clock = _StepClock()
        result = train_ddpm(data, output, stage_config, train_config, PreprocessConfig(size=size), device, resume,
                            epochs, workers, val_fraction,
                            on_start=lambda n: progress.update(task, total=n),
                            on_step=lambda step, loss: progress.update(
                                task, completed=step, info=f"loss {loss:.4f}  {clock.rate(step):.2f} it/s"),
                            on_validate=lambda entry: quiet or progress.console.print(_validation_line(entry)))
    if not quiet:
        console.print(f"trained {result.steps} steps in {result.seconds / 60:.1f} min; best validation score "
                      f"{result.best_score:.4f} at step {result.best_step}; weights in {output}/best.pt")


def _validation_line(entry: dict) -> str:
    scores = "  ".join(f"{k} {v:.4f}" for k, v in entry.items() if k != "step")
    return f"step {entry['step']}: {scores}"


class _StepClock:
    """Steps per second since the first step seen."""

    def __init__(self) -> None:
        self.first: tuple[int, float] | None = None

    def rate(self, step: int) -> float:
        import time

        now = time.perf_counter()
        if self.first is None:
            self.first = (step, now)
            return 0.0
        return (step - self.first[0]) / max(now - self.first[1], 1e-9)


def _parse_shape(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 8:
        raise InputError(f"--shape must look like 240x240x155 with sides >= 8, not {text!r}")
    return values  # type: ignore[return-value]


def main(argv: Optional[list[str]] = None) -> None:
    """Console entry point: bad input becomes one line on stderr and exit code 2."""
    try:
        app(args=argv, prog_name="recoseg")
    except RecosegError as error:
        console.print(f"[red]error:[/red] {error}", soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]")
        sys.exit(130)
