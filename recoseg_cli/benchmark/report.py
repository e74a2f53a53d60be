"""Benchmark outputs: the terminal table, results.json / .csv / .md and the PNG plots."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from rich import box
from rich.table import Table

from recoseg_cli.benchmark.plan import TARGETS
from recoseg_cli.regions import REGION_ABBREVIATIONS
from recoseg_cli.io.outputs import write_atomically

PAPER_BRATS2020 = {"UNet2D": (0.784, 0.736), "UNet3D": (0.842, 0.743), "DDMM-Synth": (0.872, 0.811),
                   "ReCoSeg": (0.917, 0.853)}
"""Table 1 of the paper (Dice, IoU on BraTS2020), as published."""

METRICS = ("slice_dice", "slice_iou", "dice", "iou", "hd95", "sensitivity", "specificity")
GROUP_TITLES = {"table1": "Table 1 systems", "ablation": "Ablations", "labels": "Label efficiency",
                "missing": "Missing T1ce"}
VERDICTS = {"holds": "holds", "reversed": "**reversed**", "not shown": "not shown",
            "too few patients": "too few patients"}


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
                row[f"{key}_n"] = per_seed[0].get(f"{key}_n", row["patients"])
            rows.append(row)
    return rows


def _find(rows: list[dict], system: str, region: str) -> dict | None:
    return next((r for r in rows if r["system"] == system and r["region"] == region), None)


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def _pm(row: dict | None, key: str, digits: int = 3) -> str:
    """Mean ± spread (over seeds when there are several, else over patients); a single patient has no spread."""
    if row is None or row.get(key) is None:
        return "n/a"
    if row.get(f"{key}_std_seeds") is not None:
        return f"{row[key]:.{digits}f} ± {row[f'{key}_std_seeds']:.{digits}f}"
    if row.get(f"{key}_n", 2) < 2 and not key.startswith("slice"):
        return f"{row[key]:.{digits}f} (1 patient)"
    return f"{row[key]:.{digits}f} ± {row[f'{key}_std_patients']:.{digits}f}"


def terminal_table(results: dict) -> Table:
    """Mean per-volume Dice by region and WT HD95 per system, narrow enough for 80 columns (spreads: results.md)."""
    table = Table(title="recoseg benchmark (mean over test patients)", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("system", no_wrap=True)
    for column in ("WT Dice", "TC Dice", "ET Dice", "WT HD95"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in results["study"]["systems"]:
        found = {region: _find(results["rows"], row["name"], region) for region in TARGETS}
        whole = found["whole"]
        table.add_row(row["name"], *(_fmt(found[r] and found[r]["dice"]) for r in TARGETS),
                      _fmt(whole and whole["hd95"], 1))
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
    seeds = len(study["repeats"])
    spread = f"over {seeds} seeds" if seeds > 1 else "over test patients"
    folds = (f"{study['folds']}-fold cross-validation: every patient is scored once, by the models of the fold that "
             "held it out. " if study.get("folds") else "")
    lines = ["", f"Data (ours): {study['data']}  ", f"Budgets: {meta['budgets']}  ", f"Precision: {meta['precision']}",
             "", f"{folds}Ours: mean ± std {spread}. WT = whole tumour, TC = tumour core, ET = enhancing tumour; a "
             "region counts only for the patients whose ground truth holds it. Per-slice Dice/IoU: every axial slice "
             "of the patient's own grid whose ground truth holds the region, pooled over test patients. Per-volume: "
             "one score per patient.", "",
             "## Table 1", "",
             "| System | Paper Dice (BraTS2020) | Paper IoU (BraTS2020) | Ours WT per-slice Dice | Ours WT per-slice IoU "
             "| Ours WT Dice | Ours TC Dice | Ours ET Dice | Ours WT HD95 (mm) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, (paper_dice, paper_iou) in PAPER_BRATS2020.items():
        found = {region: _find(rows, name, region) for region in TARGETS}
        lines.append(f"| {name} | {paper_dice:.3f} | {paper_iou:.3f} | {_pm(found['whole'], 'slice_dice')} | "
                     f"{_pm(found['whole'], 'slice_iou')} | " + " | ".join(_pm(found[r], "dice") for r in TARGETS)
                     + f" | {_pm(found['whole'], 'hd95', 1)} |")
    labelled = study["repeats"][0].get("labelled_patients", {})
    for group in ("ablation", "labels", "missing"):
        extra = " labelled patients per fold |" if group == "labels" else ""
        lines += ["", f"## {GROUP_TITLES[group]}", "",
                  "| System | WT per-slice Dice | WT Dice | TC Dice | ET Dice | WT HD95 (mm) | ET sensitivity |"
                  + extra,
                  "|---|---|---|---|---|---|---|" + ("---|" if extra else "")]
        names = [s["name"] for s in study["systems"] if s["group"] == group]
        references = ["ReCoSeg"] if group == "ablation" else ["ReCoSeg", "UNet2D"]
        for name in dict.fromkeys(references + names):
            found = {region: _find(rows, name, region) for region in TARGETS}
            count = f" {', '.join(map(str, labelled.get(name, [])))} |" if extra else ""
            lines.append(f"| {name} | {_pm(found['whole'], 'slice_dice')} | "
                         + " | ".join(_pm(found[r], "dice") for r in TARGETS)
                         + f" | {_pm(found['whole'], 'hd95', 1)} | {_pm(found['enhancing'], 'sensitivity')} |{count}")
        if group == "labels":
            lines += _same_subsets_note(labelled, study["systems"])
    lines += claims_markdown(study.get("comparisons", []))
    lines += ["", "## Stage 1 on the test patients (original grid, default one-step sampler)", "",
              "| Model | Healthy SSIM | Healthy PSNR (dB) | ET / healthy residual | Training s |",
              "|---|---|---|---|---|"]
    first = study["repeats"][0]
    for name, quality in first["synthesis"].items():
        lines.append(f"| {name} | {_fmt(quality.get('healthy_ssim'))} | {_fmt(quality.get('healthy_psnr'), 1)} | "
                     f"{_fmt(quality.get('residual_ratio'), 2)} | {_fmt(first['train_seconds'].get(name), 0)} |")
    return lines


def _same_subsets_note(labelled: dict[str, list[int]], systems: list[dict]) -> list[str]:
    """A note when two label fractions drew the same number of labelled patients (their rows then agree)."""
    counts = {s["label_fraction"]: tuple(labelled.get(s["name"], [])) for s in systems
              if s["group"] in ("labels", "table1") and s["name"].startswith("UNet2D")}
    same = [f"{f:.0%}" for f, c in counts.items() if f < 1.0 and list(counts.values()).count(c) > 1]
    if not same:
        return []
    return ["", f"Note: {' and '.join(same)} of the training patients round to the same number of labelled patients "
                "here, so those rows train on the same patients and can only differ by chance."]


def claims_markdown(claims: list[dict]) -> list[str]:
    """The paired comparisons: mean Dice difference over patients with its 95% bootstrap interval, and a verdict
    that holds only when the interval excludes zero."""
    if not claims:
        return []
    lines = ["", "## The paper's claims, tested", "",
             "Paired over test patients (per-volume Dice, averaged over seeds): mean difference with its 95% "
             "percentile-bootstrap confidence interval (10,000 resamples). *holds*: the interval lies above zero; "
             "*reversed*: below zero; *not shown*: it contains zero.", ""]
    for claim in claims:
        lines += [f"**{claim['claim']}**", "", "| Comparison | Region | Mean Dice difference [95% CI] | Patients "
                  "| Verdict |", "|---|---|---|---|---|"]
        for row in claim["comparisons"]:
            lines.append(f"| {row['system']} − {row['reference']} | {REGION_ABBREVIATIONS[row['region']]} | "
                         f"{row['mean']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}] | {row['n']} | "
                         f"{VERDICTS[row['verdict']]} |")
        lines.append("")
    return lines


def speed_markdown(speed: dict) -> list[str]:
    segment = speed["segment"]
    lines = ["", f"## Speed ({speed['device']}: {speed.get('cpu', 'CPU model not recorded')}, torch {speed['torch']}, "
                 f"{speed['threads']} threads)", "",
             f"`recoseg segment` on the four images of {Path(segment['patient']).name} (no segmentation file; "
             f"{segment['slices']} slices, weights {Path(speed.get('weights', 'bundled')).name}, "
             f"{segment.get('runtime', 'torch')}, {segment['precision']}): median wall "
             f"{segment['wall_seconds_median']:.1f} s over {segment['repeats']} "
             f"run{'s' if segment['repeats'] > 1 else ''}, peak RSS {segment['peak_rss_gb']:.2f} GB; "
             + (f"synthesis {segment['synthesis_slices_per_s']:.0f} slices/s, " if speed["samplers"]
                else "no stage 1, ")
             + f"segmentation {segment['segmentation_slices_per_s']:.0f} slices/s.", "",
             "| Stage | " + " | ".join(segment["stage_seconds"]) + " |",
             "|---|" + "---|" * len(segment["stage_seconds"]),
             "| median s | " + " | ".join(f"{v:.2f}" for v in segment["stage_seconds"].values()) + " |", "",
             "Matrix-product peak (2048²): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in
                                                         speed["matmul_peak_gflops"].items()), "",
             "| Network | Parameters | GFLOPs/slice | ms/slice fp32 | ms/slice bf16 | ms/slice ONNX Runtime (fp32) "
             "| GFLOP/s fp32 (of peak) | GFLOP/s bf16 (of peak) |", "|---|---|---|---|---|---|---|---|"]
    for name, row in speed["networks"].items():
        def achieved(p):
            if f"gflops_per_s_{p}" not in row:
                return "n/a"
            return f"{row[f'gflops_per_s_{p}']:.0f} ({_fmt(row[f'fraction_of_peak_{p}'], 2)})"
        lines.append(f"| {name} | {row['parameters'] / 1e6:.2f} M | {row['gflops_per_slice']:.2f} | "
                     f"{_fmt(row.get('ms_per_slice_fp32'), 1)} | {_fmt(row.get('ms_per_slice_bf16'), 1)} | "
                     f"{_fmt(row.get('ms_per_slice_onnx'), 1)} | {achieved('fp32')} | {achieved('bf16')} |")
    lines += _sampler_lines(speed["samplers"])
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


PLOTS = ("dice_vs_label_fraction.png", "time_by_stage.png", "dice_vs_sampler_seconds.png")


def plots(results: dict, out: Path) -> list[Path]:
    """Dice against label fraction, time by stage and Dice against sampler time, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    if results["rows"]:
        written.append(_save(_label_fraction_plot(plt, results["rows"]), out / PLOTS[0]))
    speed = results.get("speed")
    if speed:
        written.append(_save(_stage_plot(plt, speed["segment"]["stage_seconds"]), out / PLOTS[1]))
        if speed["samplers"]:
            written.append(_save(_sampler_plot(plt, speed["samplers"]), out / PLOTS[2]))
    return written


