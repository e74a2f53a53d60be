"""``recoseg synthesize`` and ``recoseg residual``: one patient's synthetic T1ce or residual map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from recoseg_cli.console import console
from recoseg_cli.devices import inference_batch_size, precision_name, resolve_device
from recoseg_cli.diffusion.samplers import SamplerConfig
from recoseg_cli.io.discovery import Patient
from recoseg_cli.io.json_io import write_json
from recoseg_cli.io.nifti import save_volume
from recoseg_cli.io.outputs import check_nifti_output, check_output_file
from recoseg_cli.metrics import region_synthesis_metrics
from recoseg_cli.pipeline import prepare_patient, residual_slices, restack_in_brain, synthesize_t1ce
from recoseg_cli.preprocess import BACKGROUND, PreprocessConfig, normalize
from recoseg_cli.provenance import StageTimer, package_versions, peak_rss_gb
from recoseg_cli.synthesis import StageOne, build_synthesizer, synthesizer_weights
from recoseg_cli.weights import Weights, load_weights, resolve_weights_path


def run_synthesize(patient: Patient, output: Path, weights_option: Path | None, sampler: SamplerConfig, seed: int,
                   device: str, batch_size: int | None, report: Path | None, overwrite: bool, quiet: bool) -> dict:
    """Write the synthetic T1ce (z-score units, 0 outside the brain) and return the report (the keys of
    ``segment``'s report where they mean the same)."""
    check_nifti_output(output, overwrite)
    check_output_file(report, overwrite)
    torch_device = resolve_device(device)
    timer = StageTimer()
    seconds, lap = timer.seconds, timer.lap

    weights, synthesizer, config = load_synthesizer(weights_option, torch_device)
    lap("weights")
    prepared = prepare_patient(patient, config, on_loaded=lambda: lap("load"))
    lap("preprocess")
    synthetic = synthesize_t1ce(prepared, synthesizer, sampler, seed, inference_batch_size(torch_device, batch_size))
    lap("synthesis")
    volumes = prepared.volumes
    mask = prepared.sliced.volume_brain
    synthetic_volume = restack_in_brain(prepared, synthetic)
    save_volume(synthetic_volume * config.clip, volumes.geometry, output, np.float32)
    lap("write")

    result = {"case_id": patient.case_id, "output": str(output.resolve()),
              "inputs": {m: str(p.resolve()) for m, p in patient.images.items()}, "sampler": sampler.to_dict(),
              "seed": seed, "slices_processed": int(len(synthetic)), "seconds": seconds,
              "seconds_total": round(sum(seconds.values()), 3), "weights": str(weights.path),
              "weights_sha256": weights.sha256, "device": str(torch_device),
              "precision": precision_name(torch_device), "peak_rss_gb": peak_rss_gb(), "versions": package_versions()}
    if prepared.has_t1ce:
        real = normalize(volumes.images["t1ce"], mask, config.clip)
        tumour = volumes.seg > 0 if volumes.seg is not None else None
        metrics = region_synthesis_metrics(real, np.where(mask, synthetic_volume, BACKGROUND), mask, tumour,
                                           volumes.zooms)
        result["metrics_vs_ground_truth"] = {k: round(v, 4) for k, v in metrics.items()}
    if report is not None:
        write_json(report, result)
    if not quiet:
        scores = "  ".join(f"{k} {v:.3f}" for k, v in result.get("metrics_vs_ground_truth", {}).items())
        console.print(f"{patient.case_id}: synthetic T1ce of {len(synthetic)} slices, {result['seconds_total']:.1f} s "
                      f"-> {output}" + (f"\n{scores}" if scores else ""), soft_wrap=True)
    return result


def load_synthesizer(weights_option: Path | None, device: torch.device) -> tuple[Weights, StageOne, PreprocessConfig]:
    """The DDPM of a DDPM or segmenter weights file (bundled by default) and its slice settings."""
    path, checksum = resolve_weights_path(weights_option)
    weights = synthesizer_weights(load_weights(path, ("ddpm", "regressor", "seg"), checksum))
    return weights, build_synthesizer(weights, device), PreprocessConfig(**weights.extra["preprocess"])


def run_residual(patient: Patient, output: Path, weights_option: Path | None, sampler: SamplerConfig, seed: int,
                 device: str, batch_size: int | None, smooth_mm: float, overwrite: bool) -> Path:
    """Write |T1ce - synthetic T1ce| (z-score units, 0 outside the brain), optionally Gaussian-smoothed."""
    check_nifti_output(output, overwrite)
    patient.require(("t1ce",))
    torch_device = resolve_device(device)
    _, synthesizer, config = load_synthesizer(weights_option, torch_device)
    prepared = prepare_patient(patient, config)
    synthetic = synthesize_t1ce(prepared, synthesizer, sampler, seed, inference_batch_size(torch_device, batch_size))
    residual = residual_slices(prepared, synthetic)
    volume = restack_in_brain(prepared, residual) * config.clip
    if smooth_mm > 0:
        sigma = [smooth_mm / z for z in prepared.volumes.zooms]
        volume = ndimage.gaussian_filter(volume, sigma) * prepared.sliced.volume_brain
    return save_volume(volume.astype(np.float32), prepared.volumes.geometry, output, np.float32)
