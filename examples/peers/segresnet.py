"""MONAI's SegResNet, trained and scored on one fold of the 38 real cases as recoseg's cross-validation is.

    python examples/peers/segresnet.py CASES FOLDS.json FOLD OUT_DIR --cpu-minutes M [--roi 224,224,144]

The BraTS bundle's recipe (MONAI ``brats_mri_segmentation``): SegResNet (16 filters, blocks 1-2-2-4 down and
1-1-1 up, dropout 0.2), three sigmoid outputs (tumour core, whole tumour, enhancing tumour), Dice loss
(squared denominators, smooth_nr 0, smooth_dr 1e-5), Adam at 1e-4 with weight decay 1e-5 and cosine annealing,
batch 1, random crops of ``--roi`` voxels, random flips along each axis, random intensity scale and shift of 0.1;
channel-wise z-scores over the non-zero voxels; sliding-window inference (the crop size, overlap 0.5),
threshold 0.5. Training stops after ``--cpu-minutes`` of the process's CPU time, all its threads together (the
learning rate anneals over that time; CPU time, so that processes sharing cores, or paused, get the same
compute), checkpointing every few minutes, and resumes from the checkpoint when run again. Each volume is cut to the
bounding box of its non-zero voxels (the bundle crops nothing; the background holds no tumour).

Writes ``OUT_DIR/fold{FOLD}/scores.json`` in the format of ``recoseg crossval`` (every post-processing candidate of
``crossval.POSTPROCESS_CANDIDATES``; candidate 0 is none, the bundle's) and ``training.json`` (steps, seconds).
Needs the ``peers`` extra (``pip install -e ".[peers]"``).
"""

import argparse
import json
import math
import resource
import time
from pathlib import Path

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from monai.losses import DiceLoss
from monai.networks.nets import SegResNet

from recoseg_cli.constants import MODALITIES
from recoseg_cli.crossval import POSTPROCESS_CANDIDATES
from recoseg_cli.io.discovery import discover_patient
from recoseg_cli.io.json_io import write_json
from recoseg_cli.metrics import region_metrics
from recoseg_cli.pipeline import load_patient
from recoseg_cli.regions import bounding_box, region_mask, region_masks

OUTPUTS = ("core", "whole", "enhancing")
"""The bundle's output channels: TC, WT, ET."""


def network() -> SegResNet:
    return SegResNet(spatial_dims=3, init_filters=16, in_channels=4, out_channels=3, dropout_prob=0.2,
                     blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1))


def load_case(folder: Path) -> dict:
    """Channel-wise z-scored modalities and region targets (None without labels) in the non-zero voxels' box, with
    where that box lies."""
    volumes = load_patient(discover_patient(folder), MODALITIES)
    stack = np.stack([volumes.images[m] for m in MODALITIES]).astype(np.float32)
    box = bounding_box(np.any(stack != 0, axis=0))
    stack = stack[(slice(None), *box)]
    for channel in stack:
        inside = channel != 0
        channel[inside] = (channel[inside] - channel[inside].mean()) / max(float(channel[inside].std()), 1e-6)
    targets = (np.stack([region_mask(volumes.seg[box], r) for r in OUTPUTS]).astype(np.float32)
               if volumes.seg is not None else None)
    return {"case_id": volumes.patient.case_id, "inputs": stack, "targets": targets, "box": box, "volumes": volumes}


