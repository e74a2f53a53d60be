"""The Python API: `segment`, `Segmenter`, `synthesize` and `residual` of `recoseg_cli`."""

import nibabel as nib
import numpy as np
import pytest

import recoseg_cli
from conftest import TINY, run_cli
from recoseg_cli.errors import InputError


def test_segment_returns_the_mask_the_cli_writes(tiny_patient, tmp_path, tiny_weights, capsys):
    image = recoseg_cli.segment(tiny_patient, tmp_path / "api.nii.gz", weights=tiny_weights["seg"], device="cpu")
    assert isinstance(image, nib.Nifti1Image) and image.shape == TINY.shape
    np.testing.assert_allclose(image.affine, TINY.affine)
    assert set(np.unique(np.asarray(image.dataobj))) <= {0, 1, 2, 4}
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "cli.nii.gz", "--weights", tiny_weights["seg"],
                            "--device", "cpu", "-q"], capsys)
    assert code == 0, err
    written = nib.load(str(tmp_path / "cli.nii.gz"))
    np.testing.assert_array_equal(np.asarray(written.dataobj), np.asarray(image.dataobj))
    np.testing.assert_array_equal(np.asarray(nib.load(str(tmp_path / "api.nii.gz")).dataobj), np.asarray(image.dataobj))
    with pytest.raises(InputError, match="already exists"):
        recoseg_cli.segment(tiny_patient, tmp_path / "api.nii.gz", weights=tiny_weights["seg"])


def test_segmenter_is_reused_across_patients_and_inputs(tiny_patient, tmp_path, tiny_weights):
    segmenter = recoseg_cli.Segmenter(tiny_weights["seg"], device="cpu", whole_tumour=True)
    from_folder = segmenter(tiny_patient, probabilities=True, residual=True, synth=True)
    files = {m: next(tiny_patient.glob(f"*_{m}.nii.gz")) for m in ("flair", "t1", "t1ce", "t2")}
    from_files = segmenter(files)
    np.testing.assert_array_equal(from_folder.labels, from_files.labels)
    assert set(np.unique(from_folder.labels)) <= {0, 1}
    assert set(from_folder.probabilities) == {"whole", "core", "enhancing"}
    for image in (*from_folder.probabilities.values(), from_folder.residual, from_folder.synth):
        assert image.shape == TINY.shape and image.get_data_dtype() == np.float32
    assert from_folder.metrics["whole"]["dice"] >= 0 and from_files.metrics is None
    assert from_folder.volumes_ml["whole"] == pytest.approx(from_folder.labels.sum() * np.prod(TINY.spacing) / 1000,
                                                            rel=1e-3)
    saved = from_files.save(tmp_path / "sub" / "m.nii.gz")
    assert nib.load(str(saved)).shape == TINY.shape
    with pytest.raises(InputError, match="sampler must be one of"):
        recoseg_cli.Segmenter(tiny_weights["seg"], sampler="euler")


def test_synthesize_and_residual_match_the_cli(tiny_patient, tmp_path, tiny_weights, capsys):
    options = {"weights": tiny_weights["seg"], "device": "cpu", "sampler": "ddim", "steps": 2, "seed": 3}
    synthetic = recoseg_cli.synthesize(tiny_patient, **options)
    residual = recoseg_cli.residual(tiny_patient, tmp_path / "r.nii.gz", **options)
    for image in (synthetic, residual):
        assert image.shape == TINY.shape and image.get_data_dtype() == np.float32
        np.testing.assert_allclose(image.affine, TINY.affine)
    code, _, err = run_cli(["synthesize", tiny_patient, "-o", tmp_path / "s.nii.gz", "--weights", tiny_weights["seg"],
                            "--device", "cpu", "--sampler", "ddim", "--steps", "2", "--seed", "3", "-q"], capsys)
    assert code == 0, err
    np.testing.assert_allclose(np.asarray(nib.load(str(tmp_path / "s.nii.gz")).dataobj), synthetic.get_fdata(),
                               atol=1e-5)
    real = np.asarray(nib.load(str(next(tiny_patient.glob("*_t1ce.nii.gz")))).dataobj)
    values = residual.get_fdata()
    assert values.min() >= 0 and values[real == 0].max() == 0 and values.max() > 0
    np.testing.assert_array_equal(np.asarray(nib.load(str(tmp_path / "r.nii.gz")).dataobj), values.astype(np.float32))
    files = {m: next(tiny_patient.glob(f"*_{m}.nii.gz")) for m in ("flair", "t1", "t2")}
    with pytest.raises(InputError, match="missing t1ce"):
        recoseg_cli.residual(files, **options)


