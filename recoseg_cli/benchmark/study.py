"""The accuracy study: every system trained on the same split and budget, evaluated on held-out patients."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from recoseg_cli.benchmark.claims import claim_comparisons
from recoseg_cli.benchmark.plan import TARGETS, Plan, System, systems
from recoseg_cli.constants import CONDITION_MODALITIES
from recoseg_cli.crossval import DDPM_RECIPE, assign_folds
from recoseg_cli.data.build_cache import build_cache
from recoseg_cli.data.synthetic import SyntheticConfig, write_cohort
from recoseg_cli.devices import resolve_device
from recoseg_cli.diffusion.sampler_config import SamplerConfig
from recoseg_cli.errors import InputError
from recoseg_cli.io.discovery import discover_patient, find_patient_folders
from recoseg_cli.metrics import region_synthesis_metrics, residual_ratio, slice_dice, volume_metrics
from recoseg_cli.models.unet import UNetConfig
from recoseg_cli.networks import build_synthesizer, prepare_model, stage_one_of, torch_segmenter, unet_from_weights
from recoseg_cli.pipeline import PreparedPatient, assemble, prepare_patient, presence, restack_in_brain
from recoseg_cli.preprocess import PreprocessConfig, normalize
from recoseg_cli.regions import region_mask
from recoseg_cli.training.ddpm_task import ddpm_unet
from recoseg_cli.training.loop import TrainConfig
from recoseg_cli.training.regressor_task import regressor_stage
from recoseg_cli.training.run import train_ddpm, train_regressor, train_seg, train_seg3d
from recoseg_cli.training.seg3d_task import Seg3DStageConfig, stack_probabilities
from recoseg_cli.training.seg_task import labelled_count, segmenter_stage
from recoseg_cli.weights import Weights, load_weights

Log = Callable[[str], None]
STAGE_ONE = ("ddpm", "ddpm_healthy", "regressor")
MISSING_T1CE = "ReCoSeg, T1ce missing"
"""The ReCoSeg model evaluated with T1ce removed (synthetic T1ce in its place, zero residual)."""


@dataclass
class Split:
    """The training and test patient folders of one fold (or of the one fixed split)."""

    fold: int
    train: list[Path]
    test: list[Path]


def make_splits(plan: Plan, work: Path, data: Path | None, log: Log) -> tuple[list[Split], str]:
    """The patients (a generated synthetic cohort, or the folders under ``data``) and how they are split: into
    ``plan.folds`` folds by a seeded permutation, or else one fixed split (synthetic: as generated; ``data``:
    80/20 by seed). Returns the splits and a description of the data."""
    if data is None:
        config = SyntheticConfig(shape=plan.grid)
        start = time.perf_counter()
        train = write_cohort(work / "cohort" / "train", plan.train_patients, 0, config)
        test = write_cohort(work / "cohort" / "test", plan.test_patients, 10000, config)
        grid = "x".join(map(str, plan.grid))
        seconds = time.perf_counter() - start
        log(f"synthetic cohort: {len(train) + len(test)} patients on a {grid} grid ({seconds:.0f} s)")
        folders, fixed = train + test, Split(0, train, test)
        description = f"synthetic cohort (MNI152 anatomy), {len(folders)} patients, grid {grid}"
    else:
        folders = find_patient_folders(data)
        if len(folders) < 4:
            raise InputError(f"{data}: found {len(folders)} patient folders; the benchmark needs at least 4")
        if 0 < plan.max_patients < len(folders):
            keep = np.random.default_rng([plan.seed, 31]).permutation(len(folders))[:plan.max_patients]
            folders = [folders[i] for i in sorted(keep)]
        order = np.random.default_rng(plan.seed).permutation(len(folders))
        n_test = max(1, int(round(0.2 * len(folders))))
        fixed = Split(0, sorted(folders[i] for i in order[n_test:]), sorted(folders[i] for i in order[:n_test]))
        description = f"{data.name}: {len(folders)} patients"
    if plan.folds < 2:
        log(f"{description}: {len(fixed.train)} training and {len(fixed.test)} test patients")
        return [fixed], f"{description}, {len(fixed.train)} training and {len(fixed.test)} test"
    fold_of = assign_folds([str(f) for f in folders], plan.folds, plan.seed)
    splits = [Split(k, [f for f in folders if fold_of[str(f)] != k], [f for f in folders if fold_of[str(f)] == k])
              for k in range(plan.folds)]
    log(f"{description} in {plan.folds} folds of {', '.join(str(len(s.test)) for s in splits)} test patients")
    return splits, f"{description}, {plan.folds}-fold cross-validation by patient"


def link_training_folders(split: Split, folder: Path) -> Path:
    """A folder of links to the split's training patients (the cache builder reads one folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, patient in enumerate(split.train):
        (folder / f"{index:03d}_{patient.name}").symlink_to(patient.resolve(), target_is_directory=True)
    return folder


