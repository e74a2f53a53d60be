"""The speed study: stage times of `segment`, network cost and throughput, matmul peak, samplers, peers."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from recoseg_cli.benchmark.plan import Plan
from recoseg_cli.constants import CONDITION_INDEX, TARGET_INDEX
from recoseg_cli.data.synthetic import write_cohort
from recoseg_cli.devices import autocast, bf16_supported, cpu_model, inference_batch_size, resolve_device
from recoseg_cli.diffusion.sampler_config import SamplerConfig
from recoseg_cli.io.discovery import discover_patient
from recoseg_cli.metrics import dice, residual_ratio
from recoseg_cli.networks import StageOne, Synthesizer, build_synthesizer, stage_one_of, torch_segmenter
from recoseg_cli.onnx_networks import OnnxSlices, has_onnx_export, onnx_files
from recoseg_cli.pipeline import PreparedPatient, assemble, prepare_patient, residual
from recoseg_cli.preprocess import PreprocessConfig
from recoseg_cli.regions import region_mask
from recoseg_cli.weights import Weights, load_weights, resolve_weights_path

Log = Callable[[str], None]
DEMO_PATIENT = Path(__file__).resolve().parents[2] / "examples" / "Synth_90000"
"""The demo patient of a source checkout (absent from an installed wheel)."""
STAGES = ("load", "preprocess", "synthesis", "segmentation", "write")


def speed_patient(work: Path) -> Path:
    """The bundled demo patient (240 x 240 x 155), or the same synthetic patient generated afresh."""
    if DEMO_PATIENT.is_dir():
        return DEMO_PATIENT
    return write_cohort(work / "speed_patient", 1, 90000)[0]


def stage_times(patient: Path, work: Path, repeats: int, device: str, bf16: bool,
                peer: Callable[[], float] | None = None, model: str | None = None, runtime: str = "auto") -> dict:
    """Median seconds per stage of `recoseg segment` run as users run it, and the peak memory of those runs.

    The command segments a copy of the patient's four images without its segmentation file, as a user's
    patient comes (with one, the report would add Dice and HD95 against it). With ``peer``, the peer's forward
    pass is timed after each run of the command (alternating, so both see the same machine state), and the
    whole command's median wall time is compared with the peer's median.
    """
    out_dir = work / "speed"
    images = out_dir / "patient"
    images.mkdir(parents=True, exist_ok=True)
    for path in discover_patient(patient).images.values():
        shutil.copyfile(path, images / path.name)
    reports, walls, peer_seconds = [], [], []
    for _ in range(repeats):
        report = out_dir / "report.json"
        command = [sys.executable, "-m", "recoseg_cli", "segment", str(images), "-o", str(out_dir / "mask.nii.gz"),
                   "--report", str(report), "--overwrite", "-q", "--device", device,
                   "--bf16" if bf16 else "--no-bf16", "--runtime", runtime, *(("--model", model) if model else ())]
        start = time.perf_counter()
        subprocess.run(command, check=True)
        walls.append(time.perf_counter() - start)
        reports.append(json.loads(report.read_text()))
        if peer is not None:
            peer_seconds.append(peer())
    stages = {name: statistics.median(r["seconds"][name] for r in reports) for name in STAGES}
    slices = reports[0]["slices_processed"]
    out = {"patient": str(patient), "repeats": repeats, "stage_seconds": stages,
           "wall_seconds_median": statistics.median(walls), "wall_seconds": walls,
           "peak_rss_gb": max((r["peak_rss_gb"] or float("nan") for r in reports), default=float("nan")),
           "slices": slices, "precision": reports[0]["precision"], "device": reports[0]["device"],
           "runtime": reports[0]["runtime"],
           "synthesis_slices_per_s": slices / max(stages["synthesis"], 1e-9),
           "segmentation_slices_per_s": slices / max(stages["segmentation"], 1e-9)}
    if peer_seconds:
        out["segresnet_seconds"] = peer_seconds
        out["segresnet_seconds_median"] = statistics.median(peer_seconds)
        out["ratio_to_segresnet"] = out["wall_seconds_median"] / out["segresnet_seconds_median"]
    return out


def segresnet_timer(prepared: PreparedPatient, device: torch.device, bf16: bool) -> Callable[[], float] | None:
    """Seconds of one forward pass of MONAI's SegResNet (BraTS bundle configuration, random weights) over the
    patient's four modalities; None when MONAI is not installed."""
    try:
        from monai.networks.nets import SegResNet
    except ImportError:
        return None
    volume = np.stack([prepared.volumes.images[m] for m in ("flair", "t1", "t1ce", "t2")])
    pad = [(0, 0)] + [(0, (-s) % 16) for s in volume.shape[1:]]
    x = torch.from_numpy(np.pad(volume, pad))[None].to(device)
    model = SegResNet(spatial_dims=3, init_filters=16, in_channels=4, out_channels=3, dropout_prob=0.2,
                      blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1)).to(device).eval()

    def forward() -> None:
        with torch.no_grad(), autocast(device, bf16):
            model(x)
    forward()
    return lambda: _median_seconds(forward, 1, device, warm=False)


