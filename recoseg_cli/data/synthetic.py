"""Synthetic BraTS-style patients on real anatomy (MNI152 2009 template with GM/WM maps).

The four sequences of a patient share one bias field (one session, one coil) with small
per-sequence deviations; T1ce is the T1 acquisition repeated after contrast, so it differs from
T1 only by contrast uptake (vessels, enhancing tumour rim), a global gain and its own noise.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from recoseg_cli.constants import MODALITIES
from recoseg_cli.io.outputs import write_atomically

FIELD_OF_VIEW_MM = (240.0, 240.0, 155.0)
GRID_CENTRE_MM = (0.0, -17.0, 5.0)
COARSE_STEP_MM = 4.0

# Relative signal per tissue: csf, gm, wm, necrosis, edema, enhancing tissue before contrast.
TISSUE_SIGNAL = {
    "t1": (0.30, 0.58, 0.80, 0.22, 0.48, 0.50),
    "t2": (1.00, 0.52, 0.36, 0.92, 0.78, 0.74),
    "flair": (0.12, 0.58, 0.44, 0.50, 0.95, 0.90),
}


@dataclass(frozen=True)
class SyntheticConfig:
    """Grid and variation of synthetic patients; shape (240, 240, 155) is BraTS's 1 mm grid."""

    shape: tuple[int, int, int] = (240, 240, 155)
    low_grade_fraction: float = 0.2

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(f / s for f, s in zip(FIELD_OF_VIEW_MM, self.shape))

    @property
    def affine(self) -> np.ndarray:
        """LPS-oriented affine like BraTS files, centred on the brain."""
        sx, sy, sz = self.spacing
        affine = np.diag([-sx, -sy, sz, 1.0])
        centre_voxel = (np.array(self.shape) - 1) / 2
        affine[:3, 3] = np.array(GRID_CENTRE_MM) - affine[:3, :3] @ centre_voxel
        return affine