def train_config(plan: Plan, steps: int, lr: float, seed: int, batch_size: int | None = None) -> TrainConfig:
    """The bundled weights' recipe at the plan's budget: the final EMA weights are kept (no validation split;
    the loop's validation log reads one training patient)."""
    return TrainConfig(max_steps=steps, batch_size=batch_size or plan.batch_size, lr=lr, seed=seed,
                       warmup_steps=max(1, steps // 10), val_every=steps, checkpoint_every=steps)


def train_stage_one(plan: Plan, cache: Path, runs: Path, seed: int, device: str, log: Log) -> dict[str, dict]:
    """The DDPM on all tissue, the DDPM with tumour masked out of its loss, and the L1 regressor."""
    preprocess = PreprocessConfig(size=plan.size)
    unet = ddpm_unet(plan.ddpm_widths)
    config = train_config(plan, plan.stage_one_steps, plan.stage_one_lr, seed)
    out = {}
    for name in STAGE_ONE:
        run_dir = runs / name
        if name == "regressor":
            result = train_regressor(cache, run_dir, regressor_stage(unet), config, preprocess, device)
        else:
            stage = replace(DDPM_RECIPE, unet=unet, mask_tumour=name == "ddpm_healthy")
            result = train_ddpm(cache, run_dir, stage, config, preprocess, device)
        out[name] = {"weights": run_dir / "last.pt", "steps": result.steps, "train_seconds": result.seconds}
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
        result = train_seg3d(cache, run_dir, stage, train_config(plan, plan.seg_steps, plan.seg_lr, seed, same_voxels),
                             preprocess, device)
    else:
        stage = segmenter_stage(system.channels, TARGETS, plan.seg_widths, label_fraction=system.label_fraction,
                                sequence_dropout=0.15 if system.stage_one else 0.0)
        ddpm = stage_one[system.stage_one]["weights"] if system.stage_one else None
        result = train_seg(cache, run_dir, stage, train_config(plan, plan.seg_steps, plan.seg_lr, seed), preprocess,
                           ddpm, SamplerConfig(), device)
    return {"weights": run_dir / "last.pt", "steps": result.steps, "train_seconds": result.seconds}


def evaluate(plan: Plan, rows: list[System], trained: dict[str, dict], stage_one: dict[str, dict],
             split: Split, device_name: str, log: Log) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    """Per-patient metrics of every system, and synthesis quality per stage-1 model, on the split's test patients.

    Each segmenter's file embeds the stage-1 model it was trained with; it must be the one its system names.
    """
    device = resolve_device(device_name)
    preprocess = PreprocessConfig(size=plan.size)
    stage_one_weights = {name: load_weights(info["weights"], ("ddpm", "regressor")) for name, info in stage_one.items()}
    synthesizers = {name: build_synthesizer(weights, device) for name, weights in stage_one_weights.items()}
    models = {}
    for system in rows:
        weights = load_weights(trained[system.name]["weights"], ("seg", "seg3d"))
        used = embedded_stage_one(weights, stage_one_weights)
        if used != system.stage_one:
            raise RuntimeError(f"{system.name}: its segmenter was trained with the {used} stage-1 model, "
                               f"not {system.stage_one}")
        models[system.name] = predictor(weights, device)
    scores: dict[str, list[dict]] = {system.name: [] for system in rows}
    scores[MISSING_T1CE] = []
    synthesis: dict[str, list[dict]] = {name: [] for name in synthesizers}
    for folder in split.test:
        prepared = prepare_patient(discover_patient(folder), preprocess)
        brain = prepared.sliced.brain
        case = {"case_id": prepared.volumes.patient.case_id, "fold": split.fold}
        synth = {name: s.synthesize(prepared.conditions, brain, SamplerConfig(), start=prepared.t1ce)
                 for name, s in synthesizers.items()}
        for name in synthesizers:
            synthesis[name].append({**case, **synthesis_quality(prepared, synth[name])})
        for system in rows:
            inputs = system_inputs(system, prepared, synth.get(system.stage_one))
            scores[system.name].append({**case, **patient_scores(prepared, models[system.name](inputs, brain))})
            if system.name == "ReCoSeg":
                inputs = system_inputs(system, prepared, synth["ddpm"], t1ce_missing=True)
                scores[MISSING_T1CE].append({**case, **patient_scores(prepared, models[system.name](inputs, brain))})
        log(f"evaluated {case['case_id']}")
    return scores, synthesis


def embedded_stage_one(weights: Weights, stage_one: dict[str, Weights]) -> str | None:
    """The name of the stage-1 model whose tensors a segmenter file embeds (None when it embeds none)."""
    found = stage_one_of(weights)
    if found is None:
        return None
    embedded = found.state_dict
    for name, candidate in stage_one.items():
        tensors = candidate.state_dict
        if tensors.keys() == embedded.keys() and all(torch.equal(tensors[k], embedded[k]) for k in tensors):
            return name
    raise RuntimeError(f"{weights.path}: embeds a stage-1 model that is none of {', '.join(stage_one)}")


def predictor(weights, device) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A 2D or 3D segmenter as (inputs (N, C, S, S), brain (N, S, S)) -> region probabilities (N, K, S, S)."""
    if weights.stage == "seg3d":
        model = prepare_model(unet_from_weights(weights), device)
        patch = tuple(weights.extra["patch"])
        return lambda inputs, brain: stack_probabilities(model, inputs, brain, patch, device)
    return torch_segmenter(weights, device).predict


def system_inputs(system: System, prepared: PreparedPatient, synth: np.ndarray | None,
                  t1ce_missing: bool = False) -> np.ndarray:
    """One system's input channels for one patient's slices, optionally as if T1ce were missing."""
    sliced = prepared.sliced
    present = presence(len(sliced.images), CONDITION_MODALITIES) if t1ce_missing else None
    return assemble(sliced.images, sliced.brain, system.channels, synth, present)


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


PATIENT_METRICS = ("dice", "iou", "hd95", "sensitivity", "specificity")


def summarize(patients: list[dict]) -> dict:
    """Mean ± std over patients per metric, and the pooled per-slice protocol, by region."""
    out = {}
    for region in TARGETS:
        rows = [p[region] for p in patients if region in p]
        if not rows:
            continue
        summary = {}
        for key in PATIENT_METRICS:
            summary[key], summary[f"{key}_std"], summary[f"{key}_n"] = _mean_std([r[key] for r in rows])
        slices = [d for r in rows for d in r["slice_dice"]]
        summary["slice_dice"], summary["slice_dice_std"], summary["slices"] = _mean_std(slices)
        summary["slice_iou"], summary["slice_iou_std"], _ = _mean_std([d for r in rows for d in r["slice_iou"]])
        summary["patients"] = len(rows)
        out[region] = summary
    return out


def compact(patient: dict) -> dict:
    """A patient's record for results.json: per-volume metrics and the mean of its per-slice Dice, by region."""
    out = {"case_id": patient["case_id"], "fold": patient["fold"]}
    for region in TARGETS:
        if region in patient:
            metrics = patient[region]
            out[region] = {**{k: metrics[k] for k in PATIENT_METRICS},
                           "slice_dice_mean": _mean_std(metrics["slice_dice"])[0], "slices": len(metrics["slice_dice"])}
    return out


def summarize_synthesis(patients: list[dict]) -> dict:
    keys = sorted({k for p in patients for k in p if k not in ("case_id", "fold")})
    out = {}
    for key in keys:
        out[key], out[f"{key}_std"], _ = _mean_std([p.get(key, float("nan")) for p in patients])
    return out


def run_study(plan: Plan, work: Path, data: Path | None, device: str, log: Log) -> dict:
    """Train every system on every split ``plan.repeats`` times (seeds seed, seed+1, ...) and score each test
    patient with the models of the split that held it out."""
    start = time.perf_counter()
    splits, description = make_splits(plan, work, data, log)
    rows = systems(plan.label_fractions)
    recoseg = next(s for s in rows if s.name == "ReCoSeg")
    evaluated = rows + [replace(recoseg, name=MISSING_T1CE, group="missing")]
    caches = {}
    repeats = []
    for repeat in range(plan.repeats):
        seed = plan.seed + repeat
        patients: dict[str, list[dict]] = {system.name: [] for system in evaluated}
        synthesis: dict[str, list[dict]] = {name: [] for name in STAGE_ONE}
        train_seconds: dict[str, float] = {}
        labelled: dict[str, list[int]] = {}
        for split in splits:
            fold_dir = work / f"fold{split.fold}"
            if split.fold not in caches:
                caches[split.fold] = build_cache(link_training_folders(split, fold_dir / "train"), fold_dir / "cache",
                                                 PreprocessConfig(size=plan.size), val_fraction=0.0, seed=plan.seed,
                                                 overwrite=True)
                log(f"fold {split.fold}: preprocessed {caches[split.fold].subjects} training patients "
                    f"({caches[split.fold].slices} slices) in {caches[split.fold].seconds:.0f} s")
            cache, runs = fold_dir / "cache", fold_dir / f"seed{seed}"
            stage_one = train_stage_one(plan, cache, runs, seed, device, log)
            trained = {}
            for system in rows:
                trained[system.name] = train_system(plan, system, cache, runs, stage_one, seed, device)
                log(f"fold {split.fold} {system.name}: {trained[system.name]['steps']} steps in "
                    f"{trained[system.name]['train_seconds']:.0f} s")
            scores, quality = evaluate(plan, rows, trained, stage_one, split, device, log)
            for name, values in scores.items():
                patients[name] += values
            for name, values in quality.items():
                synthesis[name] += values
            for name, info in {**stage_one, **trained}.items():
                train_seconds[name] = train_seconds.get(name, 0.0) + info["train_seconds"]
            training = caches[split.fold].subjects - caches[split.fold].val_subjects
            for system in rows:
                labelled.setdefault(system.name, []).append(labelled_count(training, system.label_fraction))
            shutil.rmtree(runs, ignore_errors=True)
        repeats.append({"seed": seed, "metrics": {name: summarize(values) for name, values in patients.items()},
                        "synthesis": {name: summarize_synthesis(values) for name, values in synthesis.items()},
                        "train_seconds": train_seconds, "labelled_patients": labelled,
                        "patients": {name: [compact(p) for p in values] for name, values in patients.items()}})
    return {"data": description, "folds": len(splits) if plan.folds >= 2 else 0,
            "test_patients": {str(case): split.fold for split in splits for case in split.test},
            "systems": [system_row(s) for s in evaluated], "repeats": repeats,
            "comparisons": claim_comparisons(repeats, list(plan.label_fractions), plan.seed),
            "seconds": time.perf_counter() - start}


def system_row(system: System) -> dict:
    return {"name": system.name, "group": system.group, "channels": list(system.channels),
            "stage_one": system.stage_one, "label_fraction": system.label_fraction, "volumetric": system.volumetric}
