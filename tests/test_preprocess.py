"""The slice transform: exact inverse, label preservation, geometry through files."""

import nibabel as nib
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import write_nifti
from recoseg_cli.io.nifti import load_volume, save_volume
from recoseg_cli.metrics import dice
from recoseg_cli.preprocess import (BACKGROUND, PreprocessConfig, SliceTransform, resize_slices, brain_mask, normalize,
                                   slice_patient)
from test_nifti_io import AXCODES, affine_for


def blob_volume(rng: np.random.Generator, shape) -> tuple[np.ndarray, np.ndarray]:
    """A brain-like ellipsoid mask and BraTS labels inside it."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"), -1)
    brain = (grid**2).sum(-1) < rng.uniform(0.5, 0.9)
    centre = rng.uniform(-0.3, 0.3, 3)
    distance = np.sqrt(((grid - centre) ** 2).sum(-1))
    seg = np.zeros(shape, np.uint8)
    seg[distance < 0.45] = 2
    seg[distance < 0.3] = 4
    seg[distance < 0.15] = 1
    return brain, seg * brain


shapes = st.tuples(st.integers(9, 40), st.integers(9, 40), st.integers(3, 12))


@settings(max_examples=25, deadline=None)
@given(shape=shapes, crop=st.booleans(), seed=st.integers(0, 1000))
def test_inverse_of_forward_is_exact_at_native_size(shape, crop, seed):
    rng = np.random.default_rng(seed)
    brain, seg = blob_volume(rng, shape)
    if not brain.any():
        return
    box = SliceTransform.fit(brain, PreprocessConfig(size=8, crop=crop)).side
    transform = SliceTransform.fit(brain, PreprocessConfig(size=box, crop=crop))
    restored = transform.inverse(transform.forward(seg, "nearest"), "nearest")
    np.testing.assert_array_equal(restored, seg)
    image = rng.random(shape).astype(np.float32)
    restored_image = transform.inverse(transform.forward(image, "linear"), "linear")
    inside = np.zeros(shape, bool)
    sx, sy, _, _ = transform._box()
    inside[sx, sy, list(transform.slices)] = True
    assert crop or inside[:, :, list(transform.slices)].all()
    np.testing.assert_allclose(restored_image[inside], image[inside])
    assert not restored_image[~inside].any()


def test_240_grid_without_crop_is_identity():
    rng = np.random.default_rng(1)
    brain, seg = blob_volume(rng, (240, 240, 20))
    transform = SliceTransform.fit(brain, PreprocessConfig(size=240, crop=False))
    np.testing.assert_array_equal(transform.inverse(transform.forward(seg, "label"), "nearest"), seg)


@settings(max_examples=10, deadline=None)
@given(axcodes=st.sampled_from(AXCODES), zooms=st.tuples(*[st.sampled_from([0.8, 1.0, 1.5, 3.0])] * 3),
       shape=st.tuples(st.integers(60, 90), st.integers(60, 90), st.integers(10, 20)))
def test_labels_survive_resize_to_120_through_files(tmp_path_factory, axcodes, zooms, shape):
    """Write labels in any orientation, load, slice at S=120, restore, save: same grid, Dice >= 0.97."""
    folder = tmp_path_factory.mktemp("rt")
    brain, seg = blob_volume(np.random.default_rng(sum(shape)), shape)
    source = write_nifti(folder / "seg.nii.gz", seg, affine_for(axcodes, zooms))
    canonical, geometry = load_volume(source)
    transform = SliceTransform.fit(canonical > 0, PreprocessConfig(size=120))
    restored = transform.inverse(transform.forward(canonical.astype(np.uint8), "label"), "label")
    written = nib.load(str(save_volume(restored, geometry, folder / "out.nii.gz")))
    assert written.shape == seg.shape
    np.testing.assert_allclose(written.affine, nib.load(str(source)).affine)
    data = np.asanyarray(written.dataobj)
    assert set(np.unique(data)) <= {0, 1, 2, 4}
    assert dice(data > 0, seg > 0) >= 0.97
    for label in (1, 2, 4):
        if (seg == label).sum() > 50:
            assert dice(data == label, seg == label) >= 0.85


def test_normalize_and_background():
    rng = np.random.default_rng(0)
    volume = np.zeros((10, 10, 10), np.float32)
    volume[2:8, 2:8, 2:8] = rng.normal(500, 50, (6, 6, 6))
    mask = brain_mask([volume])
    out = normalize(volume, mask, clip=5.0)
    assert np.all(out[~mask] == BACKGROUND)
    assert abs(out[mask].mean()) < 1e-5 and abs(out[mask].std() * 5 - 1) < 1e-4
    assert out.max() <= 1 and out.min() >= -1


def test_slice_patient_skips_empty_slices(tiny_volumes):
    images = {m: tiny_volumes[m].astype(np.float32) for m in ("flair", "t1", "t1ce", "t2")}
    images = {m: np.concatenate([np.zeros((48, 48, 3), np.float32), v], 2) for m, v in images.items()}
    sliced = slice_patient(images, ("flair", "t1", "t1ce", "t2"), PreprocessConfig(size=32),
                           np.concatenate([np.zeros((48, 48, 3), np.uint8), tiny_volumes["seg"]], 2))
    assert min(sliced.transform.slices) >= 3
    assert sliced.images.shape == (len(sliced.transform.slices), 4, 32, 32)
    assert sliced.brain.any(axis=(1, 2)).all()
    assert set(np.unique(sliced.seg)) <= {0, 1, 2, 4}


def test_demo_patient_labels_round_trip_at_120():
    """The bundled demo patient: S = 120 and back, written in its own geometry, whole-tumour Dice >= 0.97."""
    from pathlib import Path

    from recoseg_cli.io.discovery import discover_patient
    from recoseg_cli.pipeline import load_patient

    patient = discover_patient(Path(__file__).resolve().parent.parent / "examples" / "Synth_90000")
    volumes = load_patient(patient, ("flair", "t1", "t1ce", "t2"))
    transform = SliceTransform.fit(brain_mask(list(volumes.images.values())), PreprocessConfig(size=120))
    restored = transform.inverse(transform.forward(volumes.seg, "label"), "label")
    assert set(np.unique(restored)) <= {0, 1, 2, 4}
    assert dice(restored > 0, volumes.seg > 0) >= 0.97


@settings(max_examples=25, deadline=None)
@given(source=st.integers(5, 250), target=st.sampled_from([7, 120, 160]), seed=st.integers(0, 10**6))
def test_resize_agrees_with_torch_interpolate(source, target, seed):
    """The slice resize is torch's bilinear (antialiased when shrinking) and nearest-exact interpolation, which the
    bundled weights were trained with."""
    import torch
    import torch.nn.functional as F

    stack = np.random.default_rng(seed).standard_normal((2, source, source)).astype(np.float32)
    tensor = torch.from_numpy(stack)[:, None]
    linear = F.interpolate(tensor, size=(target, target), mode="bilinear", align_corners=False,
                           antialias=target < source)[:, 0].numpy()
    nearest = F.interpolate(tensor, size=(target, target), mode="nearest-exact")[:, 0].numpy()
    assert np.abs(resize_slices(stack, target, "linear") - linear).max() < 2e-4
    assert np.array_equal(resize_slices(stack, target, "nearest"), nearest)
