"""``recoseg synthesize``: one patient's synthetic T1ce, with a report scoring it against the real T1ce."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recoseg_cli.api import run_stage_one
from recoseg_cli.console import console
from recoseg_cli.devices import precision_name
from recoseg_cli.diffusion.sampler_config import SamplerConfig
from recoseg_cli.io.discovery import Patient
from recoseg_cli.io.json_io import write_json
from recoseg_cli.io.nifti import save_volume
from recoseg_cli.io.outputs import check_nifti_output, check_output_file
from recoseg_cli.metrics import region_synthesis_metrics
from recoseg_cli.preprocess import BACKGROUND, normalize
from recoseg_cli.provenance import StageTimer, package_versions, peak_rss_gb


def run_synthesize(patient: Patient, output: Path, weights_option: Path | None, sampler: SamplerConfig, seed: int,
                   device: str, batch_size: int | None, report: Path | None, overwrite: bool, quiet: bool,
                   model: str | None = None) -> dict:
    """Write the synthetic T1ce (z-score units, 0 outside the brain) and return the report (the keys of
    ``segment``'s report where they mean the same)."""
    check_nifti_output(output, overwrite)
    check_output_file(report, overwrite)
    synthesis = run_stage_one(patient, weights_option, device, sampler=sampler, seed=seed, batch_size=batch_size,
                              model=model)
    prepared, seconds = synthesis.prepared, synthesis.seconds
    volumes = prepared.volumes
    timer = StageTimer(seconds=seconds)
    synthetic_volume = synthesis.synth_volume()
    save_volume(synthetic_volume, volumes.geometry, output, np.float32)
    timer.lap("write")

    result = {"case_id": patient.case_id, "output": str(output.resolve()),
              "inputs": {m: str(p.resolve()) for m, p in patient.images.items()}, "sampler": sampler.to_dict(),
              "seed": seed, "slices_processed": int(len(synthesis.slices)), "seconds": seconds,
              "seconds_total": round(sum(seconds.values()), 3), "weights": str(synthesis.weights.path),
              "weights_sha256": synthesis.weights.sha256, "device": str(synthesis.device),
              "precision": precision_name(synthesis.device), "peak_rss_gb": peak_rss_gb(), "versions": package_versions()}
    if prepared.has_t1ce:
        mask = prepared.sliced.volume_brain
        real = normalize(volumes.images["t1ce"], mask, synthesis.clip)
        tumour = volumes.seg > 0 if volumes.seg is not None else None
        metrics = region_synthesis_metrics(real, np.where(mask, synthetic_volume / synthesis.clip, BACKGROUND), mask,
                                           tumour, volumes.zooms)
        result["metrics_vs_ground_truth"] = {k: round(v, 4) for k, v in metrics.items()}
    if report is not None:
        write_json(report, result)
    if not quiet:
        scores = "  ".join(f"{k} {v:.3f}" for k, v in result.get("metrics_vs_ground_truth", {}).items())
        console.print(f"{patient.case_id}: synthetic T1ce of {len(synthesis.slices)} slices, "
                      f"{result['seconds_total']:.1f} s -> {output}" + (f"\n{scores}" if scores else ""),
                      soft_wrap=True)
    return result
