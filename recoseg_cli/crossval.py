"""Patient-level cross-validation of the whole method: per fold, train stage 1 and stage 2, segment held-out cases.

Every case is scored once, by models (DDPM and segmenter) that never saw it. Clinical variants of a case in the
cache (``data.clinical_variants``) train with it and are never scored. Each fold's folder holds its weights, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy import ndimage

from recoseg_cli.api import Prediction, Segmenter
from recoseg_cli.constants import MODALITIES
from recoseg_cli.data.cache import CachedSubject
from recoseg_cli.data.clinical_variants import source_case
from recoseg_cli.data.institutions import institution
from recoseg_cli.devices import machine_description, resolve_device
from recoseg_cli.diffusion.losses import DiffusionLossConfig
from recoseg_cli.diffusion.sampler_config import SamplerConfig
from recoseg_cli.errors import InputError
from recoseg_cli.io.discovery import discover_patient
from recoseg_cli.io.json_io import write_json
from recoseg_cli.io.outputs import write_atomically
from recoseg_cli.metrics import (paired_difference, region_metrics, region_synthesis_metrics, residual_ratio,
                                 summary_stats)
from recoseg_cli.networks import build_synthesizer
from recoseg_cli.pipeline import ANY_SUBSET_CHANNELS, DEFAULT_CHANNELS, prepare_patient, residual_slices, restack_in_brain
from recoseg_cli.preprocess import PreprocessConfig
from recoseg_cli.regions import REGIONS, REGION_ABBREVIATIONS, PostprocessConfig, region_mask, region_masks
from recoseg_cli.training.data import load_training_cache
from recoseg_cli.training.ddpm_task import DDPMStageConfig, ddpm_unet
from recoseg_cli.training.loop import TrainConfig
from recoseg_cli.training.regressor_task import regressor_stage
from recoseg_cli.training.run import Callbacks, fit_ddpm, fit_regressor, fit_seg
from recoseg_cli.training.seg_task import SegStageConfig, segmenter_stage
from recoseg_cli.weights import load_weights

VARIANTS = {"recoseg": DEFAULT_CHANNELS, "modalities": MODALITIES, "any-subset": ANY_SUBSET_CHANNELS,
            "flair+t1ce": ("flair", "t1ce"), "flair+t1+t2": ("flair", "t1", "t2"),
            "ddmm-synth": ("flair", "t1", "t2", "synth")}
"""Segmenters a fold can train: the method (modalities + residual), the four modalities alone, the method told
which sequences are present, trained on every subset holding FLAIR or T2 (``SUBSET_DROPOUT``), specialists
for exams holding FLAIR and T1ce, or FLAIR, T1 and T2 (no contrast), against which the models serving those exams
are measured, and the paper's DDMM-Synth peer (FLAIR, T1, T2 and the synthetic T1ce in place of the real one)."""

SUBSET_DROPOUT = 0.4
"""Share of the any-subset segmenter's training slices shown with sequences missing."""

DDPM_RECIPE = DDPMStageConfig(loss=DiffusionLossConfig(last_step_fraction=0.8))
"""Stage 1 of every fold, as for the bundled weights: 80% of each batch at the timestep the one-step sampler reads."""

STAGE_ONE_LABELS = {"synth": "synthetic T1ce (DDPM, one-step)", "l1": "L1 regressor", "t1": "real T1 (reference)"}
"""Images scored as stand-ins for the real T1ce in the stage-1 table."""

POSTPROCESS_CANDIDATES = tuple(PostprocessConfig(0.5, component, enhancing)
                               for component in (0.0, 0.25, 1.0, 3.0) for enhancing in (0.0, 0.3))
"""Post-processing settings scored on every held-out case (mL floors for WT components and for ET)."""


