"""Weights exported to ONNX and run by ONNX Runtime: `segment` on a CPU without importing torch.

A weights file ``NAME.pt`` whose stage 1 is the L1 regressor (or which has no stage 1) exports to ``NAME.onnx``
(the segmenter) and ``NAME.stage1.onnx`` (the regressor) beside it. Each ONNX file carries, as metadata, the
stage, network shape and settings of its network and the sha256 of the weights file it came from, so an export
that no longer matches its weights is never used. A DDPM's stage 1 samples with torch and does not export.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from recoseg_cli.errors import WeightsError
from recoseg_cli.slice_networks import Regressor, SegmentationNet
from recoseg_cli.weights import Weights, sha256_of

METADATA_KEY = "recoseg"
OPSET = 17


def onnx_files(weights_path: Path) -> tuple[Path, Path]:
    """Where the export of a weights file lies: the segmenter's and stage 1's ONNX files beside it."""
    weights_path = Path(weights_path)
    return weights_path.with_suffix(".onnx"), weights_path.with_suffix(".stage1.onnx")


def cpu_threads() -> int:
    """The cores this process may run on (its affinity, which cluster schedulers set)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class OnnxSlices:
    """A time-free U-Net exported to ONNX, run by ONNX Runtime on the CPU in fp32; ``metadata`` is what the export
    recorded (stage, model_config, extra, source_sha256)."""

    def __init__(self, path: Path):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = cpu_threads()
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self.metadata = json.loads(self.session.get_modelmeta().custom_metadata_map[METADATA_KEY])
        except Exception as exc:
            raise WeightsError(f"{path}: not a readable recoseg ONNX file ({exc.__class__.__name__})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.out_channels = int(self.metadata["model_config"]["out_channels"])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]

    def weights(self, path: Path, sha256: str) -> Weights:
        """The recorded settings as a ``Weights`` without tensors, for the weights file at ``path``."""
        meta = self.metadata
        return Weights(path, meta["stage"], meta["model_config"], {}, meta["extra"], sha256)


def load_onnx_model(weights_path: Path, checksums: tuple[str | None, ...] = (None, None, None)
                    ) -> tuple[Weights, SegmentationNet, Regressor | None]:
    """The segmenter (and regressor, when the weights have one) exported from ``weights_path``, with the weights
    file's path and sha256 as their provenance; ``checksums`` are the recorded sha256 of the weights file and of
    its two ONNX files (bundled weights). Refuses an export that does not match the weights file."""
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise WeightsError(f"{weights_path}: weights file not found")
    segmenter_path, stage_one_path = onnx_files(weights_path)
    paths = (weights_path, segmenter_path, stage_one_path)
    digests = {path: sha256_of(path) for path in paths if path.is_file()}
    for path, expected in zip(paths, checksums):
        if expected is not None and path in digests and digests[path] != expected:
            raise WeightsError(f"{path}: sha256 does not match the recorded one; the file is corrupt or was replaced")
    networks = [OnnxSlices(segmenter_path)]
    if networks[0].metadata["stage_one"]:
        if not stage_one_path.is_file():
            raise WeightsError(f"{stage_one_path}: not found; {segmenter_path.name} needs its stage 1 beside it")
        networks.append(OnnxSlices(stage_one_path))
    for path, network in zip((segmenter_path, stage_one_path), networks):
        if network.metadata["source_sha256"] != digests[weights_path]:
            raise WeightsError(f"{path}: was exported from other weights than {weights_path.name}; "
                               f"export it again (recoseg export-onnx {weights_path})")
    stage_one = Regressor(networks[1]) if len(networks) > 1 else None
    return networks[0].weights(weights_path, digests[weights_path]), SegmentationNet(networks[0]), stage_one


def has_onnx_export(weights_path: Path) -> bool:
    """Whether the weights file has an ONNX export beside it."""
    return onnx_files(weights_path)[0].is_file()


def export_onnx(weights_path: Path) -> list[Path]:
    """Export a segmenter weights file (and its regressor stage 1) to ONNX beside it; returns the files written."""
    import torch

    from recoseg_cli.io.outputs import write_atomically
    from recoseg_cli.networks import stage_one_of, unet_from_weights
    from recoseg_cli.weights import load_weights

    weights = load_weights(Path(weights_path), ("seg",))
    stage_one = stage_one_of(weights)
    if stage_one is not None and stage_one.stage != "regressor":
        raise WeightsError(f"{weights_path}: stage 1 is a {stage_one.stage}, which samples with torch; only weights "
                           "whose stage 1 is the L1 regressor (or that have none) export to ONNX")
    extra = {k: v for k, v in weights.extra.items() if k != "ddpm"}
    segmenter_path, stage_one_path = onnx_files(weights_path)
    parts = [(segmenter_path, weights, extra, stage_one.stage if stage_one else None)]
    if stage_one is not None:
        parts.append((stage_one_path, stage_one, stage_one.extra, None))
    size = int(weights.extra["preprocess"]["size"])
    for path, part, part_extra, part_stage_one in parts:
        model = unet_from_weights(part).eval()
        example = torch.zeros(2, model.config.in_channels, size, size)
        metadata = {"stage": part.stage, "model_config": part.model_config, "extra": part_extra,
                    "source_sha256": weights.sha256, "stage_one": part_stage_one}
        write_atomically(path, lambda tmp: _write_onnx(tmp, model, example, metadata))
    return [part[0] for part in parts]


def _write_onnx(path: Path, model, example, metadata: dict) -> None:
    """One network as ONNX (batch and slice size left free) with ``metadata`` under ``METADATA_KEY``."""
    import warnings

    import onnx
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notices
        torch.onnx.export(model, (example,), str(path), input_names=["slices"], output_names=["outputs"],
                          dynamic_axes={"slices": {0: "batch", 2: "height", 3: "width"},
                                        "outputs": {0: "batch", 2: "height", 3: "width"}},
                          opset_version=OPSET, dynamo=False)
    exported = onnx.load(str(path))
    entry = exported.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata, sort_keys=True)
    onnx.save(exported, str(path))