@functools.lru_cache(maxsize=1)
def _atlas() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNI152 GM, WM and brain-mask maps (float32) and their voxel-to-world affine."""
    from nilearn import datasets

    gm = datasets.load_mni152_gm_template(resolution=1)
    wm = datasets.load_mni152_wm_template(resolution=1)
    mask = datasets.load_mni152_brain_mask(resolution=1)
    return (gm.get_fdata(dtype=np.float32), wm.get_fdata(dtype=np.float32),
            mask.get_fdata(dtype=np.float32), gm.affine)


def _upsample(field: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Trilinear upsampling of a coarse field to ``shape`` (corners aligned)."""
    tensor = torch.from_numpy(np.ascontiguousarray(field, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=shape, mode="trilinear", align_corners=True)[0, 0].numpy()


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    return field / (field.std() + 1e-8)


def _rotation(rng: np.random.Generator, max_degrees: float) -> np.ndarray:
    angles = np.deg2rad(rng.uniform(-max_degrees, max_degrees, 3))
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass
class _Tumour:
    centre: np.ndarray
    axes: np.ndarray
    core_radius: float
    rim: float
    necrosis_fraction: float
    edema_extent: float
    enhancement: float
    low_grade: bool
    push_mm: float


def _draw_tumour(rng: np.random.Generator, config: SyntheticConfig, world_to_mni, wm: np.ndarray,
                 mni_inverse: np.ndarray) -> _Tumour:
    """A glioma centred in deep white matter of a random hemisphere."""
    for _ in range(200):
        centre = np.array([rng.choice([-1, 1]) * rng.uniform(15, 45), rng.uniform(-60, 35), rng.uniform(-5, 45)])
        voxel = mni_inverse[:3, :3] @ world_to_mni(centre[None])[0] + mni_inverse[:3, 3]
        if ndimage.map_coordinates(wm, voxel[:, None], order=1)[0] > 0.6:
            break
    core_radius = rng.uniform(7, 20)
    return _Tumour(
        centre=centre,
        axes=_rotation(rng, 90) * rng.uniform(0.75, 1.3, 3)[None, :],
        core_radius=core_radius,
        rim=rng.uniform(1.5, 5.0),
        necrosis_fraction=rng.uniform(0.0, 0.75),
        edema_extent=rng.uniform(4, 22),
        enhancement=rng.uniform(0.35, 0.9),
        low_grade=rng.random() < config.low_grade_fraction,
        push_mm=rng.uniform(0.15, 0.4) * core_radius,
    )


def _grid_world(config: SyntheticConfig, shape: tuple[int, int, int]) -> np.ndarray:
    """World coordinates (mm) of a grid spanning the output volume's voxel centres, shape (*shape, 3)."""
    axes = [np.linspace(0, n - 1, m) for n, m in zip(config.shape, shape)]
    ijk = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    return ijk @ config.affine[:3, :3].T + config.affine[:3, 3]


def generate_patient(seed: int, config: SyntheticConfig = SyntheticConfig(), noise_draw: int = 0) -> dict[str, np.ndarray]:
    """Images (int16) and labels (uint8) of one synthetic patient, arrays in the config's grid.

    ``noise_draw`` changes only the acquisition noise, which gives a noise ceiling for synthesis metrics.
    """
    rng = np.random.default_rng(seed)
    noise_rng = np.random.default_rng([seed, noise_draw, 7])
    gm_atlas, wm_atlas, mask_atlas, mni_affine = _atlas()
    mni_inverse = np.linalg.inv(mni_affine)

    scale = rng.uniform(0.92, 1.08)
    rotation = _rotation(rng, 7) * scale
    pivot = np.array(GRID_CENTRE_MM)
    shift = rng.normal(0, 2, 3)

    def world_to_mni(points: np.ndarray) -> np.ndarray:
        return (points - pivot) @ rotation.T + pivot + shift

    tumour = _draw_tumour(rng, config, world_to_mni, wm_atlas, mni_inverse)

    coarse_shape = tuple(int(np.ceil(f / COARSE_STEP_MM)) + 1 for f in FIELD_OF_VIEW_MM)
    coarse_world = _grid_world(config, coarse_shape)
    warp = np.stack([_smooth_noise(rng, coarse_shape, 3.0) for _ in range(3)], -1) * rng.uniform(1.5, 3.5)
    offset = coarse_world - tumour.centre
    distance = np.linalg.norm(offset, axis=-1, keepdims=True) + 1e-3
    sigma = tumour.core_radius + tumour.edema_extent
    push = tumour.push_mm * np.exp(-0.5 * (distance / sigma) ** 2) * offset / distance
    sample_world = world_to_mni(coarse_world - push + warp)
    coarse_voxels = sample_world @ mni_inverse[:3, :3].T + mni_inverse[:3, 3]
    voxels = np.stack([_upsample(coarse_voxels[..., a], config.shape) for a in range(3)])
    gm = ndimage.map_coordinates(gm_atlas, voxels, order=1)
    wm = ndimage.map_coordinates(wm_atlas, voxels, order=1)
    brain = ndimage.map_coordinates(mask_atlas, voxels, order=1) > 0.5
    del voxels
    gm *= brain
    wm *= brain
    csf = np.clip(brain - gm - wm, 0, 1)

    labels = _tumour_labels(rng, config, tumour, coarse_shape, wm) * brain
    smooth = functools.partial(_coarse_field, rng, coarse_shape, config.shape)
    vessels = _vessels(smooth, csf + gm, config.spacing)
    heterogeneity = 1 + 0.25 * smooth(2.0)

    bias = smooth(5.0) * rng.uniform(0.1, 0.25)
    tissue_jitter = {m: rng.uniform(0.95, 1.05, 6) for m in TISSUE_SIGNAL}
    signals: dict[str, np.ndarray] = {}
    for modality, levels in TISSUE_SIGNAL.items():
        level = np.asarray(levels) * tissue_jitter[modality]
        signal = csf * level[0] + gm * level[1] + wm * level[2]
        for label, index in ((1, 3), (2, 4), (4, 5)):
            signal[labels == label] = level[index]
        if tumour.low_grade:
            signal[labels == 1] = level[5]
        signals[modality] = signal
    uptake = vessels * rng.uniform(0.5, 0.8) + (labels == 4) * tumour.enhancement * heterogeneity
    signals["t1ce"] = (signals["t1"] + uptake) * rng.uniform(0.9, 1.1)

    own_bias = {m: smooth(5.0) * 0.03 for m in ("flair", "t1", "t2")}
    own_bias["t1ce"] = own_bias["t1"] + smooth(5.0) * 0.005
    images: dict[str, np.ndarray] = {}
    for modality in MODALITIES:
        clean = signals[modality] * np.exp(bias + own_bias[modality])
        sigma_noise = rng.uniform(0.015, 0.035)
        real = clean + noise_rng.normal(0, sigma_noise, clean.shape).astype(np.float32)
        imag = noise_rng.normal(0, sigma_noise, clean.shape).astype(np.float32)
        magnitude = np.sqrt(real**2 + imag**2) * brain * rng.uniform(600, 1400)
        images[modality] = np.clip(np.round(magnitude), 0, np.iinfo(np.int16).max).astype(np.int16)
    images["seg"] = labels.astype(np.uint8)
    return images


def _coarse_field(rng: np.random.Generator, coarse_shape, shape, sigma: float) -> np.ndarray:
    """A smooth unit-variance random field drawn on the coarse grid and upsampled to ``shape``."""
    return _upsample(_smooth_noise(rng, coarse_shape, sigma), shape)


def _vessels(smooth, cortex: np.ndarray, spacing) -> np.ndarray:
    """Thin tubes where two smooth random fields both cross zero, mostly in sulci and cortex."""
    width = 0.05 * max(1.0, float(np.mean(spacing)))
    tubes = (np.abs(smooth(1.5)) < width) & (np.abs(smooth(1.5)) < 0.35)
    return (tubes & (cortex > 0.5)).astype(np.float32)


def _tumour_labels(rng: np.random.Generator, config: SyntheticConfig, tumour: _Tumour,
                   coarse_shape, wm: np.ndarray) -> np.ndarray:
    """Necrotic core (1), edema (2) and enhancing rim (4); low-grade cases have no label 4."""
    world = _grid_world(config, config.shape).astype(np.float32)
    local = (world - tumour.centre) @ tumour.axes.astype(np.float32)
    radius = np.linalg.norm(local, axis=-1)
    del world, local
    core_noise = _coarse_field(rng, coarse_shape, config.shape, 1.5)
    edema_noise = _coarse_field(rng, coarse_shape, config.shape, 2.0)
    core_distance = radius + 0.3 * tumour.core_radius * core_noise
    edema_distance = radius + 0.35 * (tumour.core_radius + tumour.edema_extent) * edema_noise
    core = core_distance < tumour.core_radius
    edema = (edema_distance < tumour.core_radius + tumour.edema_extent) & ((wm > 0.3) | (core_distance < tumour.core_radius + 3))
    labels = np.zeros(config.shape, dtype=np.uint8)
    labels[edema] = 2
    if tumour.low_grade:
        labels[core] = 1
        return labels
    inner = tumour.core_radius - tumour.rim
    necrotic = core_distance < min(inner, tumour.necrosis_fraction * tumour.core_radius)
    labels[core] = 4
    labels[necrotic] = 1
    return labels


def write_patient(folder: Path, case_id: str, volumes: dict[str, np.ndarray], affine: np.ndarray) -> None:
    """Write one patient in BraTS2020 layout: ``<case>_<modality>.nii.gz`` and ``<case>_seg.nii.gz``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in volumes.items():
        image = nib.Nifti1Image(data, affine)
        image.header.set_xyzt_units("mm", "sec")
        image.set_qform(affine, code=1)
        image.set_sform(affine, code=1)
        path = folder / f"{case_id}_{name}.nii.gz"
        write_atomically(path, lambda tmp, image=image: nib.save(image, str(tmp)))


def write_cohort(out: Path, count: int, seed: int = 0, config: SyntheticConfig = SyntheticConfig(),
                 prefix: str = "Synth", noise_draw: int = 0, on_patient=None) -> list[Path]:
    """Write ``count`` patients with seeds ``seed .. seed+count-1`` into ``out``; returns their folders."""
    folders = []
    for index in range(count):
        case_id = f"{prefix}_{seed + index:05d}"
        folder = Path(out) / case_id
        write_patient(folder, case_id, generate_patient(seed + index, config, noise_draw), config.affine)
        folders.append(folder)
        if on_patient is not None:
            on_patient(case_id)
    return folders
