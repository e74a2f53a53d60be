"""Training cache: one compressed array file per subject plus ``manifest.json``."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recoseg_cli import __version__
from recoseg_cli.constants import MODALITIES
from recoseg_cli.errors import InputError
from recoseg_cli.io.discovery import Patient
from recoseg_cli.io.json_io import write_json
from recoseg_cli.io.outputs import write_atomically
from recoseg_cli.pipeline import load_patient
from recoseg_cli.preprocess import PreprocessConfig, slice_patient

CACHE_FORMAT = 1
MANIFEST = "manifest.json"
NORMALIZATION = "z-score inside the non-zero brain mask, clipped to +-clip, scaled to [-1, 1], background -1"


def config_hash(config: PreprocessConfig, label_scheme: str | None) -> str:
    """Stable hash of everything that changes the cached arrays."""
    payload = json.dumps({"format": CACHE_FORMAT, "config": config.to_dict(), "labels": label_scheme,
                          "modalities": MODALITIES}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def subject_path(cache: Path, case_id: str) -> Path:
    return cache / "subjects" / f"{case_id}.npz"


def cache_subject(patient: Patient, cache: Path, config: PreprocessConfig, label_scheme: str | None) -> dict:
    """Preprocess one patient into ``subjects/<case>.npz``; returns its manifest entry."""
    volumes = load_patient(patient, MODALITIES, label_scheme)
    sliced = slice_patient(volumes.images, MODALITIES, config, volumes.seg)
    arrays = {"images": sliced.images.astype(np.float16), "brain": sliced.brain,
              "slice_index": np.asarray(sliced.transform.slices, dtype=np.int16)}
    if sliced.seg is not None:
        arrays["seg"] = sliced.seg
    write_atomically(subject_path(cache, patient.case_id), lambda tmp: _save_npz(tmp, arrays))
    return _entry(patient, volumes.geometry.shape, volumes.label_scheme, arrays)


def _save_npz(path: Path, arrays: dict) -> None:
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def subject_entry(patient: Patient, path: Path, shape, label_scheme: str) -> dict:
    """Manifest entry of an already cached subject, read back from its array file."""
    with np.load(path) as data:
        return _entry(patient, shape, label_scheme, {k: data[k] for k in ("images", "seg") if k in data})


def _entry(patient: Patient, shape, label_scheme: str, arrays: dict) -> dict:
    seg = arrays.get("seg")
    return {"case_id": patient.case_id, "folder": str(patient.folder), "shape": list(shape),
            "slices": int(arrays["images"].shape[0]),
            "tumour_slices": int((seg > 0).any(axis=(1, 2)).sum()) if seg is not None else 0,
            "has_seg": seg is not None, "label_scheme": label_scheme}


def split_subjects(case_ids: list[str], val_fraction: float, seed: int) -> dict[str, str]:
    """Assign each subject to "train" or "val", by subject, reproducibly for a seed."""
    order = np.random.default_rng(seed).permutation(len(case_ids))
    n_val = int(round(val_fraction * len(case_ids)))
    if val_fraction > 0 and len(case_ids) > 1:
        n_val = min(max(n_val, 1), len(case_ids) - 1)
    val = {case_ids[i] for i in order[:n_val]}
    return {c: ("val" if c in val else "train") for c in case_ids}


def prepare_cache_folder(cache: Path, config: PreprocessConfig, label_scheme: str | None, overwrite: bool) -> str:
    """Create or reuse a cache folder; refuse one made with another config unless ``overwrite``."""
    digest = config_hash(config, label_scheme)
    manifest = cache / MANIFEST
    if cache.exists() and not cache.is_dir():
        raise InputError(f"{cache}: exists and is not a folder")
    if manifest.exists():
        existing = json.loads(manifest.read_text()).get("config_hash")
        if existing != digest:
            if not overwrite:
                raise InputError(f"{cache}: cache was made with another configuration ({existing}); "
                                 "use --overwrite to rebuild it")
            shutil.rmtree(cache / "subjects", ignore_errors=True)
    elif cache.is_dir() and any(cache.iterdir()) and not overwrite:
        raise InputError(f"{cache}: folder exists and is not a recoseg cache; use --overwrite or another folder")
    try:
        (cache / "subjects").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{cache}: cannot create the cache folder ({exc.strerror})") from None
    write_manifest(cache, {"config_hash": digest, "config": config.to_dict(), "label_scheme": label_scheme,
                           "complete": False, "subjects": []})
    return digest


def write_manifest(cache: Path, fields: dict) -> None:
    manifest = {"format": CACHE_FORMAT, "code_version": __version__, "modalities": list(MODALITIES),
                "normalization": NORMALIZATION, **fields}
    write_json(cache / MANIFEST, manifest)


@dataclass
class CachedSubject:
    """Arrays of one cached subject."""

    case_id: str
    images: np.ndarray
    """(N, 4, S, S) float16, as cached (half the memory of float32; networks cast their batches)."""
    brain: np.ndarray
    seg: np.ndarray | None
    split: str


def read_cache(cache: Path) -> tuple[dict, list[CachedSubject]]:
    """The manifest and every subject of a complete cache."""
    manifest_path = Path(cache) / MANIFEST
    if not manifest_path.is_file():
        raise InputError(f"{cache}: not a recoseg cache (no {MANIFEST})")
    manifest = json.loads(manifest_path.read_text())
    if not manifest.get("complete"):
        raise InputError(f"{cache}: cache is incomplete; run `recoseg preprocess` again to finish it")
    subjects = []
    for entry in manifest["subjects"]:
        with np.load(subject_path(Path(cache), entry["case_id"])) as data:
            subjects.append(CachedSubject(entry["case_id"], data["images"], data["brain"],
                                          data["seg"] if "seg" in data else None, entry["split"]))
    return manifest, subjects