def _sampler_lines(samplers: list[dict]) -> list[str]:
    """The sampler table (none for weights without a stage 1)."""
    if not samplers:
        return []
    how = (f"on {samplers[0]['slices']} fixed tumour slices; seconds per patient extrapolated to all brain slices"
           if samplers[0]["extrapolated"] else "on whole patients")
    lines = ["", f"Samplers ({how}):", "",
             "| Sampler | Network calls/slice | Dice (WT, slices) | Healthy SSIM | ET/healthy residual "
             "| ms/slice/step | Overhead outside the network | s per patient |", "|---|---|---|---|---|---|---|---|"]
    for row in samplers:
        lines.append(f"| {row['sampler']} | {row['steps']} | {row['dice']:.3f} | {row['healthy_ssim']:.3f} | "
                     f"{_fmt(row['residual_ratio'], 2)} | {row['ms_per_slice_per_step']:.1f} | "
                     f"{row['overhead_fraction']:.1%} | {row['seconds_per_patient']:.1f} |")
    return lines


def _label_fraction_plot(plt, rows: list[dict]):
    """Per-volume Dice (mean, bars ± std over patients) against the labelled fraction, ticks at each fraction."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    fractions = set()
    for base, colour in (("UNet2D", "tab:blue"), ("ReCoSeg", "tab:red")):
        for region, style in (("whole", "-o"), ("core", ":^"), ("enhancing", "--s")):
            points = sorted((r["label_fraction"], r["dice"], r["dice_std_patients"]) for r in rows
                            if r["region"] == region and r["dice"] is not None
                            and (r["system"] == base or r["system"].startswith(f"{base}, ")
                                 and "labels" in r["system"]))
            if points:
                x, y, err = zip(*points)
                fractions.update(x)
                ax.errorbar(x, y, yerr=err, fmt=style, color=colour, capsize=3, markersize=4,
                            label=f"{base} {REGION_ABBREVIATIONS[region]}")
    ax.set_xscale("log")
    ax.set_xticks(sorted(fractions), [f"{f:g}" for f in sorted(fractions)])
    ax.minorticks_off()
    ax.set_ylim(0, 1)
    ax.set_xlabel("labelled fraction of training patients")
    ax.set_ylabel("per-volume Dice (± std over patients)")
    ax.legend(fontsize=7, ncol=2)
    return fig


def _stage_plot(plt, stages: dict[str, float]):
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    bars = ax.bar(list(stages), list(stages.values()))
    ax.bar_label(bars, labels=[f"{v:.2f} s" for v in stages.values()], fontsize=8)
    ax.tick_params(axis="x", labelrotation=30)
    ax.set_ylabel("median seconds per patient")
    ax.set_title("recoseg segment by stage")
    ax.margins(y=0.15)
    return fig


def _sampler_plot(plt, samplers: list[dict]):
    """Dice against seconds per patient, one labelled marker per setting; the y axis spans at least 0.2 of Dice
    so that noise between settings does not look like a trend."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for s in samplers:
        ax.plot(s["seconds_per_patient"], s["dice"], "o", label=f"{s['sampler']} × {s['steps']}")
    dices = [s["dice"] for s in samplers]
    middle = (max(dices) + min(dices)) / 2
    half = max(0.1, (max(dices) - min(dices)) / 2 + 0.02)
    ax.set_ylim(max(0.0, middle - half), min(1.0, middle + half))
    ax.set_xscale("log")
    ax.set_xlabel("seconds per patient" + (" (extrapolated)" if samplers[0]["extrapolated"] else ""))
    ax.set_ylabel("Dice (whole tumour, sampled slices)")
    ax.legend(fontsize=7)
    return fig


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
