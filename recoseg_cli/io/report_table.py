"""Cohort reports as CSV: one row per patient (volumes, checks, uncertainty, metrics, seconds)."""

from __future__ import annotations

import csv
from pathlib import Path

from recoseg_cli.errors import InputError
from recoseg_cli.io.outputs import write_atomically
from recoseg_cli.regions import REGIONS

COLUMNS = (["case_id", "status", "error", "output"] + [f"{r}_ml" for r in REGIONS]
           + ["warnings", "t1_t1ce_check", "flair_t2_check", "uncertainty_score"]
           + [f"{metric}_{r}" for metric in ("dice", "hd95_mm") for r in REGIONS] + ["seconds"])
"""CSV columns; metrics are empty where the patient had no ground truth."""


def is_csv(path: Path) -> bool:
    """Whether a report path asks for CSV (else JSON)."""
    return Path(path).suffix.lower() == ".csv"


def report_row(report: dict, status: str = "ok") -> dict:
    """The CSV row of one patient's report (a row read back from an earlier CSV passes through)."""
    if "volumes_ml" not in report:
        return {**{column: report.get(column, "") for column in COLUMNS}, "status": status}
    checks = report.get("sequence_checks", {})
    metrics = report.get("metrics_vs_ground_truth", {})
    row = {"case_id": report["case_id"], "status": status, "error": "", "output": report["output"],
           **{f"{r}_ml": report["volumes_ml"][r] for r in REGIONS},
           "warnings": " | ".join(report.get("warnings", [])),
           "t1_t1ce_check": checks.get("t1/t1ce", ""), "flair_t2_check": checks.get("flair/t2", ""),
           "uncertainty_score": "" if report.get("uncertainty_score") is None else report["uncertainty_score"],
           "seconds": report.get("seconds_total", "")}
    for r in REGIONS:
        row[f"dice_{r}"] = metrics.get(r, {}).get("dice", "")
        row[f"hd95_mm_{r}"] = metrics.get(r, {}).get("hd95", "")
    return row


def failed_row(case_id: str, error: str) -> dict:
    return {**{column: "" for column in COLUMNS}, "case_id": case_id, "status": "failed", "error": error}


def write_rows(path: Path, rows: list[dict]) -> None:
    """Write the rows atomically, with a header line."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    write_atomically(Path(path), write)


def read_rows(path: Path) -> dict[str, dict]:
    """Rows of an earlier cohort CSV by case id."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise InputError(f"{path}: cannot read the earlier report ({exc.strerror})") from None
    if rows and "case_id" not in rows[0]:
        raise InputError(f"{path}: not a cohort report of `recoseg segment`; give another --report")
    return {row["case_id"]: row for row in rows}
