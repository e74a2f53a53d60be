"""Options and option parsers shared by the command modules (no heavy imports: typos fail before torch loads)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Literal, Optional

import typer

from recoseg_cli.errors import InputError

Labels = Literal["auto", "brats2020", "brats2023"]
Sampler = Literal["onestep", "ddim", "ddpm"]
Prepare = Literal["auto", "off", "full"]
Model = Literal["accurate", "ddpm", "fast", "hires", "any-subset", "flair+t1ce", "flair+t1+t2"]
"""Bundled models (``weights.BUNDLED_MODELS``)."""
RuntimeChoice = Literal["auto", "onnx", "torch"]
QUIET = typer.Option(False, "--quiet", "-q", help="No progress display or summary; warnings and errors still print.")


def label_scheme(labels: str) -> Optional[str]:
    """--labels: None for auto (the scheme follows the file names), else the scheme's name."""
    return None if labels == "auto" else labels


def patient_from_options(folder: Optional[Path], flair: Optional[Path], t1: Optional[Path],
                         t1ce: Optional[Path], t2: Optional[Path], seg: Optional[Path], case_id: Optional[str] = None):
    """A patient from a folder, or from explicit per-modality paths; ``case_id`` replaces the one found."""
    patient = _patient(folder, flair, t1, t1ce, t2, seg)
    return replace(patient, case_id=case_id) if case_id else patient


def _patient(folder: Optional[Path], flair: Optional[Path], t1: Optional[Path], t1ce: Optional[Path],
             t2: Optional[Path], seg: Optional[Path]):
    from recoseg_cli.io.discovery import discover_patient, patient_from_paths

    explicit = {"flair": flair, "t1": t1, "t1ce": t1ce, "t2": t2, "seg": seg}
    if folder is not None and any(explicit.values()):
        raise InputError("give a patient folder or explicit --flair/--t1/--t1ce/--t2 paths, not both")
    if folder is None:
        if not any(explicit.values()):
            raise InputError("give a patient folder or explicit --flair/--t1/--t1ce/--t2 paths")
        return patient_from_paths(explicit)
    return discover_patient(folder)


def device_name(value: str) -> str:
    """Reject a malformed --device while parsing, before torch is imported (availability is checked later)."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise InputError(f"--device must be auto, cpu or cuda[:i], not {value!r}")
    return value


def parse_shard(text: str) -> tuple[int, int]:
    """``i/n`` (0-based i) -> (i, n)."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise InputError(f"--shard must look like i/n (0-based), not {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise InputError(f"--shard {text}: need 0 <= i < n")
    return index, count


BATCH_DICE = typer.Option(False, "--batch-dice/--no-batch-dice",
                          help="Segmenter: Dice loss over each batch as a whole, not per slice.")
DEEP_SUPERVISION = typer.Option(False, "--deep-supervision/--no-deep-supervision",
                                help="Segmenter: extra loss terms on the decoder's coarser levels (nnU-Net's deep "
                                     "supervision); no cost at inference.")
DEVICE = typer.Option("auto", callback=device_name, help="auto, cpu or cuda[:i].")
BATCH_SIZE = typer.Option(None, min=1, help="Slices per network call [default: 8 on CPU, 64 on GPU].")
FLAIR = typer.Option(None, "--flair", help="Explicit FLAIR path (instead of a patient folder); with a DICOM study, "
                                           "its series number or UID.")
T1 = typer.Option(None, "--t1", help="Explicit T1 path.")
T1CE = typer.Option(None, "--t1ce", help="Explicit T1ce path (optional).")
T1CE_REQUIRED = typer.Option(None, "--t1ce", help="Explicit T1ce path (required: the residual is T1ce minus its "
                                                  "synthesis).")
T2 = typer.Option(None, "--t2", help="Explicit T2 path.")
SEG = typer.Option(None, "--seg", help="Explicit segmentation path (optional, for metrics).")
STAGE_ONE_WEIGHTS = typer.Option(None, "--weights",
                                 help="DDPM, regressor or segmenter weights; default: bundled (or $RECOSEG_WEIGHTS).")
MODEL = typer.Option(None, help="Bundled model: accurate (the default; residual from an L1 regressor), ddpm (the "
                                 "same networks, residual from the conditional DDPM), fast (one segmenter of "
                                 "the four sequences, no stage 1: shortest command, slightly lower Dice) or "
                                 "hires (160 x 160 slices: higher core Dice, about 1.7x the command).")
STAGE_ONE_SAMPLER = typer.Option("onestep", "--sampler", help="Stage-1 sampler.")
STEPS = typer.Option(1, "--steps", min=1, help="Network calls per slice (DDIM/DDPM steps, or one-step draws averaged).")
SEED = typer.Option(0, "--seed", help="Seed of the sampling noise.")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace existing outputs.")


def sampler_config(name: str, steps: int, start_step: int, eta: float):
    """--sampler, --steps, --start-step and --eta as a checked SamplerConfig."""
    from recoseg_cli.diffusion.sampler_config import SamplerConfig

    if not 0 <= start_step <= 999 or steps > 1000:
        raise InputError("--start-step must be in 0..999 and --steps at most 1000")
    return SamplerConfig(name, steps, eta, start_step)


def parse_widths(text: str) -> tuple[int, ...]:
    """``16,32,64,96`` -> U-Net channel widths per level."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 4:
        raise InputError(f"--widths must look like 32,64,96,128, not {text!r}")
    return values


def parse_shape(text: str) -> tuple[int, int, int]:
    """``240x240x155`` -> a grid shape."""
    try:
        values = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 8:
        raise InputError(f"--shape must look like 240x240x155 with sides >= 8, not {text!r}")
    return values  # type: ignore[return-value]


def parse_source_weights(items: list[str]) -> tuple[tuple[str, float], ...]:
    """``["TCIA=0.5"]`` -> ``(("TCIA", 0.5),)``; institutions as ``data.institutions`` names them."""
    from recoseg_cli.data.institutions import INSTITUTIONS

    names = [name for name, _ in INSTITUTIONS]
    weights = []
    for item in items:
        name, _, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if name not in names or weight <= 0:
            raise InputError(f"--source-weight {item!r}: expected NAME=WEIGHT with NAME one of "
                             f"{', '.join(names)} and WEIGHT > 0")
        weights.append((name, weight))
    return tuple(weights)
