"""In-memory slice sets drawn from a training cache, with random batches and flips."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recoseg_cli.data.cache import CachedSubject
from recoseg_cli.regions import region_mask


@dataclass
class SliceSet:
    """Slices of several subjects: images (N, 4, S, S), brain (N, S, S), labels (N, S, S), subject index."""

    images: np.ndarray
    brain: np.ndarray
    seg: np.ndarray
    subject: np.ndarray
    case_ids: list[str]
    synth: np.ndarray | None = None
    """Synthetic T1ce (N, S, S), when the segmenter needs it."""
    _region_slices: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_subjects(cls, subjects: list[CachedSubject]) -> SliceSet:
        if not subjects:
            raise ValueError("no subjects to build slices from")
        images = np.concatenate([s.images.astype(np.float16) for s in subjects])
        brain = np.concatenate([s.brain for s in subjects])
        seg = np.concatenate([s.seg if s.seg is not None else np.zeros(s.brain.shape, np.uint8) for s in subjects])
        subject = np.concatenate([np.full(len(s.brain), i) for i, s in enumerate(subjects)])
        return cls(images, brain, seg, subject, [s.case_id for s in subjects])

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray) -> SliceSet:
        synth = self.synth[index] if self.synth is not None else None
        return SliceSet(self.images[index], self.brain[index], self.seg[index], self.subject[index], self.case_ids,
                        synth)

    def with_synth(self, per_subject: dict[str, np.ndarray]) -> SliceSet:
        """The same slices with each subject's synthetic T1ce attached."""
        synth = np.concatenate([per_subject[case].astype(np.float16) for case in self.case_ids])
        return SliceSet(self.images, self.brain, self.seg, self.subject, self.case_ids, synth)

    def arrays(self, index: np.ndarray, flip: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """float32 arrays for ``index``; slices with ``flip`` set are mirrored left-right."""
        out = {"images": self.images[index].astype(np.float32), "brain": self.brain[index].copy(),
               "tumour": (self.seg[index] > 0).astype(np.float32), "seg": self.seg[index].copy()}
        if self.synth is not None:
            out["synth"] = self.synth[index].astype(np.float32)
        if flip is not None and flip.any():
            for value in out.values():
                value[flip] = value[flip][..., ::-1, :]
        return out

    def random_index(self, rng: np.random.Generator, size: int, foreground: float = 0.0,
                     subject_weights: np.ndarray | None = None,
                     foreground_region: str = "whole") -> tuple[np.ndarray, np.ndarray]:
        """Random slice indices and left-right flips (half of them); about ``foreground`` of the indices are
        drawn from slices that hold ``foreground_region`` (all uniformly when none does). ``subject_weights``
        (one per subject) make a subject's slices that much more or less likely to be drawn."""
        if subject_weights is None:
            index = rng.integers(0, len(self), size)
        else:
            index = rng.choice(len(self), size, p=self._probabilities(subject_weights, np.arange(len(self))))
        tumour = self.region_slices(foreground_region)
        if foreground > 0 and len(tumour):
            chosen = rng.random(size) < foreground
            if subject_weights is None:
                index[chosen] = tumour[rng.integers(0, len(tumour), int(chosen.sum()))]
            else:
                index[chosen] = rng.choice(tumour, int(chosen.sum()), p=self._probabilities(subject_weights, tumour))
        return index, rng.random(size) < 0.5

    def _probabilities(self, subject_weights: np.ndarray, index: np.ndarray) -> np.ndarray:
        weights = np.asarray(subject_weights, float)[self.subject[index]]
        return weights / weights.sum()

    def region_slices(self, region: str) -> np.ndarray:
        """Indices of the slices whose labels hold ``region`` (``regions.REGIONS``)."""
        if region not in self._region_slices:
            holds = region_mask(self.seg, region).reshape(len(self.seg), -1).any(axis=1)
            self._region_slices[region] = np.flatnonzero(holds)
        return self._region_slices[region]