@dataclass(frozen=True)
class CrossValConfig:
    """Folds and training budgets of a cross-validation run; saved in its results."""

    folds: int = 5
    seed: int = 0
    """Seeds the split of patients into folds and every training run."""
    ddpm_steps: int = 1000
    """Optimizer steps of each fold's DDPM and of its L1 regressor (whichever are trained)."""
    ddpm_widths: tuple[int, ...] = DDPM_RECIPE.unet.widths
    seg_steps: int = 800
    seg_widths: tuple[int, ...] = SegStageConfig().unet.widths
    ddpm_lr: float = 2e-4
    seg_lr: float = 1e-3
    batch_size: int = 16
    bf16: bool = True
    variants: tuple[str, ...] = tuple(VARIANTS)
    size: int = 120
    batch_dice: bool = False
    """Segmenters' Dice loss over each batch as a whole (``SegStageConfig.batch_dice``)."""
    deep_supervision: bool = False
    """Segmenters trained with a loss on every decoder level (``UNetConfig.deep_supervision``)."""
    l1_reference: bool = True
    """Train and score both stage-1 models, the DDPM and the L1 regressor (stage 1's deterministic reference);
    off, a fold trains only the one that gives the residual."""
    source_weights: tuple[tuple[str, float], ...] = ()
    """Segmenters' sampling weight of training cases by institution (``SegStageConfig.source_weights``)."""
    foreground_region: str = "whole"
    """Region whose slices make the segmenters' foreground share (``SegStageConfig.foreground_region``)."""
    max_cases: int | None = None
    """Only the first cases by id (a smoke run); None: every case."""
    residual_from: str = "ddpm"
    """Stage-1 model whose synthetic T1ce gives the segmenters' residual: "ddpm" or "regressor" (the L1
    regressor, trained whatever ``l1_reference`` says)."""

    @property
    def trains_ddpm(self) -> bool:
        return self.l1_reference or self.residual_from == "ddpm"

    @property
    def trains_regressor(self) -> bool:
        return self.l1_reference or self.residual_from == "regressor"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, values: dict) -> CrossValConfig:
        """The config a stored ``to_dict()`` describes; a field the record lacks was added later, and the run
        that wrote it used that field's default."""
        tuples = {"ddpm_widths", "seg_widths", "variants"}
        return cls(**{key: tuple(value) if key in tuples else
                      tuple(map(tuple, value)) if key == "source_weights" else value
                      for key, value in values.items()})


def assign_folds(case_ids: list[str], folds: int, seed: int) -> dict[str, int]:
    """Fold of each case, stratified by institution: each institution's cases in a seeded permutation, dealt
    round-robin into ``folds`` folds, the count carried over from one institution to the next."""
    if not 2 <= folds <= len(case_ids):
        raise InputError(f"--folds {folds}: need between 2 and the number of cases ({len(case_ids)})")
    rng = np.random.default_rng([seed, 29])
    ordered = []
    for name in sorted({institution(case) for case in case_ids}):
        ordered += list(rng.permutation(sorted(c for c in case_ids if institution(c) == name)))
    return {str(case): i % folds for i, case in enumerate(ordered)}


