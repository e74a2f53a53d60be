"""Weights files: save, load (offline, ``weights_only``), bundled-weights registry and checksum."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from recoseg_cli.errors import InputError, WeightsError
from recoseg_cli.io.outputs import write_atomically

if TYPE_CHECKING:
    from torch import nn

FORMAT = "recoseg-weights/1"


def _bundled_dir() -> Path:
    """Where the bundled weights are: package data once installed, else ``weights/`` beside the package."""
    try:
        return Path(str(files("recoseg_cli.bundled_weights")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "weights"


BUNDLED_DIR = _bundled_dir()
BUNDLED_MODELS = {"accurate": "recoseg_accurate.pt", "ddpm": "recoseg_ddpm.pt", "fast": "recoseg_fast.pt",
                  "hires": "recoseg_hires.pt", "any-subset": "recoseg_any_subset.pt",
                  "flair+t1ce": "recoseg_flair_t1ce.pt", "flair+t1+t2": "recoseg_flair_t1_t2.pt"}
"""Bundled weights by ``--model`` name: "accurate" (the default; its residual comes from an L1 regressor), "ddpm"
(the same networks with the residual of the conditional DDPM), "fast" (one segmenter of the four sequences, no
stage 1 and no residual: the shortest command, Dice a little under "accurate"'s), "hires" (accurate's recipe on
160 x 160 slices with deep supervision: higher tumour-core Dice, a longer command, over the speed budget where
timed), "any-subset" (any set of sequences holding FLAIR or T2), "flair+t1ce" (FLAIR and T1ce alone) and
"flair+t1+t2" (exams without contrast); see the model card."""
DEFAULT_MODEL = "accurate"
SUBSET_MODEL = "any-subset"
"""The bundled model that takes any set of sequences holding FLAIR or T2."""
INCOMPLETE_EXAM_MODELS = ("flair+t1ce", "flair+t1+t2", SUBSET_MODEL)
"""Bundled models the default hands an exam missing a sequence, the first whose sequences the exam holds: the
FLAIR + T1ce model for an exam holding both, the no-contrast model for one holding FLAIR, T1 and T2 without T1ce,
else the any-subset model. Each was measured better on its sets than the any-subset model, and than the default
(which would synthesize a missing T1ce) on tumour core and enhancing tumour."""
BUNDLED_FILE = BUNDLED_MODELS[DEFAULT_MODEL]
CHECKSUMS = "SHA256SUMS"
ENV_VAR = "RECOSEG_WEIGHTS"


@dataclass
class Weights:
    """A loaded weights file: which stage, the model config, the tensors and stage-specific extras."""

    path: Path
    stage: str
    model_config: dict
    state_dict: dict
    extra: dict
    sha256: str

    def payload(self) -> dict:
        """The dict a weights file holds, e.g. to embed these weights in another file."""
        return {"format": FORMAT, "stage": self.stage, "model_config": self.model_config,
                "state_dict": self.state_dict, "extra": self.extra}


def save_weights(path: Path, stage: str, model: nn.Module, extra: dict) -> None:
    """Write a model's config and fp32 tensors, loadable with ``torch.load(weights_only=True)``."""
    import torch

    payload = weights_payload(stage, model, extra)
    write_atomically(Path(path), lambda tmp: torch.save(payload, tmp))


def weights_payload(stage: str, model: nn.Module, extra: dict) -> dict:
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    return {"format": FORMAT, "stage": stage, "model_config": model.config.to_dict(), "state_dict": state,
            "extra": extra}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundled_checksum(name: str) -> str | None:
    sums = BUNDLED_DIR / CHECKSUMS
    if not sums.is_file():
        return None
    for line in sums.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == name:
            return parts[0]
    return None


def resolve_weights_path(option: Path | None, model: str | None = None) -> tuple[Path, str | None]:
    """The weights file to use and the checksum it must match (bundled weights only): ``option`` (--weights),
    else the bundled ``model`` (--model), else $RECOSEG_WEIGHTS, else the default bundled model."""
    if option is not None and model is not None:
        raise InputError("--weights and --model both choose the weights; give one")
    if option is not None:
        return Path(option), None
    if model is None and os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]), None
    if (model or DEFAULT_MODEL) not in BUNDLED_MODELS:
        raise InputError(f"--model {model}: choose {', '.join(BUNDLED_MODELS)}")
    name = BUNDLED_MODELS[model or DEFAULT_MODEL]
    return BUNDLED_DIR / name, bundled_checksum(name)


def load_weights(path: Path, stages: tuple[str, ...], expected_sha256: str | None = None) -> Weights:
    """Load and check a weights file; ``stages`` lists the stages the caller can use."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: weights file not found")
    if path.is_dir():
        raise WeightsError(f"{path}: is a folder, expected a weights file")
    digest = sha256_of(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise WeightsError(f"{path}: sha256 {digest[:12]}... does not match the recorded {expected_sha256[:12]}...; "
                           "the file is corrupt or was replaced")
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable weights file ({exc.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a recoseg weights file")
    if payload["stage"] not in stages:
        raise WeightsError(f"{path}: holds {payload['stage']} weights; this command needs {' or '.join(stages)} weights")
    return Weights(path, payload["stage"], payload["model_config"], payload["state_dict"], payload["extra"], digest)


def nested_weights(parent: Weights, key: str) -> Weights:
    """Weights embedded in another file's extras (the DDPM inside a segmenter file)."""
    payload = parent.extra.get(key)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise WeightsError(f"{parent.path}: has no embedded {key} weights")
    return Weights(parent.path, payload["stage"], payload["model_config"], payload["state_dict"], payload["extra"],
                   parent.sha256)
