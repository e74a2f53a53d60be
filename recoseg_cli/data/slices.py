"""In-memory slice sets drawn from a training cache, with random batches and flips."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recoseg_cli.data.cache import CachedSubject


@dataclass
class SliceSet:
    """Slices of several subjects: images (N, 4, S, S), brain (N, S, S), labels (N, S, S), subject index."""

    images: np.ndarray
    brain: np.ndarray
    seg: np.ndarray
    has_seg: np.ndarray
    subject: np.ndarray
    case_ids: list[str]

    @classmethod
    def from_subjects(cls, subjects: list[CachedSubject]) -> SliceSet:
        if not subjects:
            raise ValueError("no subjects to build slices from")
        images = np.concatenate([s.images.astype(np.float16) for s in subjects])
        brain = np.concatenate([s.brain for s in subjects])
        seg = np.concatenate([s.seg if s.seg is not None else np.zeros(s.brain.shape, np.uint8) for s in subjects])
        has_seg = np.concatenate([np.full(len(s.brain), s.seg is not None) for s in subjects])
        subject = np.concatenate([np.full(len(s.brain), i) for i, s in enumerate(subjects)])
        return cls(images, brain, seg, has_seg, subject, [s.case_id for s in subjects])

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray) -> SliceSet:
        return SliceSet(self.images[index], self.brain[index], self.seg[index], self.has_seg[index],
                        self.subject[index], self.case_ids)

    def batch(self, index: np.ndarray, device: torch.device, flip: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """Tensors for ``index``; slices with ``flip`` set are mirrored left-right."""
        arrays = {"images": self.images[index].astype(np.float32), "brain": self.brain[index].astype(np.float32),
                  "tumour": (self.seg[index] > 0).astype(np.float32), "has_seg": self.has_seg[index]}
        if flip is not None and flip.any():
            for key in ("images", "brain", "tumour"):
                arrays[key][flip] = arrays[key][flip][..., ::-1, :]
        out = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in arrays.items()}
        for key in ("brain", "tumour"):
            out[key] = out[key][:, None]
        return out

    def random_batch(self, rng: np.random.Generator, size: int, device: torch.device,
                     mask: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """A batch of random slices (from ``mask`` when given), half of them mirrored."""
        pool = np.flatnonzero(mask) if mask is not None else None
        index = pool[rng.integers(0, len(pool), size)] if pool is not None else rng.integers(0, len(self), size)
        return self.batch(index, device, rng.random(size) < 0.5)
