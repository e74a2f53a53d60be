"""The accuracy study: every system trained on the same split and budget, evaluated on held-out patients."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from recoseg_cli.benchmark.plan import TARGETS, Plan, System, systems
from recoseg_cli.data.build_cache import build_cache
from recoseg_cli.data.synthetic import SyntheticConfig, write_cohort
from recoseg_cli.devices import resolve_device
from recoseg_cli.diffusion.losses import DiffusionLossConfig
from recoseg_cli.diffusion.samplers import SamplerConfig
from recoseg_cli.errors import InputError
from recoseg_cli.io.discovery import discover_patient, find_patient_folders
from recoseg_cli.metrics import region_synthesis_metrics, residual_ratio, slice_dice, volume_metrics
from recoseg_cli.models.unet import UNetConfig
from recoseg_cli.networks import SegmentationNet, build_synthesizer, prepare_model, unet_from_weights
from recoseg_cli.pipeline import PreparedPatient, assemble, prepare_patient, restack_in_brain
from recoseg_cli.preprocess import PreprocessConfig, normalize
from recoseg_cli.regions import region_mask
from recoseg_cli.training.ddpm_task import DDPMStageConfig, ddpm_unet
from recoseg_cli.training.loop import TrainConfig
from recoseg_cli.training.regressor_task import regressor_stage
from recoseg_cli.training.run import train_ddpm, train_regressor, train_seg, train_seg3d
from recoseg_cli.training.seg3d_task import Seg3DStageConfig, stack_probabilities
from recoseg_cli.training.seg_task import segmenter_stage
from recoseg_cli.weights import load_weights

Log = Callable[[str], None]
STAGE_ONE = ("ddpm", "ddpm_healthy", "regressor")
DDPM_LAST_STEP_FRACTION = 0.5
"""Half of each DDPM batch at the step the default one-step sampler reads (the bundled weights' recipe)."""
MISSING_T1CE = "ReCoSeg, T1ce missing"
"""The ReCoSeg model evaluated with T1ce removed (synthetic T1ce in its place, zero residual)."""


@dataclass
class Cohort:
    """Patient folders for training (with validation split inside the cache) and for testing."""

    train: Path
    test: list[Path]
    description: str


def make_cohort(plan: Plan, work: Path, data: Path | None, log: Log) -> Cohort:
    """Generate the synthetic cohort, or split ``data`` into training and test patients by seed."""
    if data is None:
        config = SyntheticConfig(shape=plan.grid)
        start = time.perf_counter()
        train = work / "cohort" / "train"
        write_cohort(train, plan.train_patients, 0, config)
        test = write_cohort(work / "cohort" / "test", plan.test_patients, 10000, config)
        log(f"synthetic cohort: {plan.train_patients} training + {plan.test_patients} test patients on a "
            f"{'x'.join(map(str, plan.grid))} grid ({time.perf_counter() - start:.0f} s)")
        return Cohort(train, test, f"synthetic cohort (MNI152 anatomy), {plan.train_patients} training and "
                                   f"{plan.test_patients} test patients, grid {'x'.join(map(str, plan.grid))}")
    folders = find_patient_folders(data)
    if len(folders) < 4:
        raise InputError(f"{data}: found {len(folders)} patient folders; the benchmark needs at least 4")
    order = np.random.default_rng(plan.seed).permutation(len(folders))
    n_test = max(1, int(round(0.2 * len(folders))))
    test = sorted(folders[i] for i in order[:n_test])
    train = work / "cohort" / "train"
    train.mkdir(parents=True, exist_ok=True)
    for i in order[n_test:]:
        link = train / folders[i].name
        if not link.exists():
            link.symlink_to(folders[i].resolve(), target_is_directory=True)
    log(f"{data}: {len(folders) - n_test} training and {n_test} test patients (split by seed {plan.seed})")
    return Cohort(train, test, f"{data.name}: {len(folders) - n_test} training, {n_test} test patients")


def train_config(plan: Plan, steps: int, seed: int, batch_size: int | None = None) -> TrainConfig:
    return TrainConfig(max_steps=steps, batch_size=batch_size or plan.batch_size, seed=seed,
                       warmup_steps=max(1, steps // 10), val_every=max(1, steps // 2), checkpoint_every=steps)


def train_stage_one(plan: Plan, cache: Path, runs: Path, seed: int, device: str, log: Log) -> dict[str, dict]:
    """The DDPM on all tissue, the DDPM with tumour masked out of its loss, and the L1 regressor."""
    preprocess = PreprocessConfig(size=plan.size)
    unet = ddpm_unet(plan.ddpm_widths)
    config = train_config(plan, plan.stage_one_steps, seed)
    out = {}
    for name in STAGE_ONE:
        run_dir = runs / name
        if name == "regressor":
            result = train_regressor(cache, run_dir, regressor_stage(unet), config, preprocess, device)
        else:
            stage = DDPMStageConfig(unet=unet, mask_tumour=name == "ddpm_healthy",
                                    loss=DiffusionLossConfig(last_step_fraction=DDPM_LAST_STEP_FRACTION))
            result = train_ddpm(cache, run_dir, stage, config, preprocess, device)
        out[name] = {"weights": run_dir / "best.pt", "steps": result.steps, "train_seconds": result.seconds}
        log(f"stage 1 {name}: {result.steps} steps in {result.seconds:.0f} s")
    return out


def train_system(plan: Plan, system: System, cache: Path, runs: Path, stage_one: dict[str, dict], seed: int,
                 device: str) -> dict:
    """Train one segmenter (both target regions) with the shared budget and loss."""
    preprocess = PreprocessConfig(size=plan.size)
    run_dir = runs / system.name.replace(" ", "_").replace(",", "").replace("%", "pct")
    if system.volumetric:
        patch = (plan.patch_depth, plan.size, plan.size)
        stage = Seg3DStageConfig(UNetConfig(len(system.channels), len(TARGETS), plan.unet3d_widths, False, False,
                                            dims=3), system.channels, patch, label_fraction=system.label_fraction,
                                 targets=TARGETS)
        same_voxels = max(1, round(plan.batch_size / plan.patch_depth))
        result = train_seg3d(cache, run_dir, stage, train_config(plan, plan.seg_steps, seed, same_voxels),
                             preprocess, device)
    else:
        stage = segmenter_stage(system.channels, TARGETS, plan.seg_widths, label_fraction=system.label_fraction,
                                t1ce_dropout=0.15 if system.stage_one else 0.0)
        ddpm = stage_one[system.stage_one]["weights"] if system.stage_one else None
        result = train_seg(cache, run_dir, stage, train_config(plan, plan.seg_steps, seed), preprocess, ddpm,
                           SamplerConfig(), device)
    return {"weights": run_dir / "best.pt", "steps": result.steps, "train_seconds": result.seconds}


def evaluate(plan: Plan, rows: list[System], trained: dict[str, dict], stage_one: dict[str, dict],
             test: list[Path], device_name: str, log: Log) -> tuple[dict[str, dict], dict[str, dict]]:
    """Per-system metrics by region, and synthesis quality per stage-1 model, on the test patients."""
    device = resolve_device(device_name)
    preprocess = PreprocessConfig(size=plan.size)
    synthesizers = {name: build_synthesizer(load_weights(info["weights"], ("ddpm", "regressor")), device)
                    for name, info in stage_one.items()}
    scores: dict[str, list[dict]] = {system.name: [] for system in rows}
    scores[MISSING_T1CE] = []
    synthesis: dict[str, list[dict]] = {name: [] for name in synthesizers}
    models = {system.name: predictor(load_weights(trained[system.name]["weights"], ("seg", "seg3d")), device)
              for system in rows}
    for folder in test:
        prepared = prepare_patient(discover_patient(folder), preprocess)
        brain = prepared.sliced.brain
        synth = {name: s.synthesize(prepared.conditions, brain, SamplerConfig(), start=prepared.t1ce)
                 for name, s in synthesizers.items()}
        for name in synthesizers:
            synthesis[name].append(synthesis_quality(prepared, synth[name]))
        for system in rows:
            inputs = system_inputs(system, prepared, synth.get(system.stage_one))
            scores[system.name].append(patient_scores(prepared, models[system.name](inputs, brain)))
            if system.name == "ReCoSeg":
                inputs = system_inputs(system, prepared, synth["ddpm"], t1ce_missing=True)
                scores[MISSING_T1CE].append(patient_scores(prepared, models[system.name](inputs, brain)))
        log(f"evaluated {folder.name}")
    return ({name: summarize(values) for name, values in scores.items()},
            {name: summarize_synthesis(values) for name, values in synthesis.items()})


def predictor(weights, device) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A 2D or 3D segmenter as (inputs (N, C, S, S), brain (N, S, S)) -> region probabilities (N, K, S, S)."""
    if weights.stage == "seg3d":
        model = prepare_model(unet_from_weights(weights), device)
        patch = tuple(weights.extra["patch"])
        return lambda inputs, brain: stack_probabilities(model, inputs, brain, patch, device)
    return SegmentationNet.from_weights(weights, device).predict


def system_inputs(system: System, prepared: PreparedPatient, synth: np.ndarray | None,
                  t1ce_missing: bool = False) -> np.ndarray:
    """One system's input channels for one patient's slices, optionally as if T1ce were missing."""
    sliced = prepared.sliced
    missing = np.ones(len(sliced.images), bool) if t1ce_missing else None
    return assemble(sliced.images, sliced.brain, system.channels, synth, missing)


def patient_scores(prepared: PreparedPatient, probabilities: np.ndarray) -> dict:
    """Per-volume metrics and per-slice Dice lists by region, in the patient's own voxel grid."""
    seg = prepared.volumes.seg
    zooms = prepared.volumes.zooms
    out = {}
    for k, region in enumerate(TARGETS):
        mask = prepared.sliced.transform.inverse(probabilities[:, k], "linear") >= 0.5
        truth = region_mask(seg, region)
        if not truth.any():
            continue
        metrics = volume_metrics(mask, truth, zooms)
        metrics["slice_dice"], metrics["slice_iou"] = slice_dice(mask, truth)
        out[region] = metrics
    return out


def synthesis_quality(prepared: PreparedPatient, synth: np.ndarray) -> dict:
    """Healthy-brain SSIM/PSNR of the synthetic T1ce and the enhancing/healthy residual ratio, original grid."""
    volumes = prepared.volumes
    brain = prepared.sliced.volume_brain
    real = normalize(volumes.images["t1ce"], brain, PreprocessConfig().clip)
    fake = np.where(brain, restack_in_brain(prepared, synth), -1.0)
    tumour = region_mask(volumes.seg, "whole")
    out = region_synthesis_metrics(real, fake, brain, tumour, volumes.zooms)
    residual = np.abs(real - fake)
    enhancing = region_mask(volumes.seg, "enhancing") & brain
    healthy = brain & ~tumour
    if enhancing.any():
        out["residual_ratio"] = residual_ratio(residual, enhancing, healthy)
    return out


def _mean_std(values: list[float]) -> tuple[float, float, int]:
    v = np.asarray([x for x in values if x == x], float)
    return (float(v.mean()), float(v.std()), len(v)) if len(v) else (float("nan"), float("nan"), 0)


def summarize(patients: list[dict]) -> dict:
    """Mean ± std over patients per metric, and the pooled per-slice protocol, by region."""
    out = {}
    for region in TARGETS:
        rows = [p[region] for p in patients if region in p]
        if not rows:
            continue
        summary = {}
        for key in ("dice", "iou", "hd95", "sensitivity", "specificity"):
            summary[key], summary[f"{key}_std"], summary[f"{key}_n"] = _mean_std([r[key] for r in rows])
        slices = [d for r in rows for d in r["slice_dice"]]
        summary["slice_dice"], summary["slice_dice_std"], summary["slices"] = _mean_std(slices)
        summary["slice_iou"], summary["slice_iou_std"], _ = _mean_std([d for r in rows for d in r["slice_iou"]])
        summary["patients"] = len(rows)
        out[region] = summary
    return out


def summarize_synthesis(patients: list[dict]) -> dict:
    keys = sorted({k for p in patients for k in p})
    out = {}
    for key in keys:
        out[key], out[f"{key}_std"], _ = _mean_std([p.get(key, float("nan")) for p in patients])
    return out


def run_study(plan: Plan, work: Path, data: Path | None, device: str, log: Log) -> dict:
    """Train every system ``plan.repeats`` times (seeds seed, seed+1, ...) and evaluate each on the test set."""
    start = time.perf_counter()
    cohort = make_cohort(plan, work, data, log)
    cache = work / "cache"
    summary = build_cache(cohort.train, cache, PreprocessConfig(size=plan.size), val_fraction=0.2, seed=plan.seed,
                          overwrite=True)
    log(f"preprocessed {summary.subjects} training subjects ({summary.slices} slices) in {summary.seconds:.0f} s")
    rows = systems(plan.label_fractions)
    repeats = []
    for repeat in range(plan.repeats):
        seed = plan.seed + repeat
        runs = work / "runs" / f"seed{seed}"
        stage_one = train_stage_one(plan, cache, runs, seed, device, log)
        trained = {}
        for system in rows:
            trained[system.name] = train_system(plan, system, cache, runs, stage_one, seed, device)
            log(f"{system.name}: {trained[system.name]['steps']} steps in "
                f"{trained[system.name]['train_seconds']:.0f} s")
        metrics, synthesis = evaluate(plan, rows, trained, stage_one, cohort.test, device, log)
        repeats.append({"seed": seed, "metrics": metrics, "synthesis": synthesis,
                        "train_seconds": {name: info["train_seconds"] for name, info in {**stage_one, **trained}.items()}})
    recoseg = next(s for s in rows if s.name == "ReCoSeg")
    evaluated = rows + [replace(recoseg, name=MISSING_T1CE, group="missing")]
    return {"data": cohort.description, "systems": [system_row(s) for s in evaluated], "repeats": repeats,
            "seconds": time.perf_counter() - start}


def system_row(system: System) -> dict:
    return {"name": system.name, "group": system.group, "channels": list(system.channels),
            "stage_one": system.stage_one, "label_fraction": system.label_fraction, "volumetric": system.volumetric}
