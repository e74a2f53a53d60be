"""Training data from a cache or a raw cohort (preprocessed into ``RUN_DIR/cache`` on the fly)."""

from __future__ import annotations

from pathlib import Path

from recoseg_cli.data.build_cache import build_cache
from recoseg_cli.data.cache import MANIFEST, CachedSubject, read_cache
from recoseg_cli.data.slices import SliceSet
from recoseg_cli.errors import InputError
from recoseg_cli.preprocess import PreprocessConfig


def load_training_cache(data: Path, run_dir: Path, config: PreprocessConfig, workers: int = 1,
                        val_fraction: float = 0.2, seed: int = 0) -> tuple[Path, dict, list[CachedSubject]]:
    """Read ``data`` when it is a cache, else preprocess the cohort into ``run_dir/cache`` (resumable)."""
    data = Path(data)
    if not data.exists():
        raise InputError(f"{data}: no such folder")
    if not (data / MANIFEST).is_file():
        cache = run_dir / "cache"
        build_cache(data, cache, config, workers=workers, val_fraction=val_fraction, seed=seed)
        data = cache
    return (data, *read_cache(data))


def split_slice_sets(subjects: list[CachedSubject]) -> tuple[SliceSet, SliceSet]:
    """Training and validation slice sets (the last training subject validates when none is held out)."""
    train = [s for s in subjects if s.split == "train"]
    val = [s for s in subjects if s.split == "val"] or train[-1:]
    if not train:
        raise InputError("no training subjects")
    return SliceSet.from_subjects(train), SliceSet.from_subjects(val)
