"""The training loop shared by the DDPM, the segmenter and the benchmark baselines."""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from recoseg_cli.devices import autocast
from recoseg_cli.errors import InputError
from recoseg_cli.io.json_io import write_json
from recoseg_cli.io.outputs import write_atomically
from recoseg_cli.models.unet import UNet
from recoseg_cli.training import distributed
from recoseg_cli.weights import save_weights


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; saved with every checkpoint."""

    max_steps: int = 2000
    batch_size: int = 16
    lr: float = 2e-4
    """AdamW's peak learning rate: reached by linear warm-up, then cosine decay to 5% of it (``lr_factor``)."""
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    grad_clip: float = 1.0
    """Largest gradient norm; larger gradients are scaled down to it."""
    ema_decay: float = 0.999
    """Decay of the weights' moving average, which is what validation scores and the weights file holds."""
    val_every: int = 200
    checkpoint_every: int = 100
    seed: int = 0
    bf16: bool = True
    max_minutes: float = 0.0
    """Stop after this many minutes of training (0: no limit); the step count still caps the run."""


class Task:
    """A stage for the loop: its config, a fresh U-Net of ``config.unet``, training and validation data, the slice
    settings and the device. Each stage's subclass gives the batch loss, the validation and the weights' extras."""

    stage = ""

    def __init__(self, config, train, val, preprocess: dict, device: torch.device):
        self.config = config
        self.model: nn.Module = UNet(config.unet)
        self.train, self.val = train, val
        self.preprocess = preprocess
        self.device = device

    def loss(self, model: nn.Module, rng: np.random.Generator, noise: torch.Generator,
             batch_size: int) -> torch.Tensor:
        raise NotImplementedError

    def validate(self, model: nn.Module) -> dict[str, float]:
        raise NotImplementedError

    def config_dict(self) -> dict:
        return self.config.to_dict()

    def weights_extra(self) -> dict:
        raise NotImplementedError


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up then cosine decay to 5% of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))


def ema_update(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """Exponential moving average with warm-up: decay grows as (1 + step) / (10 + step) up to ``decay``."""
    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.mul_(d).add_(p.detach(), alpha=1 - d)
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)


@dataclass
class TrainResult:
    steps: int
    best_step: int
    best_score: float
    history: list[dict]
    seconds: float
    ddp_max_weight_difference: float


def fit(task: Task, config: TrainConfig, run_dir: Path, device: torch.device, resume: bool = False,
        on_step: Callable[[int, float], None] | None = None,
        on_validate: Callable[[dict], None] | None = None) -> TrainResult:
    """Train ``task.model`` for ``config.max_steps`` steps, writing checkpoints and weights into ``run_dir``."""
    run_dir = Path(run_dir)
    distributed.init_if_launched(device)
    rank = distributed.rank()
    model = task.model.to(device).to(memory_format=task.model.memory_format)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, config.warmup_steps, config.max_steps))
    rng = np.random.default_rng([config.seed, rank])
    noise = torch.Generator().manual_seed(config.seed * 1000 + rank)
    state = {"step": 0, "history": [], "best_score": math.inf, "best_step": -1}
    checkpoint = run_dir / "checkpoint.pt"
    if resume:
        if not checkpoint.is_file():
            raise InputError(f"{checkpoint}: nothing to resume (no checkpoint in the run folder)")
        _restore(checkpoint, task, config, model, ema, optimizer, scheduler, rng, noise, state)
    elif checkpoint.is_file():
        raise InputError(f"{run_dir}: holds a training checkpoint already; use --resume or another run folder")
    trainable = model
    if distributed.world_size() > 1:
        trainable = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    run_dir.mkdir(parents=True, exist_ok=True)
    if distributed.is_main():
        write_json(run_dir / "config.json", {"stage": task.stage, "stage_config": task.config_dict(),
                                               "train_config": asdict(config)})
    start = time.perf_counter()
    step = state["step"]
    while step < config.max_steps:
        out_of_time = bool(config.max_minutes) and (time.perf_counter() - start) / 60 >= config.max_minutes
        if distributed.any_rank(out_of_time):
            break
        model.train()
        with autocast(device, config.bf16):
            loss = task.loss(trainable, rng, noise, config.batch_size)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        ema_update(ema, model, config.ema_decay, step)
        step += 1
        state["step"] = step
        if on_step:
            on_step(step, float(loss.detach()))
        last = step == config.max_steps
        if step % config.val_every == 0 or last:
            _validate(task, model, ema, device, config, step, state, run_dir)
            if on_validate:
                on_validate(state["history"][-1])
        if step % config.checkpoint_every == 0 or last:
            _save_checkpoint(checkpoint, task, config, model, ema, optimizer, scheduler, rng, noise, state)
    if state["history"] == [] or state["history"][-1]["step"] != step:
        _validate(task, model, ema, device, config, step, state, run_dir)
        _save_checkpoint(checkpoint, task, config, model, ema, optimizer, scheduler, rng, noise, state)
    difference = distributed.max_weight_difference(model)
    if distributed.is_main():
        save_weights(run_dir / "last.pt", task.stage, ema, task.weights_extra())
        write_json(run_dir / "history.json", {"history": state["history"], "best_step": state["best_step"],
                                                "best_score": state["best_score"],
                                                "ddp_world_size": distributed.world_size(),
                                                "ddp_max_weight_difference": difference})
    return TrainResult(step, state["best_step"], state["best_score"], state["history"],
                       time.perf_counter() - start, difference)


def _validate(task: Task, model, ema, device, config: TrainConfig, step: int, state: dict, run_dir: Path) -> None:
    """Score raw and EMA weights; keep the EMA weights with the best (lowest) score as best.pt."""
    entry: dict = {"step": step}
    for name, net in (("raw", model), ("ema", ema)):
        net.eval()
        with torch.no_grad(), autocast(device, config.bf16):
            scores = task.validate(net)
        entry.update({f"{name}_{k}": v for k, v in scores.items()})
    state["history"].append(entry)
    score = entry["ema_score"]
    if score < state["best_score"]:
        state["best_score"], state["best_step"] = score, step
        if distributed.is_main():
            save_weights(run_dir / "best.pt", task.stage, ema, task.weights_extra())


def _save_checkpoint(path: Path, task: Task, config: TrainConfig, model, ema, optimizer, scheduler,
                     rng: np.random.Generator, noise: torch.Generator, state: dict) -> None:
    if not distributed.is_main():
        return
    payload = {
        "stage": task.stage, "stage_config": task.config_dict(), "train_config": asdict(config),
        "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "numpy_rng": json.dumps(rng.bit_generator.state),
        "torch_rng": noise.get_state(), "torch_global_rng": torch.get_rng_state(), "state": json.dumps(state),
    }
    write_atomically(path, lambda tmp: torch.save(payload, tmp))


def _restore(path: Path, task: Task, config: TrainConfig, model, ema, optimizer, scheduler,
             rng: np.random.Generator, noise: torch.Generator, state: dict) -> None:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{path}: unreadable checkpoint ({exc.__class__.__name__})") from None
    if payload.get("stage") != task.stage or payload.get("stage_config") != task.config_dict():
        raise InputError(f"{path}: checkpoint was made for another stage or configuration; use a new run folder")
    model.load_state_dict(payload["model"])
    ema.load_state_dict(payload["ema"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    rng.bit_generator.state = json.loads(payload["numpy_rng"])
    noise.set_state(payload["torch_rng"])
    torch.set_rng_state(payload["torch_global_rng"])
    state.update(json.loads(payload["state"]))

