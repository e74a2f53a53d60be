"""Benchmark outputs: the terminal table, results.json / .csv / .md and the PNG plots."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from rich.table import Table

from recoseg_cli.benchmark.plan import TARGETS
from recoseg_cli.io.outputs import write_atomically

PAPER_BRATS2020 = {"UNet2D": (0.784, 0.736), "UNet3D": (0.842, 0.743), "DDMM-Synth": (0.872, 0.811),
                   "ReCoSeg": (0.917, 0.853)}
"""Table 1 of the paper (Dice, IoU on BraTS2020), as published."""

METRICS = ("slice_dice", "slice_iou", "dice", "iou", "hd95", "sensitivity", "specificity")
GROUP_TITLES = {"table1": "Table 1 systems", "ablation": "Ablations", "labels": "Label efficiency",
                "missing": "Missing T1ce"}


def aggregate(study: dict) -> list[dict]:
    """One row per system and region: metric means over seeds, with the spread over patients and over seeds."""
    rows = []
    for system in study["systems"]:
        for region in TARGETS:
            per_seed = [r["metrics"][system["name"]].get(region) for r in study["repeats"]]
            per_seed = [m for m in per_seed if m]
            if not per_seed:
                continue
            row = {"system": system["name"], "group": system["group"], "region": region,
                   "label_fraction": system["label_fraction"], "patients": per_seed[0]["patients"],
                   "slices": per_seed[0]["slices"], "seeds": len(per_seed)}
            for key in METRICS:
                values = np.array([m[key] for m in per_seed], float)
                row[key] = float(np.nanmean(values)) if np.isfinite(values).any() else None
                row[f"{key}_std_patients"] = float(np.nanmean([m[f"{key}_std"] for m in per_seed]))
                row[f"{key}_std_seeds"] = float(np.nanstd(values)) if len(per_seed) > 1 else None
            rows.append(row)
    return rows


def _find(rows: list[dict], system: str, region: str) -> dict | None:
    return next((r for r in rows if r["system"] == system and r["region"] == region), None)


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def _pm(row: dict | None, key: str, digits: int = 3) -> str:
    if row is None or row.get(key) is None:
        return "n/a"
    spread = row[f"{key}_std_seeds"] if row.get(f"{key}_std_seeds") is not None else row[f"{key}_std_patients"]
    return f"{row[key]:.{digits}f} ± {spread:.{digits}f}"


def terminal_table(results: dict) -> Table:
    """The accuracy rows as a rich table."""
    table = Table(title=f"recoseg benchmark: {results['study']['data']}")
    for column in ("system", "WT slice Dice", "WT Dice", "WT HD95 mm", "ET slice Dice", "ET Dice", "train s"):
        table.add_column(column, justify="left" if column == "system" else "right")
    train_seconds = results["study"]["repeats"][0]["train_seconds"]
    for row in results["study"]["systems"]:
        whole, enhancing = _find(results["rows"], row["name"], "whole"), _find(results["rows"], row["name"], "enhancing")
        table.add_row(row["name"], _pm(whole, "slice_dice"), _pm(whole, "dice"), _pm(whole, "hd95", 1),
                      _pm(enhancing, "slice_dice"), _pm(enhancing, "dice"),
                      _fmt(train_seconds.get(row["name"]), 0))
    return table


def markdown(results: dict) -> str:
    """results.md: Table 1 beside the paper's numbers, ablations, labels, missing T1ce, stage 1, then speed."""
    meta = results["meta"]
    lines = ["# recoseg benchmark", "", f"Command: `{meta['command']}`  ", f"Date: {meta['date']}  ",
             f"Machine: {meta['machine']}"]
    if results["study"]:
        lines += study_markdown(results["rows"], results["study"], meta)
    if results.get("speed"):
        lines += speed_markdown(results["speed"])
    return "\n".join(lines) + "\n"


