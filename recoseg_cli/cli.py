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
