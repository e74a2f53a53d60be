"""``recoseg benchmark``: run the accuracy and speed studies and write their outputs."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path


from recoseg_cli.benchmark.plan import QUICK, Plan
from recoseg_cli.benchmark.report import aggregate, terminal_table, write_outputs
from recoseg_cli.benchmark.speed import run_speed
from recoseg_cli.benchmark.study import run_study
from recoseg_cli.console import console
from recoseg_cli.devices import machine_description, precision_name, resolve_device
from recoseg_cli.errors import InputError
from recoseg_cli.io.outputs import check_output_folder


def run_benchmark(plan: Plan, out: Path | None, data: Path | None, device: str, speed_only: bool,
                  quiet: bool, command: str = "recoseg benchmark") -> dict:
    """Run the studies in a temporary work folder (removed afterwards) and write the outputs into ``out``."""
    if out is not None:
        check_output_folder(out)
        for name in ("results.json", "results.md", "results.csv"):
            if (out / name).exists():
                raise InputError(f"{out / name}: already exists; choose another --out folder")
    if data is not None and not data.is_dir():
        raise InputError(f"{data}: no such folder")
    start = time.perf_counter()

    def log(message: str) -> None:
        if not quiet:
            console.print(f"[dim]{time.perf_counter() - start:6.0f} s[/dim]  {message}")

    log(f"budgets: {budget_text(plan)}")
    work = Path(tempfile.mkdtemp(prefix="recoseg-benchmark-"))
    try:
        study = None if speed_only else run_study(plan, work, data, device, log)
        speed = run_speed(plan, work, device, log)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = {
        "meta": {"command": command,
                 "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine_description(),
                 "budgets": budget_text(plan), "plan": plan.to_dict(), "seconds": time.perf_counter() - start,
                 "precision": f"training and inference {precision_name(resolve_device(device))} (bf16 autocast where "
                              "it pays: a GPU with bf16, a CPU with AMX)"},
        "study": study, "rows": aggregate(study) if study else [], "speed": speed,
    }
    if not quiet and study:
        console.print(terminal_table(results))
    if out is not None:
        written = write_outputs(results, out)
        log("wrote " + ", ".join(p.name for p in written))
    log(f"benchmark finished in {(time.perf_counter() - start) / 60:.1f} min")
    return results


def budget_text(plan: Plan) -> str:
    split = f"{plan.folds} folds" if plan.folds >= 2 else "one split"
    return (f"{split}, slices {plan.size}², "
            f"stage 1 {plan.stage_one_steps} steps, segmenters {plan.seg_steps} steps, batch {plan.batch_size} slices "
            f"(3D: same voxels per step), seeds {plan.seed}..{plan.seed + plan.repeats - 1}")


def make_plan(quick: bool, seed: int, repeats: int, full_samplers: bool, overrides: dict) -> Plan:
    plan = QUICK if quick else Plan()
    values = {k: v for k, v in overrides.items() if v is not None}
    return replace(plan, seed=seed, repeats=repeats, full_samplers=full_samplers, **values)