def _median_seconds(run: Callable[[], object], repeats: int, device: torch.device, warm: bool = True) -> float:
    if warm:
        run()
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        run()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, repeats: int, n: int = 2048) -> dict[str, float]:
    """GFLOP/s of an n x n matrix product in fp32 and (where supported) bf16."""
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        if dtype == torch.bfloat16 and not bf16_supported(device):
            continue
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        seconds = _median_seconds(lambda: a @ b, repeats, device)
        out[name] = 2 * n**3 / seconds / 1e9
    return out


def gflops_per_call(model: nn.Module, inputs: tuple) -> float:
    """Forward GFLOPs of one call (multiply-adds count as two)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(*inputs)
    return counter.get_total_flops() / 1e9


def network_costs(weights: Weights, device: torch.device, repeats: int, peak: dict[str, float]) -> dict:
    """Parameters, GFLOPs per slice, ms per slice and achieved GFLOP/s of a segmenter file's stage-1 model (keyed
    "ddpm" or "regressor") and segmenter, in batches as `segment` runs them: by torch in fp32 and (where the
    hardware has it, whether or not it pays) bf16, and by ONNX Runtime where the weights have an export."""
    size = weights.extra["preprocess"]["size"]
    stage_one = stage_one_of(weights)
    models = {"segmenter": torch_segmenter(weights, device).network.model}
    segmenter_export, stage_one_export = onnx_files(weights.path)
    exported = {"segmenter": segmenter_export} if device.type == "cpu" and has_onnx_export(weights.path) else {}
    if stage_one is not None:
        models = {stage_one.stage: torch_holder(build_synthesizer(stage_one, device)).model, **models}
        if exported:
            exported[stage_one.stage] = stage_one_export
    out = {}
    batch = inference_batch_size(device)
    for name, model in models.items():
        channels = model.config.in_channels
        x = torch.randn(batch, channels, size, size, device=device).contiguous(memory_format=torch.channels_last)
        args = (x, torch.full((batch,), 999, device=device)) if model.config.time_embedding else (x,)
        flops = gflops_per_call(model, tuple(a[:1] for a in args))
        row = {"parameters": sum(p.numel() for p in model.parameters()), "gflops_per_slice": flops}
        for precision in ("fp32", "bf16"):
            if precision == "bf16" and not bf16_supported(device):
                continue

            def forward():
                with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
                    model(*args)
            seconds = _median_seconds(forward, repeats, device) / batch
            row[f"ms_per_slice_{precision}"] = seconds * 1000
            row[f"gflops_per_s_{precision}"] = flops / seconds
            row[f"fraction_of_peak_{precision}"] = flops / seconds / peak[precision] if precision in peak else None
        if name in exported:
            network, slices = OnnxSlices(exported[name]), x.float().cpu().numpy()
            row["ms_per_slice_onnx"] = _median_seconds(lambda: network(slices), repeats, device) / batch * 1000
        out[name] = row
    return out


def torch_holder(stage_one: StageOne):
    """What holds stage 1's torch network as its ``model``: the DDPM's synthesizer, or the regressor's network."""
    return stage_one if isinstance(stage_one, Synthesizer) else stage_one.network


