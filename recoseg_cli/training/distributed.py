"""torchrun integration: process group set-up and rank helpers."""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def init_if_launched(device: torch.device) -> bool:
    """Join the process group when started by torchrun; gloo on CPU, nccl on CUDA."""
    if world_size() <= 1 or dist.is_initialized():
        return dist.is_initialized()
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return True


def max_weight_difference(model: torch.nn.Module) -> float:
    """Largest absolute difference between this rank's weights and rank 0's (0.0 when not distributed)."""
    if not dist.is_initialized():
        return 0.0
    worst = torch.zeros(1)
    for parameter in model.parameters():
        reference = parameter.detach().clone()
        dist.broadcast(reference, src=0)
        worst = torch.maximum(worst, (parameter.detach() - reference).abs().max().cpu().reshape(1))
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst.item())


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any rank (keeps ranks stepping in lockstep)."""
    if not dist.is_initialized():
        return flag
    value = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def shutdown() -> None:
    """Leave the process group cleanly (an abandoned gloo group aborts the process at exit)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def exit_worker() -> None:
    """End a torchrun worker: leave the process group, then exit without interpreter teardown, where
    gloo's threads can abort the process."""
    if world_size() > 1:
        shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
