"""A sampler's settings (importable without torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

SAMPLERS = ("onestep", "ddim", "ddpm")


@dataclass(frozen=True)
class SamplerConfig:
    """Which sampler and how many network calls per slice."""

    name: str = "onestep"
    steps: int = 1
    eta: float = 0.0
    start_step: int = 999

    def to_dict(self) -> dict:
        return asdict(self)