class TimedModel(nn.Module):
    """Wraps a network and adds up the seconds spent in its forward calls."""

    def __init__(self, model: nn.Module, device: torch.device):
        super().__init__()
        self.inner = model
        self.config = model.config
        self.device = device
        self.seconds = 0.0

    def forward(self, *args):
        _synchronize(self.device)
        start = time.perf_counter()
        out = self.inner(*args)
        _synchronize(self.device)
        self.seconds += time.perf_counter() - start
        return out


def sampler_slices(prepared: PreparedPatient, count: int | None) -> np.ndarray:
    """Indices of ``count`` slices spread evenly over the slices with enhancing tumour (all brain slices if None)."""
    if count is None:
        return np.arange(len(prepared.sliced.images))
    candidates = np.flatnonzero(region_mask(prepared.sliced.seg, "enhancing").any(axis=(1, 2)))
    if len(candidates) == 0:
        candidates = np.flatnonzero(prepared.sliced.seg.any(axis=(1, 2)))
    return candidates[np.linspace(0, len(candidates) - 1, min(count, len(candidates))).round().astype(int)]


def sampler_sweep(weights: Weights, prepared: PreparedPatient, settings: tuple[SamplerConfig, ...],
                  count: int | None, device: torch.device, bf16: bool, log: Log) -> list[dict]:
    """Quality and time of each sampler setting with a segmenter file's models, on a fixed set of tumour slices;
    a regressor's stage 1 does not sample, so it gets the default setting only; none without a stage 1."""
    stage_one = stage_one_of(weights)
    if stage_one is None:
        return []
    synthesizer = build_synthesizer(stage_one, device, bf16)
    if stage_one.stage == "regressor":
        settings = (SamplerConfig(),)
    segmenter = torch_segmenter(weights, device, bf16)
    holder = torch_holder(synthesizer)
    timed = TimedModel(holder.model, device)
    holder.model = timed
    index = sampler_slices(prepared, count)
    images, brain, seg = (prepared.sliced.images[index], prepared.sliced.brain[index], prepared.sliced.seg[index])
    tumour = seg > 0
    healthy = brain & ~ndimage.binary_dilation(tumour, np.ones((1, 3, 3), bool), iterations=2)
    enhancing = region_mask(seg, "enhancing")
    whole = weights.extra.get("targets", ["whole"]).index("whole")
    rows = []
    for sampler in settings:
        timed.seconds = 0.0
        start = time.perf_counter()
        synth = synthesizer.synthesize(images[:, CONDITION_INDEX], brain, sampler, seed=0,
                                       start=images[:, TARGET_INDEX])
        seconds = time.perf_counter() - start
        residual_map = residual(images[:, TARGET_INDEX], synth, brain)
        inputs = assemble(images, brain, tuple(weights.extra["channels"]), synth)
        mask = segmenter.predict(inputs, brain)[:, whole] >= float(weights.extra["threshold"])
        ssim = [structural_similarity(images[i, TARGET_INDEX], synth[i], data_range=2.0, full=True)[1][healthy[i]].mean()
                for i in range(len(index)) if healthy[i].any()]
        calls = sampler.steps
        rows.append({
            "sampler": sampler.name, "steps": sampler.steps, "slices": len(index),
            "dice": dice(mask, tumour), "healthy_ssim": float(np.mean(ssim)),
            "residual_ratio": residual_ratio(residual_map, enhancing, healthy) if enhancing.any() else None,
            "seconds": seconds, "network_seconds": timed.seconds,
            "overhead_fraction": max(0.0, 1 - timed.seconds / seconds),
            "ms_per_slice_per_step": seconds / len(index) / calls * 1000,
            "seconds_per_patient": seconds / len(index) * len(prepared.sliced.images),
            "extrapolated": count is not None,
        })
        log(f"sampler {sampler.name} x{sampler.steps}: Dice {rows[-1]['dice']:.3f}, "
            f"{rows[-1]['seconds_per_patient']:.1f} s per patient")
    return rows


