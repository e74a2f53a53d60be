"""``recoseg synthesize`` and ``recoseg residual``: one patient's synthetic T1ce or residual map."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from recoseg_cli.console import console
from recoseg_cli.devices import resolve_device
from recoseg_cli.diffusion.samplers import SamplerConfig
from recoseg_cli.io.discovery import Patient
from recoseg_cli.io.nifti import save_volume, write_atomically
from recoseg_cli.io.outputs import check_nifti_output, check_output_file
from recoseg_cli.metrics import region_synthesis_metrics
from recoseg_cli.pipeline import prepare_patient, residual_slices, restack_in_brain, synthesize_t1ce
from recoseg_cli.preprocess import BACKGROUND, PreprocessConfig, normalize
from recoseg_cli.synthesis import StageOne, build_synthesizer, synthesizer_weights
from recoseg_cli.weights import Weights, load_weights, resolve_weights_path


def run_synthesize(patient: Patient, output: Path, weights_option: Path | None, sampler: SamplerConfig, seed: int,
                   device: str, batch_size: int, report: Path | None, overwrite: bool, quiet: bool) -> dict:
    """Write the synthetic T1ce (z-score units, 0 outside the brain) and return the report."""
    check_nifti_output(output, overwrite)
    check_output_file(report, overwrite)
    torch_device = resolve_device(device)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    weights, synthesizer, config = load_synthesizer(weights_option, torch_device)
    timings["load_weights"] = time.perf_counter() - clock

    clock = time.perf_counter()
    prepared = prepare_patient(patient, config)
    timings["load_preprocess"] = time.perf_counter() - clock
    clock = time.perf_counter()
    synthetic = synthesize_t1ce(prepared, synthesizer, sampler, seed, batch_size)
    timings["synthesis"] = time.perf_counter() - clock

    clock = time.perf_counter()
    volumes = prepared.volumes
    mask = prepared.sliced.volume_brain
    synthetic_volume = restack_in_brain(prepared, synthetic)
    save_volume(synthetic_volume * config.clip, volumes.geometry, output, np.float32)
    timings["write"] = time.perf_counter() - clock

    result = {"case_id": patient.case_id, "output": str(output), "sampler": sampler.to_dict(), "seed": seed,
              "device": str(torch_device), "slices": int(len(synthetic)), "seconds": timings,
              "weights_sha256": weights.sha256}
    if prepared.has_t1ce:
        real = normalize(volumes.images["t1ce"], mask, config.clip)
        tumour = volumes.seg > 0 if volumes.seg is not None else None
        result["metrics"] = region_synthesis_metrics(real, np.where(mask, synthetic_volume, BACKGROUND), mask, tumour,
                                                     volumes.zooms)
        if not quiet:
            console.print("  ".join(f"{k} {v:.3f}" for k, v in result["metrics"].items()))
    if report is not None:
        write_atomically(report, lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    return result


def load_synthesizer(weights_option: Path | None, device: torch.device) -> tuple[Weights, StageOne, PreprocessConfig]:
    """The DDPM of a DDPM or segmenter weights file (bundled by default) and its slice settings."""
    path, checksum = resolve_weights_path(weights_option)
    weights = synthesizer_weights(load_weights(path, ("ddpm", "regressor", "seg"), checksum))
    return weights, build_synthesizer(weights, device), PreprocessConfig(**weights.extra["preprocess"])


def run_residual(patient: Patient, output: Path, weights_option: Path | None, sampler: SamplerConfig, seed: int,
                 device: str, batch_size: int, smooth_mm: float, overwrite: bool) -> Path:
    """Write |T1ce - synthetic T1ce| (z-score units, 0 outside the brain), optionally Gaussian-smoothed."""
    check_nifti_output(output, overwrite)
    patient.require(("t1ce",))
    _, synthesizer, config = load_synthesizer(weights_option, resolve_device(device))
    prepared = prepare_patient(patient, config)
    residual = residual_slices(prepared, synthesize_t1ce(prepared, synthesizer, sampler, seed, batch_size))
    volume = restack_in_brain(prepared, residual) * config.clip
    if smooth_mm > 0:
        sigma = [smooth_mm / z for z in prepared.volumes.zooms]
        volume = ndimage.gaussian_filter(volume, sigma) * prepared.sliced.volume_brain
    return save_volume(volume.astype(np.float32), prepared.volumes.geometry, output, np.float32)
