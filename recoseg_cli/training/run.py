"""Stage training entry points used by ``recoseg train`` and the benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from recoseg_cli.devices import resolve_device
from recoseg_cli.preprocess import PreprocessConfig
from recoseg_cli.training.data import load_training_cache, split_slice_sets
from recoseg_cli.training.ddpm_task import DDPMStageConfig, DDPMTask
from recoseg_cli.training.loop import TrainConfig, TrainResult, fit


def steps_for_epochs(epochs: float, slices: int, batch_size: int) -> int:
    return max(1, int(round(epochs * slices / batch_size)))


def train_ddpm(data: Path, run_dir: Path, stage: DDPMStageConfig, train: TrainConfig, preprocess: PreprocessConfig,
               device: str = "auto", resume: bool = False, epochs: float | None = None, workers: int = 1,
               val_fraction: float = 0.2, on_start: Callable[[int], None] | None = None,
               on_step: Callable[[int, float], None] | None = None,
               on_validate: Callable[[dict], None] | None = None) -> TrainResult:
    """Train the conditional DDPM on every subject of ``data`` (labels optional)."""
    torch_device = resolve_device(device)
    manifest, subjects = load_training_cache(data, Path(run_dir), preprocess, workers, val_fraction, train.seed)
    train_set, val_set = split_slice_sets(subjects)
    if epochs is not None:
        train = TrainConfig(**{**train.__dict__, "max_steps": steps_for_epochs(epochs, len(train_set), train.batch_size)})
    torch.manual_seed(train.seed)
    task = DDPMTask(stage, train_set, val_set, manifest["config"], torch_device)
    if on_start:
        on_start(train.max_steps)
    return fit(task, train, Path(run_dir), torch_device, resume, on_step, on_validate)