def peer_times(prepared: PreparedPatient, device: torch.device, bf16: bool, repeats: int, ours_seconds: float,
               log: Log) -> dict | None:
    """A 2D U-Net of nnU-Net's BraTS size, random weights, timed on the same patient under the same precision as
    ours; None when MONAI is not installed."""
    try:
        from monai.networks.nets import DynUNet
    except ImportError:
        return None
    strides = [1, 2, 2, 2, 2, 2, 2]
    nnunet2d = DynUNet(spatial_dims=2, in_channels=4, out_channels=3, kernel_size=[3] * 7, strides=strides,
                       upsample_kernel_size=strides[1:], filters=[32, 64, 128, 256, 512, 512, 512]).to(device).eval()
    brain_slices = int(prepared.sliced.volume_brain.any(axis=(0, 1)).sum())
    side = max(prepared.sliced.volume_brain.shape[:2])
    side += (-side) % 64
    batch = 16
    x2d = torch.zeros(batch, 4, side, side, device=device)

    def forward():
        with torch.no_grad(), autocast(device, bf16):
            nnunet2d(x2d)

    nnunet_seconds = _median_seconds(forward, repeats, device) / batch * brain_slices
    log(f"peer nnU-Net-size 2D U-Net: {nnunet_seconds:.1f} s per volume")
    return {"nnunet_2d": {"seconds": nnunet_seconds, "slices": brain_slices, "slice_side": side,
                          "ratio_to_recoseg": nnunet_seconds / ours_seconds,
                          "parameters": sum(p.numel() for p in nnunet2d.parameters()),
                          "note": f"timed on one batch of {batch} slices, scaled to the patient's brain slices"},
            "recoseg_network_seconds": ours_seconds}


def run_speed(plan: Plan, work: Path, device_name: str, log: Log) -> dict:
    """Every speed figure of the benchmark, measured in one run."""
    device = resolve_device(device_name)
    patient = speed_patient(work)
    path, checksum = resolve_weights_path(None, plan.model)
    weights = load_weights(path, ("seg",), checksum)
    prepared = prepare_patient(discover_patient(patient), PreprocessConfig(**weights.extra["preprocess"]))
    peer = segresnet_timer(prepared, device, plan.bf16) if plan.peers else None
    stages = stage_times(patient, work, plan.speed_repeats, device_name, plan.bf16, peer, plan.model, plan.runtime)
    log(f"segment: {stages['wall_seconds_median']:.1f} s per patient (median of {plan.speed_repeats}, "
        f"{stages['precision']}), peak RSS {stages['peak_rss_gb']:.2f} GB")
    if "ratio_to_segresnet" in stages:
        log(f"SegResNet forward pass: {stages['segresnet_seconds_median']:.1f} s; segment / SegResNet = "
            f"{stages['ratio_to_segresnet']:.2f}")
    peak = matmul_peak(device, max(3, plan.speed_repeats))
    networks = network_costs(weights, device, max(3, plan.speed_repeats), peak)
    samplers = sampler_sweep(weights, prepared, plan.sampler_settings,
                             None if plan.full_samplers else plan.sampler_slices, device, plan.bf16, log)
    ours = stages["stage_seconds"]["synthesis"] + stages["stage_seconds"]["segmentation"]
    peers = peer_times(prepared, device, plan.bf16, max(1, plan.speed_repeats - 1), ours, log) if plan.peers else None
    return {"weights": str(path), "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": cpu_model(), "bf16_hardware": bf16_supported(device), "segment": stages,
            "matmul_peak_gflops": peak, "networks": networks, "samplers": samplers, "peers": peers}