def study_markdown(rows: list[dict], study: dict, meta: dict) -> list[str]:
    spread = "over seeds" if len(study["repeats"]) > 1 else "over test patients"
    lines = ["", f"Data (ours): {study['data']}  ", f"Budgets: {meta['budgets']}", "",
             f"Ours: mean ± std {spread}. WT = whole tumour, ET = enhancing tumour. Per-slice Dice/IoU: every axial "
             "slice of the patient's own grid whose ground truth holds the region, pooled over test patients. "
             "Per-volume: one score per patient.", "",
             "## Table 1", "",
             "| System | Paper Dice (BraTS2020) | Paper IoU (BraTS2020) | Ours WT per-slice Dice | Ours WT per-slice IoU "
             "| Ours WT per-volume Dice | Ours ET per-volume Dice |",
             "|---|---|---|---|---|---|---|"]
    for name, (paper_dice, paper_iou) in PAPER_BRATS2020.items():
        whole, enhancing = _find(rows, name, "whole"), _find(rows, name, "enhancing")
        lines.append(f"| {name} | {paper_dice:.3f} | {paper_iou:.3f} | {_pm(whole, 'slice_dice')} | "
                     f"{_pm(whole, 'slice_iou')} | {_pm(whole, 'dice')} | {_pm(enhancing, 'dice')} |")
    for group in ("ablation", "labels", "missing"):
        lines += ["", f"## {GROUP_TITLES[group]}", "",
                  "| System | WT per-slice Dice | WT Dice | WT HD95 (mm) | ET per-slice Dice | ET Dice | ET sensitivity |",
                  "|---|---|---|---|---|---|---|"]
        names = [s["name"] for s in study["systems"] if s["group"] == group]
        references = ["ReCoSeg"] if group == "ablation" else ["ReCoSeg", "UNet2D"]
        for name in dict.fromkeys(references + names):
            whole, enhancing = _find(rows, name, "whole"), _find(rows, name, "enhancing")
            lines.append(f"| {name} | {_pm(whole, 'slice_dice')} | {_pm(whole, 'dice')} | {_pm(whole, 'hd95', 1)} | "
                         f"{_pm(enhancing, 'slice_dice')} | {_pm(enhancing, 'dice')} | "
                         f"{_pm(enhancing, 'sensitivity')} |")
    lines += ["", "## Stage 1 on the test patients (original grid, default one-step sampler)", "",
              "| Model | Healthy SSIM | Healthy PSNR (dB) | ET / healthy residual | Training s |",
              "|---|---|---|---|---|"]
    first = study["repeats"][0]
    for name, quality in first["synthesis"].items():
        lines.append(f"| {name} | {_fmt(quality.get('healthy_ssim'))} | {_fmt(quality.get('healthy_psnr'), 1)} | "
                     f"{_fmt(quality.get('residual_ratio'), 2)} | {_fmt(first['train_seconds'].get(name), 0)} |")
    return lines


def speed_markdown(speed: dict) -> list[str]:
    segment = speed["segment"]
    lines = ["", f"## Speed ({speed['device']}: {speed.get('cpu', 'CPU model not recorded')}, torch {speed['torch']}, "
                 f"{speed['threads']} threads)", "",
             f"`recoseg segment` on the four images of {Path(segment['patient']).name} (no segmentation file; "
             f"{segment['slices']} slices, bundled weights, "
             f"{segment['precision']}): median wall {segment['wall_seconds_median']:.1f} s over {segment['repeats']} "
             f"runs, peak RSS {segment['peak_rss_gb']:.2f} GB; synthesis {segment['synthesis_slices_per_s']:.0f} "
             f"slices/s, segmentation {segment['segmentation_slices_per_s']:.0f} slices/s.", "",
             "| Stage | " + " | ".join(segment["stage_seconds"]) + " |",
             "|---|" + "---|" * len(segment["stage_seconds"]),
             "| median s | " + " | ".join(f"{v:.2f}" for v in segment["stage_seconds"].values()) + " |", "",
             "Matrix-product peak (2048²): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in
                                                         speed["matmul_peak_gflops"].items()), "",
             "| Network | Parameters | GFLOPs/slice | ms/slice fp32 | ms/slice bf16 | GFLOP/s fp32 (of peak) "
             "| GFLOP/s bf16 (of peak) |", "|---|---|---|---|---|---|---|"]
    for name, row in speed["networks"].items():
        def achieved(p):
            if f"gflops_per_s_{p}" not in row:
                return "n/a"
            return f"{row[f'gflops_per_s_{p}']:.0f} ({_fmt(row[f'fraction_of_peak_{p}'], 2)})"
        lines.append(f"| {name} | {row['parameters'] / 1e6:.2f} M | {row['gflops_per_slice']:.2f} | "
                     f"{_fmt(row.get('ms_per_slice_fp32'), 1)} | {_fmt(row.get('ms_per_slice_bf16'), 1)} | "
                     f"{achieved('fp32')} | {achieved('bf16')} |")
    samplers = speed["samplers"]
    subset = samplers[0]["slices"]
    how = (f"on {subset} fixed tumour slices; seconds per patient extrapolated to all brain slices"
           if samplers[0]["extrapolated"] else "on whole patients")
    lines += ["", f"Samplers ({how}):", "",
              "| Sampler | Network calls/slice | Dice (WT, slices) | Healthy SSIM | ET/healthy residual "
              "| ms/slice/step | Overhead outside the network | s per patient |", "|---|---|---|---|---|---|---|---|"]
    for row in samplers:
        lines.append(f"| {row['sampler']} | {row['steps']} | {row['dice']:.3f} | {row['healthy_ssim']:.3f} | "
                     f"{_fmt(row['residual_ratio'], 2)} | {row['ms_per_slice_per_step']:.1f} | "
                     f"{row['overhead_fraction']:.1%} | {row['seconds_per_patient']:.1f} |")
    if "ratio_to_segresnet" in segment:
        lines += ["", f"Whole `recoseg segment` command against one forward pass of MONAI's SegResNet (BraTS bundle "
                      f"configuration, random weights, same volume, {segment['precision']}), timed alternately: "
                      f"{segment['wall_seconds_median']:.1f} s vs {segment['segresnet_seconds_median']:.1f} s, "
                      f"ratio **{segment['ratio_to_segresnet']:.2f}** (medians of {segment['repeats']})."]
    peers = speed.get("peers")
    if peers:
        nnunet = peers["nnunet_2d"]
        lines += ["", f"2D U-Net of nnU-Net's BraTS size ({nnunet['parameters'] / 1e6:.1f} M parameters, random "
                      f"weights): {nnunet['seconds']:.1f} s per patient, {nnunet['ratio_to_recoseg']:.1f} × "
                      f"ReCoSeg's networks ({peers['recoseg_network_seconds']:.1f} s)."]
    return lines


def csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def plots(results: dict, out: Path) -> list[Path]:
    """Dice against label fraction, time by stage and Dice against sampler cost, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    rows = results["rows"]
    if rows:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for base in ("UNet2D", "ReCoSeg"):
            for region, style in (("whole", "-o"), ("enhancing", "--s")):
                points = sorted((r["label_fraction"], r["dice"]) for r in rows
                                if r["region"] == region and r["dice"] is not None
                                and (r["system"] == base or r["system"].startswith(f"{base}, ") and "labels" in r["system"]))
                if points:
                    ax.plot(*zip(*points), style, label=f"{base} {region}")
        ax.set_xscale("log")
        ax.set_xlabel("labelled fraction of training subjects")
        ax.set_ylabel("per-volume Dice")
        ax.legend(fontsize=7)
        written.append(_save(fig, out / "dice_vs_label_fraction.png"))
    speed = results.get("speed")
    if speed:
        stages = speed["segment"]["stage_seconds"]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.bar(list(stages), list(stages.values()))
        ax.set_ylabel("median seconds per patient")
        ax.set_title("recoseg segment by stage")
        written.append(_save(fig, out / "time_by_stage.png"))
        fig, ax = plt.subplots(figsize=(5, 3.5))
        samplers = speed["samplers"]
        ax.plot([s["seconds_per_patient"] for s in samplers], [s["dice"] for s in samplers], "o-")
        for s in samplers:
            ax.annotate(f"{s['sampler']} {s['steps']}", (s["seconds_per_patient"], s["dice"]), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("seconds per patient" + (" (extrapolated)" if samplers[0]["extrapolated"] else ""))
        ax.set_ylabel("Dice (whole tumour, sampled slices)")
        written.append(_save(fig, out / "dice_vs_sampler_steps.png"))
    return written


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))
    plt.close(fig)
    return path


def write_outputs(results: dict, out: Path) -> list[Path]:
    """results.json, results.csv, results.md and the plots into ``out``."""
    from recoseg_cli.io.json_io import write_json

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", results)
    written = [out / "results.json"]
    if results["rows"]:
        write_atomically(out / "results.csv", lambda tmp: tmp.write_text(csv_text(results["rows"])))
        written.append(out / "results.csv")
    write_atomically(out / "results.md", lambda tmp: tmp.write_text(markdown(results)))
    written.append(out / "results.md")
    return written + plots(results, out)