def random_crop(case: dict, roi: tuple[int, ...], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A crop of ``roi`` voxels (the volume padded with zeros where it is smaller), flipped along each axis with
    probability one half, intensities scaled and shifted by up to 0.1 per channel."""
    x, y = case["inputs"], case["targets"]
    pad = [(0, 0)] + [(0, max(0, r - s)) for r, s in zip(roi, x.shape[1:])]
    x, y = np.pad(x, pad), np.pad(y, pad)
    corner = [int(rng.integers(0, s - r + 1)) for r, s in zip(roi, x.shape[1:])]
    box = (slice(None), *(slice(c, c + r) for c, r in zip(corner, roi)))
    x, y = x[box], y[box]
    for axis in (1, 2, 3):
        if rng.random() < 0.5:
            x, y = np.flip(x, axis), np.flip(y, axis)
    scale = 1 + rng.uniform(-0.1, 0.1, (4, 1, 1, 1))
    shift = rng.uniform(-0.1, 0.1, (4, 1, 1, 1)) * x.std(axis=(1, 2, 3), keepdims=True)
    return (x * scale + shift).astype(np.float32), np.ascontiguousarray(y)


def train(cases: list[dict], run: Path, minutes: float, roi: tuple[int, ...], seed: int) -> dict:
    """Train until ``minutes`` of CPU time have been spent (over every resumed run); returns the training log."""
    torch.manual_seed(seed)
    model, rng = network(), np.random.default_rng(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-5)
    loss_function = DiceLoss(smooth_nr=0, smooth_dr=1e-5, squared_pred=True, sigmoid=True)
    state = {"step": 0, "seconds": 0.0, "losses": []}
    checkpoint = run / "checkpoint.pt"
    if checkpoint.is_file():
        saved = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        rng.bit_generator.state, state = saved["rng"], saved["state"]
    budget, last_save = minutes * 60, time.perf_counter()
    model.train()
    while state["seconds"] < budget:
        start = time.process_time()
        for group in optimizer.param_groups:
            group["lr"] = 1e-4 * 0.5 * (1 + math.cos(math.pi * state["seconds"] / budget))
        x, y = random_crop(cases[rng.integers(len(cases))], roi, rng)
        loss = loss_function(model(torch.from_numpy(x)[None]), torch.from_numpy(y)[None])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        state["step"] += 1
        state["seconds"] += time.process_time() - start
        state["losses"].append(round(loss.item(), 4))
        if time.perf_counter() - last_save > 300 or state["seconds"] >= budget:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "rng": rng.bit_generator.state, "state": state}, checkpoint)
            last_save = time.perf_counter()
    return {"steps": state["step"], "train_cpu_seconds": round(state["seconds"], 1), "roi": list(roi),
            "loss_last_100": float(np.mean(state["losses"][-100:]))}


def trained_network(checkpoint: Path) -> SegResNet:
    """The network of a training checkpoint, in evaluation mode."""
    model = network()
    model.load_state_dict(torch.load(checkpoint, weights_only=False)["model"])
    return model.eval()


def predict(model: SegResNet, case: dict, roi: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Per output region, sliding-window probabilities over the case's whole voxel grid (0 outside its box)."""
    with torch.inference_mode():
        logits = sliding_window_inference(torch.from_numpy(case["inputs"])[None], roi, 1, model, overlap=0.5)
    probabilities = torch.sigmoid(logits)[0].numpy()
    full = {}
    for k, region in enumerate(OUTPUTS):
        full[region] = np.zeros(case["volumes"].images["flair"].shape, np.float32)
        full[region][case["box"]] = probabilities[k]
    return full


def score(model: SegResNet, case: dict, roi: tuple[int, ...]) -> dict:
    """Every post-processing candidate's metrics of one held-out case, and its inference seconds."""
    start = time.perf_counter()
    full = predict(model, case, roi)
    seconds = time.perf_counter() - start
    volumes = case["volumes"]
    voxel_ml = float(np.prod(volumes.zooms)) / 1000.0
    return {"case_id": case["case_id"], "seconds": {"segmentation": round(seconds, 2)},
            "postprocess": [region_metrics(region_masks(full, candidate, voxel_ml), volumes.seg, volumes.zooms)
                            for candidate in POSTPROCESS_CANDIDATES]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", type=Path)
    parser.add_argument("folds", type=Path)
    parser.add_argument("fold", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--cpu-minutes", type=float, required=True)
    parser.add_argument("--roi", default="224,224,144")
    arguments = parser.parse_args()
    roi = tuple(int(v) for v in arguments.roi.split(","))
    folds = {case: entry["fold"] for case, entry in json.loads(arguments.folds.read_text())["cases"].items()}
    run = arguments.out / f"fold{arguments.fold}"
    run.mkdir(parents=True, exist_ok=True)
    held_out = sorted(c for c, f in folds.items() if f == arguments.fold)
    training = [load_case(arguments.cases / c) for c in sorted(folds) if folds[c] != arguments.fold]
    log = train(training, run, arguments.cpu_minutes, roi, seed=arguments.fold)
    del training
    model = trained_network(run / "checkpoint.pt")
    scores = [{**score(model, load_case(arguments.cases / c), roi), "fold": arguments.fold} for c in held_out]
    write_json(run / "scores.json", {"cases": scores})
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    write_json(run / "training.json", {**log, "peak_memory_gb": round(peak_gb, 2), "threads": torch.get_num_threads()})
    print(json.dumps(log))


if __name__ == "__main__":
    main()
