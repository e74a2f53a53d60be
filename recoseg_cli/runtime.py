"""Which library runs a segmenter's networks, chosen by what is faster where it runs.

``onnx``: ONNX Runtime on the CPU in fp32, from the weights' ONNX export; `segment` then never imports torch
(about 2 s of a 2-core CPU's command). ``torch``: GPUs, bf16 autocast where it pays (``devices.bf16_pays``), DDPM
sampling, and weights without an export. ``auto`` takes ONNX Runtime where it can run the weights on the CPU and
bf16 does not pay, else torch; `recoseg segment` on a folder of patients asks for torch
(``commands.cohort.COHORT_RUNTIME``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from recoseg_cli.devices import cpu_has_amx, inference_batch_size, precision_name, resolve_device, runs_on_cpu
from recoseg_cli.errors import InputError
from recoseg_cli.onnx_networks import has_onnx_export, load_onnx_model, onnx_files
from recoseg_cli.provenance import installed_version
from recoseg_cli.slice_networks import SegmentationNet
from recoseg_cli.weights import Weights, bundled_checksum, load_weights

Runtime = Literal["auto", "onnx", "torch"]
RUNTIMES = ("auto", "onnx", "torch")


@dataclass
class LoadedModel:
    """A segmenter file's networks, ready to run."""

    weights: Weights
    segmenter: SegmentationNet
    stage_one: object | None
    """Anything with ``synthesize(...)`` (``networks.StageOne``); None for weights without stage 1."""
    runtime: str
    """"onnxruntime" or "torch", with its version."""
    device: object
    """"cpu" (ONNX Runtime) or the ``torch.device``."""
    precision: str
    batch_size: int


def onnx_refusal(path: Path, device: str) -> str | None:
    """Why ONNX Runtime cannot run these weights here (None when it can)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return "ONNX Runtime is not installed (pip install onnxruntime)"
    if not runs_on_cpu(device):
        return f"--device {device}: ONNX Runtime runs the networks on the CPU only here"
    if not has_onnx_export(path):
        return f"{path.name} has no ONNX export beside it (recoseg export-onnx {path})"
    return None


def choose_runtime(runtime: Runtime, path: Path, device: str, bf16: bool) -> str:
    """"onnx" or "torch" for ``--runtime``; an explicit choice that cannot run is refused with the reason."""
    if runtime not in RUNTIMES:
        raise InputError(f"--runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if runtime == "torch":
        return "torch"
    refusal = onnx_refusal(path, device)
    if runtime == "onnx":
        if refusal:
            raise InputError(f"--runtime onnx: {refusal}")
        return "onnx"
    return "onnx" if refusal is None and not (bf16 and cpu_has_amx()) else "torch"


def load_model(path: Path, checksum: str | None, runtime: Runtime, device: str, bf16: bool,
               batch_size: int | None) -> LoadedModel:
    """A segmenter weights file's networks on the chosen runtime; bundled files are checked against their sums."""
    if choose_runtime(runtime, path, device, bf16) == "onnx":
        exported_sums = tuple(bundled_checksum(p.name) if checksum else None for p in onnx_files(path))
        weights, segmenter, stage_one = load_onnx_model(path, (checksum, *exported_sums))
        return LoadedModel(weights, segmenter, stage_one, f"onnxruntime {installed_version('onnxruntime')}", "cpu",
                           "fp32", inference_batch_size("cpu", batch_size))
    import torch

    from recoseg_cli.networks import build_synthesizer, stage_one_of, torch_segmenter

    torch_device = resolve_device(device)
    weights = load_weights(path, ("seg",), checksum)
    embedded = stage_one_of(weights)
    stage_one = build_synthesizer(embedded, torch_device, bf16) if embedded is not None else None
    return LoadedModel(weights, torch_segmenter(weights, torch_device, bf16), stage_one, f"torch {torch.__version__}",
                       torch_device, precision_name(torch_device, bf16), inference_batch_size(torch_device, batch_size))