def _train_config(config: CrossValConfig, steps: int, lr: float, fold: int) -> TrainConfig:
    return TrainConfig(max_steps=steps, batch_size=config.batch_size, lr=lr, seed=config.seed + fold,
                       bf16=config.bf16, val_every=max(steps // 4, 1), checkpoint_every=100)


def stage_one_models(config: CrossValConfig) -> list[tuple]:
    """Stage-1 models of each fold: (folder name, training function, stage config)."""
    ddpm = replace(DDPM_RECIPE, unet=ddpm_unet(config.ddpm_widths))
    return (([("ddpm", fit_ddpm, ddpm)] if config.trains_ddpm else [])
            + ([("regressor", fit_regressor, regressor_stage(ddpm.unet))] if config.trains_regressor else []))


def trained_stage_one(config: CrossValConfig) -> list[str]:
    """Folder names of the stage-1 models each fold trains."""
    return [folder for folder, _, _ in stage_one_models(config)]


def train_stage_one(subjects: list[CachedSubject], preprocess: dict, fold_dir: Path, fold: int,
                    config: CrossValConfig, device: torch.device, callbacks: Callbacks = Callbacks()) -> None:
    """The fold's stage-1 models, DDPM and/or L1 regressor (each skipped when its weights exist, resumed from a
    checkpoint)."""
    for name, fit, stage in stage_one_models(config):
        run_dir = fold_dir / name
        if not (run_dir / "last.pt").is_file():
            fit(subjects, subjects[:2], preprocess, run_dir, stage,
                _train_config(config, config.ddpm_steps, config.ddpm_lr, fold), device,
                (run_dir / "checkpoint.pt").is_file(), callbacks)


def _sequence_dropout(variant: str) -> float:
    return {"recoseg": SegStageConfig.sequence_dropout, "any-subset": SUBSET_DROPOUT}.get(variant, 0.0)


def train_segmenters(cache: Path, subjects: list[CachedSubject], preprocess: dict, fold_dir: Path, fold: int,
                     config: CrossValConfig, device: torch.device,
                     callbacks: Callbacks = Callbacks()) -> dict[str, Path]:
    """Each variant's segmenter on the fold's training cases; returns their weights by variant."""
    weights = {}
    for variant in config.variants:
        channels = VARIANTS[variant]
        stage = segmenter_stage(channels, widths=config.seg_widths, deep_supervision=config.deep_supervision,
                                batch_dice=config.batch_dice, source_weights=dict(config.source_weights),
                                foreground_region=config.foreground_region,
                                sequence_dropout=_sequence_dropout(variant))
        seg_dir = fold_dir / variant
        if not (seg_dir / "last.pt").is_file():
            # two training cases as the loop's validation log; the folds use the final EMA weights
            fit_seg(cache, subjects, subjects[:2], preprocess, seg_dir, stage,
                    _train_config(config, config.seg_steps, config.seg_lr, fold),
                    fold_dir / config.residual_from / "last.pt",
                    SamplerConfig(), device, (seg_dir / "checkpoint.pt").is_file(), callbacks=callbacks)
        weights[variant] = seg_dir / "last.pt"
    return weights


def _percentile_unit(volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """BraSyn normalization: clip at the volume's own 0.5 and 99.5 percentiles (in the brain), scale to [0, 1]."""
    low, high = np.percentile(volume[brain], [0.5, 99.5])
    return np.where(brain, (np.clip(volume, low, high) - low) / max(high - low, 1e-6), 0.0)


def stage_one_scores(folder: Path, models: dict, preprocess: PreprocessConfig) -> dict[str, float]:
    """BraSyn-protocol SSIM/PSNR of each stage-1 model's T1ce and of the real T1 standing in for it, with each
    model's ET/healthy residual ratio, on one held-out case."""
    prepared = prepare_patient(discover_patient(folder), preprocess)
    volumes = prepared.volumes
    if volumes.seg is None:
        raise InputError(f"{folder}: cross-validation needs a segmentation file in every case")
    brain, spacing = prepared.sliced.volume_brain, volumes.zooms
    real = _percentile_unit(volumes.images["t1ce"], brain)
    tumour = region_mask(volumes.seg, "whole")
    enhancing = region_mask(volumes.seg, "enhancing") & brain
    far = ndimage.distance_transform_edt(~tumour, sampling=spacing) > 3.0
    candidates = {"t1": volumes.images["t1"]}
    scores = {}
    for name, model in models.items():
        synth = model.synthesize(prepared.conditions, prepared.sliced.brain, SamplerConfig(), start=prepared.t1ce)
        candidates[name] = restack_in_brain(prepared, synth)
        if enhancing.any():
            residual = restack_in_brain(prepared, residual_slices(prepared, synth))
            scores[f"{name}_residual_ratio"] = residual_ratio(residual, enhancing, brain & far)
    for name, candidate in candidates.items():
        metrics = region_synthesis_metrics(real, _percentile_unit(candidate, brain), brain, tumour, spacing, 1.0)
        scores.update({f"{name}_{key}": value for key, value in metrics.items()})
    return scores


def evaluate_case(segmenter: Segmenter, folder: Path) -> dict:
    """Metrics of one held-out case for every post-processing candidate."""
    patient = discover_patient(folder)
    return score_prediction(patient.case_id, segmenter.predict(patient))


def score_prediction(case_id: str, prediction: Prediction) -> dict:
    """Metrics of one case's region probabilities for every post-processing candidate."""
    volumes = prediction.prepared.volumes
    if volumes.seg is None:
        raise InputError(f"{case_id}: cross-validation needs a segmentation file in every case")
    return {"case_id": case_id, "seconds": prediction.seconds,
            "postprocess": [region_metrics(region_masks(prediction.labelled(), candidate, prediction.voxel_ml),
                                           volumes.seg, volumes.zooms) for candidate in POSTPROCESS_CANDIDATES]}


def _score_stage_one(fold_dir: Path, held_out: list[str], folders: dict[str, Path], config: CrossValConfig,
                     device: torch.device) -> list[dict]:
    """Stage-1 scores of the fold's held-out cases (cached in ``stage1.json``)."""
    path = fold_dir / "stage1.json"
    if not path.is_file():
        trained = trained_stage_one(config)
        models = {name: build_synthesizer(load_weights(fold_dir / folder / "last.pt", (folder,)), device, config.bf16)
                  for name, folder in (("synth", "ddpm"), ("l1", "regressor")) if folder in trained}
        write_json(path, {"cases": [{"case_id": case, **stage_one_scores(folders[case], models,
                                                                         PreprocessConfig(size=config.size))}
                                    for case in held_out]})
    return json.loads(path.read_text())["cases"]


def run_crossval(data: Path, output: Path, config: CrossValConfig, device: str = "auto",
                 callbacks: Callbacks = Callbacks(), on_progress: Callable[[str], None] | None = None,
                 only_fold: int | None = None) -> dict | None:
    """Train and score every fold (resuming finished parts), then write ``results.json`` and ``results.md``.

    With ``only_fold``, train and score that fold alone and return None: separate processes (or machines
    sharing the folder) can then run folds side by side, and a last run without it writes the summary.
    """
    torch_device = resolve_device(device)
    output = Path(output)
    _claim(output, config)
    cache, manifest, subjects = load_training_cache(data, output, PreprocessConfig(size=config.size), 1, 0.0,
                                                    config.seed)
    unlabelled = [s.case_id for s in subjects if s.seg is None]
    if unlabelled:
        raise InputError(f"{data}: cross-validation needs labels; no segmentation for {', '.join(unlabelled)}")
    sources = sorted(s.case_id for s in subjects if source_case(s.case_id) == s.case_id)[:config.max_cases]
    subjects = [s for s in subjects if source_case(s.case_id) in sources]
    folds = assign_folds(sources, config.folds, config.seed)
    folders = {entry["case_id"]: Path(entry["folder"]) for entry in manifest["subjects"]}
    cases: dict[str, list[dict]] = {variant: [] for variant in config.variants}
    stage_one: list[dict] = []
    if only_fold is not None and not 0 <= only_fold < config.folds:
        raise InputError(f"--only-fold {only_fold}: choose a fold from 0 to {config.folds - 1}")
    for fold in range(config.folds) if only_fold is None else (only_fold,):
        fold_dir = output / f"fold{fold}"
        training = [s for s in subjects if folds[source_case(s.case_id)] != fold]  # clinical variants go along
        held_out = sorted(c for c, f in folds.items() if f == fold)
        fold_dir.mkdir(parents=True, exist_ok=True)
        write_json(fold_dir / "cases.json", {"train": [s.case_id for s in training], "test": held_out})
        if on_progress:
            on_progress(f"fold {fold}: {len(training)} training cases, {len(held_out)} held out")
        train_stage_one(training, manifest["config"], fold_dir, fold, config, torch_device, callbacks)
        weights = train_segmenters(cache, training, manifest["config"], fold_dir, fold, config, torch_device,
                                   callbacks)
        for variant, path in weights.items():
            scores_path = fold_dir / variant / "scores.json"
            if not scores_path.is_file():
                segmenter = Segmenter(path, device, bf16=config.bf16)
                scores = []
                for case in held_out:
                    scores.append({**evaluate_case(segmenter, folders[case]), "fold": fold})
                    if on_progress:
                        on_progress(f"fold {fold} {variant}: scored {case}")
                write_json(scores_path, {"cases": scores})
            cases[variant] += json.loads(scores_path.read_text())["cases"]
        stage_one += _score_stage_one(fold_dir, held_out, folders, config, torch_device)
    if only_fold is not None:
        return None
    results = summarize(cases, stage_one, config, folds, str(data))
    write_json(output / "results.json", results)
    write_atomically(output / "results.md", lambda tmp: tmp.write_text(results_markdown(results)))
    return results


def _claim(output: Path, config: CrossValConfig) -> None:
    """Record the run's configuration in ``output``; refuse a folder that holds a run with another one."""
    record = output / "crossval.json"
    if record.is_file():
        if CrossValConfig.from_record(json.loads(record.read_text())) != config:
            raise InputError(f"{output}: holds a cross-validation with another configuration; use another folder")
        return
    output.mkdir(parents=True, exist_ok=True)
    write_json(record, config.to_dict())


def region_summary(cases: list[dict], candidate: int) -> dict:
    """Per region: Dice, HD95 and lesion-wise Dice statistics over cases; whole tumour also per-slice Dice."""
    out = {}
    for region in REGIONS:
        metrics = [case["postprocess"][candidate][region] for case in cases]
        out[region] = {key: summary_stats([m[key] for m in metrics]) for key in ("dice", "hd95", "lesion_dice")}
    out["whole"]["slice_dice"] = summary_stats([case["postprocess"][candidate]["whole"]["slice_dice_mean"]
                                                for case in cases])
    return out


def choose_postprocess(cases: list[dict]) -> int:
    """Index of the candidate with the best mean Dice over WT, TC and ET (the first, least aggressive, on ties)."""
    scores = [np.mean([np.mean([case["postprocess"][k][r]["dice"] for case in cases]) for r in REGIONS])
              for k in range(len(POSTPROCESS_CANDIDATES))]
    return int(np.argmax(np.round(scores, 4)))


def summarize(cases: dict[str, list[dict]], stage_one: list[dict], config: CrossValConfig, folds: dict[str, int],
              data: str) -> dict:
    """Overall and per-fold statistics for each variant, with no post-processing and with the chosen one,
    the paired difference between the variants per region, and the stage-1 scores."""
    chosen = choose_postprocess(cases["recoseg"] if "recoseg" in cases else next(iter(cases.values())))
    results = {"data": data, "cases": len(folds), "machine": machine_description(), "config": config.to_dict(),
               "folds": folds, "postprocess_candidates": [c.to_dict() for c in POSTPROCESS_CANDIDATES],
               "chosen_postprocess": chosen, "variants": {}}
    for variant, variant_cases in cases.items():
        entry = {"none": region_summary(variant_cases, 0), "chosen": region_summary(variant_cases, chosen),
                 "per_fold": {str(f): region_summary([c for c in variant_cases if c["fold"] == f], chosen)
                              for f in range(config.folds)},
                 "per_institution": {name: region_summary([c for c in variant_cases
                                                           if institution(c["case_id"]) == name], chosen)
                                     for name in sorted({institution(c["case_id"]) for c in variant_cases})},
                 "cases": variant_cases}
        results["variants"][variant] = entry
    keys = sorted({k for case in stage_one for k in case if k != "case_id"})
    results["stage_one"] = {"cases": stage_one, **{k: summary_stats([c.get(k) for c in stage_one]) for k in keys}}
    if {"recoseg", "modalities"} <= set(cases):
        def dices(variant: str, region: str) -> list[float]:
            by_case = {c["case_id"]: c["postprocess"][chosen][region]["dice"] for c in cases[variant]}
            return [by_case[case] for case in sorted(by_case)]
        results["residual_effect"] = {region: paired_difference(dices("recoseg", region), dices("modalities", region))
                                      for region in REGIONS}
    return results


def _cell(stats: dict, digits: int = 3) -> str:
    return (f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f} (median {stats['median']:.{digits}f}, "
            f"{stats['min']:.{digits}f}–{stats['max']:.{digits}f})")


def _group_row(name: str, summary: dict) -> str:
    """One table row of a group of cases: its size, mean Dice per region and median WT HD95."""
    return (f"| {name} | {summary['whole']['dice']['n']} | "
            + " | ".join(f"{summary[r]['dice']['mean']:.3f}" for r in REGIONS)
            + f" | {summary['whole']['hd95']['median']:.1f} |")


def stage_one_markdown(stage_one: dict) -> list[str]:
    """The stage-1 table: each stand-in for T1ce against the real T1ce, and the residual ratios."""
    lines = ["## Stage 1 on held-out cases", "", "BraSyn protocol: each volume clipped at its own 0.5–99.5 percentiles "
             "in the brain and scaled to [0, 1]; 3D SSIM and PSNR against the real T1ce inside healthy brain and "
             "inside the tumour.", "",
             "| image standing in for T1ce | healthy SSIM | healthy PSNR (dB) | tumour SSIM | tumour PSNR (dB) |",
             "| --- | --- | --- | --- | --- |"]
    scored = [name for name in STAGE_ONE_LABELS if f"{name}_healthy_ssim" in stage_one]
    for name in scored:
        label = STAGE_ONE_LABELS[name]
        lines.append(f"| {label} | " + " | ".join(_cell(stage_one[f"{name}_{key}"], 3 if key.endswith("ssim") else 1)
                                                  for key in ("healthy_ssim", "healthy_psnr", "tumour_ssim",
                                                              "tumour_psnr")) + " |")
    lines += ["", "Residual |T1ce − stand-in| in enhancing tumour over that in healthy brain (3 mm or more from the "
                  "tumour), over the cases with enhancing tumour:", ""]
    for name in (n for n in scored if n != "t1"):
        ratio = stage_one[f"{name}_residual_ratio"]
        lines.append(f"- {STAGE_ONE_LABELS[name]}: {_cell(ratio, 2)} ({ratio['n']} cases)")
    return lines + [""]


def stage_one_names(config: CrossValConfig) -> str:
    """The stage-1 models each fold trains, in words."""
    return " and ".join({"ddpm": "DDPM", "regressor": "L1 regressor"}[folder] for folder in trained_stage_one(config))


def results_markdown(results: dict) -> str:
    """A human-readable summary of ``results.json``."""
    config = CrossValConfig.from_record(results["config"])
    chosen = POSTPROCESS_CANDIDATES[results["chosen_postprocess"]]
    lines = [f"# Cross-validation: {results['cases']} cases of {results['data']}, {config.folds} folds by patient",
             "", f"Machine: {results['machine']}. Per fold: "
             f"{stage_one_names(config)} {config.ddpm_steps} steps each "
             f"(lr {config.ddpm_lr}), segmenters {config.seg_steps} steps (residual from the "
             f"{'L1 regressor' if config.residual_from == 'regressor' else 'DDPM'}, lr {config.seg_lr}, widths "
             f"{list(config.seg_widths)}{', batch Dice' if config.batch_dice else ''}"
             f"{', deep supervision' if config.deep_supervision else ''}), batch {config.batch_size}, "
             f"slices {config.size}², {'bf16 autocast where it pays' if config.bf16 else 'fp32'}, "
             f"seed {config.seed}.",
             "", "Every case is scored once, in its own voxel grid, by the models of the fold that held it out. Dice "
             "counts every case (1 when prediction and truth are both empty, 0 when only one is); HD95 only the "
             "cases where both are non-empty. Values: mean ± std (median, min–max) over cases.", "",
             f"Post-processing chosen by the mean Dice over WT, TC and ET of the `recoseg` variant: "
             f"{chosen.to_dict()}; the `none` tables use no post-processing.", ""]
    for variant, entry in results["variants"].items():
        for label in ("none", "chosen"):
            lines += [f"## {variant}, post-processing: {label}", "", "| region | Dice | HD95 (mm) | lesion-wise Dice |",
                      "| --- | --- | --- | --- |"]
            for region in REGIONS:
                stats = entry[label][region]
                lines.append(f"| {REGION_ABBREVIATIONS[region]} | {_cell(stats['dice'])} | {_cell(stats['hd95'], 1)} | "
                             f"{_cell(stats['lesion_dice'])} |")
            lines += ["", f"Per-slice WT Dice (slices with tumour in the truth): "
                          f"{_cell(entry[label]['whole']['slice_dice'])}", ""]
        lines += [f"### {variant}: per fold (chosen post-processing)", "",
                  "| fold | cases | Dice WT | Dice TC | Dice ET | median HD95 WT (mm) |", "| --- | --- | --- | --- | --- | --- |"]
        for fold, summary in entry["per_fold"].items():
            lines.append(_group_row(fold, summary))
        lines += ["", f"### {variant}: per institution (chosen post-processing)", "",
                  "| institution | cases | Dice WT | Dice TC | Dice ET | median HD95 WT (mm) |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name, summary in entry.get("per_institution", {}).items():
            lines.append(_group_row(name, summary))
        lines.append("")
    if results["stage_one"]["cases"]:
        lines += stage_one_markdown(results["stage_one"])
    if "residual_effect" in results:
        lines += ["## The residual's contribution: Dice of `recoseg` minus `modalities`, paired by case", "",
                  "| region | mean difference | 95% bootstrap CI | cases |", "| --- | --- | --- | --- |"]
        for region, diff in results["residual_effect"].items():
            interval = (f"[{diff['ci_low']:+.3f}, {diff['ci_high']:+.3f}]" if diff["ci_low"] == diff["ci_low"]
                        else "none (under 5 cases)")
            lines.append(f"| {REGION_ABBREVIATIONS[region]} | {diff['mean']:+.3f} | {interval} | {diff['n']} |")
        lines.append("")
    return "\n".join(lines)
