"""Build or resume a training cache from a cohort folder."""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nibabel as nib

from recoseg_cli.data.cache import (cache_subject, prepare_cache_folder, split_subjects, subject_entry,
                                    subject_path, write_manifest)
from recoseg_cli.io.discovery import Patient, discover_cohort
from recoseg_cli.pipeline import default_label_scheme
from recoseg_cli.preprocess import PreprocessConfig


@dataclass
class CacheSummary:
    """What a preprocess run produced."""

    subjects: int
    skipped: int
    slices: int
    tumour_slices: int
    val_subjects: int
    seconds: float
    bytes: int


def build_cache(cohort: Path, cache: Path, config: PreprocessConfig, label_scheme: str | None = None,
                workers: int = 1, val_fraction: float = 0.2, seed: int = 0, overwrite: bool = False,
                on_start: Callable[[int], None] | None = None,
                on_subject: Callable[[str], None] | None = None) -> CacheSummary:
    """Preprocess every patient of ``cohort`` into ``cache``; subjects already cached are skipped."""
    start = time.perf_counter()
    patients = discover_cohort(cohort)
    digest = prepare_cache_folder(cache, config, label_scheme, overwrite)
    if on_start:
        on_start(len(patients))
    done = {p.case_id for p in patients if subject_path(cache, p.case_id).is_file()}
    todo = [p for p in patients if p.case_id not in done]
    entries: dict[str, dict] = {}
    for patient in patients:
        if patient.case_id in done:
            entries[patient.case_id] = _cached_entry(patient, cache, label_scheme)
            if on_subject:
                on_subject(patient.case_id)
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [(p, pool.submit(cache_subject, p, cache, config, label_scheme)) for p in todo]
            for patient, future in futures:
                entries[patient.case_id] = future.result()
                if on_subject:
                    on_subject(patient.case_id)
    else:
        for patient in todo:
            entries[patient.case_id] = cache_subject(patient, cache, config, label_scheme)
            if on_subject:
                on_subject(patient.case_id)
    splits = split_subjects([p.case_id for p in patients], val_fraction, seed)
    subjects = [{**entries[p.case_id], "split": splits[p.case_id]} for p in patients]
    write_manifest(cache, {"config_hash": digest, "config": config.to_dict(),
                           "label_scheme": label_scheme, "val_fraction": val_fraction, "seed": seed,
                           "complete": True, "subjects": subjects})
    return CacheSummary(
        subjects=len(subjects), skipped=len(done), slices=sum(s["slices"] for s in subjects),
        tumour_slices=sum(s["tumour_slices"] for s in subjects),
        val_subjects=sum(s["split"] == "val" for s in subjects), seconds=time.perf_counter() - start,
        bytes=sum(f.stat().st_size for f in (cache / "subjects").glob("*.npz")),
    )


def _cached_entry(patient: Patient, cache: Path, label_scheme: str | None) -> dict:
    shape = nib.load(str(patient.images["flair"])).shape[:3]
    return subject_entry(patient, subject_path(cache, patient.case_id), shape,
                         label_scheme or default_label_scheme(patient))
