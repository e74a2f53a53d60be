"""Training augmentation: identity when switched off, labels stay labels, background stays background."""

import numpy as np

from recoseg_cli.preprocess import BACKGROUND
from recoseg_cli.training.augment import AugmentConfig, augment_batch, intensity, spatial


def batch(n=6, size=32):
    rng = np.random.default_rng(0)
    brain = np.zeros((n, size, size), bool)
    brain[:, 6:26, 4:28] = True
    images = np.where(brain[:, None], rng.uniform(-0.8, 0.8, (n, 4, size, size)), BACKGROUND).astype(np.float32)
    seg = np.zeros((n, size, size), np.uint8)
    seg[:, 10:20, 10:20] = 2
    seg[:, 12:16, 12:16] = 1
    seg[:, 14, 14] = 4
    synth = images[:, 2].copy()
    return {"images": images, "brain": brain, "seg": seg, "tumour": (seg > 0).astype(np.float32), "synth": synth}


def test_spatial_is_the_identity_when_off():
    arrays = batch()
    masks = np.stack([arrays["brain"], arrays["seg"]], 1).astype(np.uint8)
    images, warped = spatial(arrays["images"], masks, np.random.default_rng(1), AugmentConfig(probability=0.0))
    np.testing.assert_allclose(images, arrays["images"], atol=1e-5)
    np.testing.assert_array_equal(warped, masks)


def test_augmented_batch_keeps_labels_background_and_alignment():
    arrays = batch()
    out = augment_batch(arrays, np.random.default_rng(2), AugmentConfig(probability=1.0, rotation_degrees=30))
    assert set(np.unique(out["seg"])) <= {0, 1, 2, 4}
    assert not np.array_equal(out["seg"], arrays["seg"])
    assert np.all(out["images"][~np.repeat(out["brain"][:, None], 4, 1)] == BACKGROUND)
    assert np.all(out["synth"][~out["brain"]] == BACKGROUND)
    np.testing.assert_array_equal(out["tumour"], out["seg"] > 0)
    # images and labels move together: the synthetic copy of T1ce still equals the warped T1ce
    np.testing.assert_allclose(out["synth"], out["images"][:, 2], atol=1e-6)


def test_intensity_changes_the_brain_only_and_stays_in_range():
    arrays = batch()
    out = intensity(arrays["images"], arrays["brain"], np.random.default_rng(3), AugmentConfig(probability=1.0))
    inside = np.repeat(arrays["brain"][:, None], 4, 1)
    assert np.all(out[~inside] == BACKGROUND)
    assert out.min() >= -1 and out.max() <= 1
    assert np.abs(out[inside] - arrays["images"][inside]).mean() > 0.01
    unchanged = intensity(arrays["images"], arrays["brain"], np.random.default_rng(3), AugmentConfig(probability=0.0))
    np.testing.assert_allclose(unchanged, arrays["images"], atol=1e-6)