def test_a_regressor_stage_one_synthesizes_and_refuses_a_sampler(tiny_patient, tmp_path, tiny_weights, capsys):
    from recoseg_cli.models.unet import UNetConfig
    from recoseg_cli.preprocess import PreprocessConfig
    from recoseg_cli.training.loop import TrainConfig
    from recoseg_cli.training.regressor_task import regressor_stage
    from recoseg_cli.training.run import train_regressor

    stage = regressor_stage(UNetConfig(in_channels=4, out_channels=1, widths=(8, 16), attention=False))
    train_regressor(tiny_weights["cache"], tmp_path / "regressor", stage,
                    TrainConfig(max_steps=1, batch_size=2, val_every=1, warmup_steps=1), PreprocessConfig(size=32),
                    device="cpu")
    regressor = tmp_path / "regressor" / "last.pt"
    synthetic = recoseg_cli.synthesize(tiny_patient, weights=regressor, device="cpu")
    assert synthetic.shape == TINY.shape
    code, _, err = run_cli(["synthesize", tiny_patient, "-o", tmp_path / "s.nii.gz", "--weights", regressor,
                            "--device", "cpu", "--sampler", "ddim", "--steps", "2", "-q"], capsys)
    assert code == 2 and "L1 regressor, which does not sample" in err and not (tmp_path / "s.nii.gz").exists()


def test_mirrored_pass_gives_tta_labels_and_an_uncertainty_map(tiny_patient, tiny_weights):
    from recoseg_cli.api import Segmenter, binary_entropy
    from recoseg_cli.io.discovery import discover_patient
    from recoseg_cli.regions import region_masks

    patient = discover_patient(tiny_patient)
    plain = Segmenter(tiny_weights["seg"], "cpu", threshold=0.3)
    tta = Segmenter(tiny_weights["seg"], "cpu", threshold=0.3, tta=True)
    prediction = tta.predict(patient)
    assert prediction.mirrored is not None and plain.predict(patient).mirrored is None
    np.testing.assert_allclose(prediction.probabilities["whole"], plain.predict(patient).probabilities["whole"],
                               atol=1e-6)  # the plain pass is unchanged by the second one
    mean = {r: (prediction.probabilities[r] + prediction.mirrored[r]) / 2 for r in prediction.probabilities}
    masks, _ = tta.label_map(prediction.labelled(), prediction.prepared.sliced.volume_brain, prediction.voxel_ml,
                             "brats2020", [])
    expected = region_masks(mean, tta.postprocess, prediction.voxel_ml)
    assert all(np.array_equal(masks[r], expected[r]) for r in masks)
    uncertainty = prediction.uncertainty()
    np.testing.assert_allclose(uncertainty, np.max([binary_entropy(p) for p in mean.values()], axis=0))
    assert 0 <= uncertainty.min() and uncertainty.max() <= 1 and 0 <= prediction.uncertainty_score() <= 1
    assert binary_entropy(np.array([0.0, 0.5, 1.0])) == pytest.approx([0.0, 1.0, 0.0], abs=1e-4)
    result = tta(patient, probabilities=True, uncertainty=True)
    assert result.uncertainty.shape == TINY.shape and result.uncertainty_score == prediction.uncertainty_score()
