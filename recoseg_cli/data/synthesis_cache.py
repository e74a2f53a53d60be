"""Synthetic T1ce of every cached subject, computed once per DDPM weights and sampler settings."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np

from recoseg_cli.constants import CONDITION_INDEX, TARGET_INDEX
from recoseg_cli.data.cache import CachedSubject
from recoseg_cli.diffusion.sampler_config import SamplerConfig
from recoseg_cli.io.outputs import write_atomically
from recoseg_cli.networks import StageOne


def synthesis_key(weights_sha256: str, sampler: SamplerConfig, seed: int) -> str:
    payload = json.dumps({"weights": weights_sha256, "sampler": sampler.to_dict(), "seed": seed}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def cached_synthesis(cache: Path, subjects: list[CachedSubject], synthesizer: StageOne, weights_sha256: str,
                     sampler: SamplerConfig, seed: int = 0, batch_size: int = 32,
                     on_subject: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """Synthetic T1ce slices per subject, read from ``cache/synthesis/<key>`` or computed and stored there."""
    folder = Path(cache) / "synthesis" / synthesis_key(weights_sha256, sampler, seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for subject in subjects:
        path = folder / f"{subject.case_id}.npy"
        if path.is_file():
            out[subject.case_id] = np.load(path).astype(np.float32)
        else:
            synth = synthesizer.synthesize(subject.images[:, CONDITION_INDEX], subject.brain, sampler, seed,
                                           batch_size, start=subject.images[:, TARGET_INDEX])
            write_atomically(path, lambda tmp, synth=synth: _save(tmp, synth.astype(np.float16)))
            out[subject.case_id] = synth
        if on_subject:
            on_subject(subject.case_id)
    return out


def _save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array)
