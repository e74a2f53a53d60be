"""Stage training entry points used by ``recoseg train`` and the benchmark."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from recoseg_cli.data.cache import CachedSubject
from recoseg_cli.data.slices import SliceSet
from recoseg_cli.data.synthesis_cache import cached_synthesis
from recoseg_cli.devices import resolve_device
from recoseg_cli.diffusion.sampler_config import SamplerConfig
from recoseg_cli.errors import InputError
from recoseg_cli.models.unet import UNetConfig
from recoseg_cli.networks import build_synthesizer, synthesizer_weights
from recoseg_cli.pipeline import needs_synthesis
from recoseg_cli.preprocess import PreprocessConfig
from recoseg_cli.regions import region_mask
from recoseg_cli.training.data import load_training_cache, split_slice_sets
from recoseg_cli.training.ddpm_task import DDPMStageConfig, DDPMTask
from recoseg_cli.training.loop import TrainConfig, TrainResult, fit
from recoseg_cli.training.regressor_task import RegressorStageConfig, RegressorTask
from recoseg_cli.training.seg3d_task import Seg3DStageConfig, Seg3DTask
from recoseg_cli.training.seg_task import SegStageConfig, SegTask, select_labelled
from recoseg_cli.weights import load_weights


@dataclass
class Callbacks:
    """Progress hooks for a training run."""

    on_start: Callable[[str, int], None] | None = None
    on_step: Callable[[int, float], None] | None = None
    on_validate: Callable[[dict], None] | None = None


def steps_for_epochs(epochs: float, slices: int, batch_size: int) -> int:
    return max(1, int(round(epochs * slices / batch_size)))


def _with_epochs(train: TrainConfig, epochs: float | None, slices: int) -> TrainConfig:
    return train if epochs is None else replace(train, max_steps=steps_for_epochs(epochs, slices, train.batch_size))


def initialise_from(task, path: Path | None) -> None:
    """Start ``task.model`` from a weights file of the same stage and network shape (fine-tuning)."""
    if path is None:
        return
    weights = load_weights(path, (task.stage,))
    if UNetConfig.from_dict(weights.model_config) != task.model.config:
        raise InputError(f"{path}: its network ({weights.model_config}) differs from this run's "
                         f"({task.model.config.to_dict()})")
    task.model.load_state_dict(weights.state_dict)


def _fit_new_task(name: str, make_task: Callable[[], object], train: TrainConfig, epochs: float | None, slices: int,
                  run_dir: Path, device: torch.device, resume: bool, init_weights: Path | None,
                  callbacks: Callbacks) -> TrainResult:
    """Seed, build the task (its model's initial weights follow the seed), optionally fine-tune from weights, fit."""
    train = _with_epochs(train, epochs, slices)
    torch.manual_seed(train.seed)
    task = make_task()
    initialise_from(task, init_weights)
    if callbacks.on_start:
        callbacks.on_start(name, train.max_steps)
    return fit(task, train, Path(run_dir), device, resume, callbacks.on_step, callbacks.on_validate)


def _train_on_every_subject(name: str, make_task: Callable, data: Path, run_dir: Path, train: TrainConfig,
                            preprocess: PreprocessConfig, device: str, resume: bool, epochs: float | None,
                            workers: int, val_fraction: float, callbacks: Callbacks,
                            init_weights: Path | None) -> TrainResult:
    """Train a stage-1 model (labels not needed) on every subject of ``data``."""
    torch_device = resolve_device(device)
    _, manifest, subjects = load_training_cache(data, Path(run_dir), preprocess, workers, val_fraction, train.seed)
    train_set, val_set = split_slice_sets(subjects)
    return _fit_new_task(name, lambda: make_task(train_set, val_set, manifest["config"], torch_device), train, epochs,
                         len(train_set), run_dir, torch_device, resume, init_weights, callbacks)


def _fit_stage_one(name: str, make_task: Callable, train_subjects: list[CachedSubject],
                   val_subjects: list[CachedSubject], run_dir: Path, train: TrainConfig, device: torch.device,
                   resume: bool, callbacks: Callbacks) -> TrainResult:
    train_set, val_set = SliceSet.from_subjects(train_subjects), SliceSet.from_subjects(val_subjects)
    return _fit_new_task(name, lambda: make_task(train_set, val_set), train, None, len(train_set), run_dir, device,
                         resume, None, callbacks)


def fit_ddpm(train_subjects: list[CachedSubject], val_subjects: list[CachedSubject], preprocess: dict, run_dir: Path,
             stage: DDPMStageConfig, train: TrainConfig, device: torch.device, resume: bool = False,
             callbacks: Callbacks = Callbacks()) -> TrainResult:
    """Train the conditional DDPM on given cached subjects (the cross-validation's per-fold entry point)."""
    return _fit_stage_one("ddpm", lambda train_set, val_set: DDPMTask(stage, train_set, val_set, preprocess, device),
                          train_subjects, val_subjects, run_dir, train, device, resume, callbacks)


def fit_regressor(train_subjects: list[CachedSubject], val_subjects: list[CachedSubject], preprocess: dict,
                  run_dir: Path, stage: RegressorStageConfig, train: TrainConfig, device: torch.device,
                  resume: bool = False, callbacks: Callbacks = Callbacks()) -> TrainResult:
    """Train the L1 regressor (stage 1's deterministic reference) on given cached subjects."""
    return _fit_stage_one("regressor",
                          lambda train_set, val_set: RegressorTask(stage, train_set, val_set, preprocess, device),
                          train_subjects, val_subjects, run_dir, train, device, resume, callbacks)


def train_ddpm(data: Path, run_dir: Path, stage: DDPMStageConfig, train: TrainConfig, preprocess: PreprocessConfig,
               device: str = "auto", resume: bool = False, epochs: float | None = None, workers: int = 1,
               val_fraction: float = 0.2, callbacks: Callbacks = Callbacks(),
               init_weights: Path | None = None) -> TrainResult:
    """Train the conditional DDPM on every subject of ``data`` (labels optional)."""
    return _train_on_every_subject("ddpm", lambda *args: DDPMTask(stage, *args), data, run_dir, train, preprocess,
                                   device, resume, epochs, workers, val_fraction, callbacks, init_weights)


def train_regressor(data: Path, run_dir: Path, stage: RegressorStageConfig, train: TrainConfig,
                    preprocess: PreprocessConfig, device: str = "auto", resume: bool = False,
                    epochs: float | None = None, workers: int = 1, val_fraction: float = 0.2,
                    callbacks: Callbacks = Callbacks(), init_weights: Path | None = None) -> TrainResult:
    """Train the deterministic T1ce regressor (the stage-1 baseline) on every subject of ``data``."""
    return _train_on_every_subject("regressor", lambda *args: RegressorTask(stage, *args), data, run_dir, train,
                                   preprocess, device, resume, epochs, workers, val_fraction, callbacks,
                                   init_weights)


def labelled_split(subjects: list[CachedSubject], fraction: float, seed: int,
                   data: Path) -> tuple[list[CachedSubject], list[CachedSubject]]:
    """Labelled training subjects (a ``fraction`` of them, chosen by subject with the seed) and validation ones."""
    labelled = [s for s in subjects if s.seg is not None]
    with_enhancing = {s.case_id for s in labelled if region_mask(s.seg, "enhancing").any()}
    training = [s.case_id for s in labelled if s.split == "train"]
    chosen = set(select_labelled(training, fraction, seed, with_enhancing))
    train_subjects = [s for s in labelled if s.case_id in chosen]
    if not train_subjects:
        raise InputError(f"{data}: no labelled training subjects")
    return train_subjects, [s for s in labelled if s.split == "val"] or train_subjects[-1:]


def train_seg3d(data: Path, run_dir: Path, stage: Seg3DStageConfig, train: TrainConfig, preprocess: PreprocessConfig,
                device: str = "auto", resume: bool = False, epochs: float | None = None, workers: int = 1,
                val_fraction: float = 0.2, callbacks: Callbacks = Callbacks(),
                init_weights: Path | None = None) -> TrainResult:
    """Train the 3D U-Net baseline on patches of a labelled fraction of the training subjects."""
    if needs_synthesis(stage.channels):
        raise InputError("the 3D baseline takes modality channels only")
    torch_device = resolve_device(device)
    _, manifest, subjects = load_training_cache(data, Path(run_dir), preprocess, workers, val_fraction, train.seed)
    train_subjects, val_subjects = labelled_split(subjects, stage.label_fraction, train.seed, data)
    train_set, val_set = SliceSet.from_subjects(train_subjects), SliceSet.from_subjects(val_subjects)
    return _fit_new_task("seg3d", lambda: Seg3DTask(stage, train_set, val_set, manifest["config"], torch_device),
                         train, epochs, len(train_set), run_dir, torch_device, resume, init_weights, callbacks)


def train_seg(data: Path, run_dir: Path, stage: SegStageConfig, train: TrainConfig, preprocess: PreprocessConfig,
              ddpm_weights: Path | None, sampler: SamplerConfig, device: str = "auto", resume: bool = False,
              epochs: float | None = None, workers: int = 1, val_fraction: float = 0.2,
              callbacks: Callbacks = Callbacks(), init_weights: Path | None = None) -> TrainResult:
    """Train the segmenter on a labelled fraction of the training subjects (chosen by subject with the seed)."""
    torch_device = resolve_device(device)
    cache, manifest, subjects = load_training_cache(data, Path(run_dir), preprocess, workers, val_fraction, train.seed)
    train_subjects, val_subjects = labelled_split(subjects, stage.label_fraction, train.seed, data)
    return fit_seg(cache, train_subjects, val_subjects, manifest["config"], run_dir, stage, train, ddpm_weights,
                   sampler, torch_device, resume, epochs, callbacks, init_weights)


def fit_seg(cache: Path, train_subjects: list[CachedSubject], val_subjects: list[CachedSubject], preprocess: dict,
            run_dir: Path, stage: SegStageConfig, train: TrainConfig, ddpm_weights: Path | None,
            sampler: SamplerConfig, device: torch.device, resume: bool = False, epochs: float | None = None,
            callbacks: Callbacks = Callbacks(), init_weights: Path | None = None) -> TrainResult:
    """Train the segmenter on given cached subjects, with residuals from ``ddpm_weights`` when its inputs need them."""
    ddpm_payload = None
    train_set, val_set = SliceSet.from_subjects(train_subjects), SliceSet.from_subjects(val_subjects)
    if needs_synthesis(stage.channels) or ("t1ce" in stage.channels and stage.sequence_dropout > 0):
        if ddpm_weights is None:
            raise InputError("--ddpm-weights is needed: the segmenter's inputs (or --sequence-dropout) use the "
                             "synthetic T1ce")
        weights = synthesizer_weights(load_weights(ddpm_weights, ("ddpm", "regressor", "seg")))
        if weights.extra["preprocess"] != preprocess:
            raise InputError(f"{ddpm_weights}: DDPM was trained on slices {weights.extra['preprocess']}, "
                             f"the data has {preprocess}")
        synthesizer = build_synthesizer(weights, device)
        if callbacks.on_start:
            callbacks.on_start("synthesis", len(train_subjects) + len(val_subjects))
        done = iter(range(1, len(train_subjects) + len(val_subjects) + 1))
        synth = cached_synthesis(cache, train_subjects + val_subjects, synthesizer, weights.sha256, sampler,
                                 on_subject=lambda case: callbacks.on_step and callbacks.on_step(next(done), float("nan")))
        train_set, val_set = train_set.with_synth(synth), val_set.with_synth(synth)
        ddpm_payload = weights.payload()
    return _fit_new_task("seg", lambda: SegTask(stage, train_set, val_set, preprocess, device, ddpm_payload, sampler),
                         train, epochs, len(train_set), run_dir, device, resume, init_weights, callbacks)


def train_stages(stage: str, data: Path, output: Path, train: TrainConfig, preprocess: PreprocessConfig,
                 ddpm: DDPMStageConfig, seg: SegStageConfig, regressor: RegressorStageConfig,
                 ddpm_weights: Path | None, sampler: SamplerConfig, **common) -> list[tuple[Path, TrainResult]]:
    """Run ``--stage`` ddpm, seg, regressor or all (ddpm into OUTPUT/ddpm, then seg into OUTPUT/seg)."""
    results = []
    if stage == "regressor":
        results.append((output, train_regressor(data, output, regressor, train, preprocess, **common)))
    if stage in ("ddpm", "all"):
        ddpm_dir = output / "ddpm" if stage == "all" else output
        results.append((ddpm_dir, train_ddpm(data, ddpm_dir, ddpm, train, preprocess, **common)))
        if stage == "all":
            ddpm_weights = ddpm_dir / "best.pt"
    if stage in ("seg", "all"):
        seg_dir = output / "seg" if stage == "all" else output
        results.append((seg_dir, train_seg(data, seg_dir, seg, train, preprocess, ddpm_weights, sampler, **common)))
    return results
