"""Training cases that look like prepared clinical exams."""

import nibabel as nib
import numpy as np

from conftest import TINY
from recoseg_cli.data.clinical_variants import VariantConfig, clinical_variant, source_case, variant_id
from recoseg_cli.io.discovery import discover_patient


def test_a_variant_keeps_the_grid_and_labels_and_changes_the_images_reproducibly(tiny_patient, tmp_path):
    folder = clinical_variant(tiny_patient, tmp_path / "a", 1)
    again = clinical_variant(tiny_patient, tmp_path / "b", 1)
    other = clinical_variant(tiny_patient, tmp_path / "c", 2)
    patient = discover_patient(folder)
    assert patient.case_id == variant_id("Synth_00003", 1) and source_case(patient.case_id) == "Synth_00003"
    source = discover_patient(tiny_patient)
    for role, path in patient.images.items():
        made, original = nib.load(str(path)), nib.load(str(source.images[role]))
        assert made.shape == TINY.shape and np.allclose(made.affine, original.affine)
        assert not np.allclose(made.get_fdata(), original.get_fdata())
        np.testing.assert_array_equal(made.get_fdata(), nib.load(str(discover_patient(again).images[role])).get_fdata())
    assert not np.array_equal(nib.load(str(patient.images["t2"])).get_fdata(),
                              nib.load(str(discover_patient(other).images["t2"])).get_fdata())
    labels, truth = (np.asarray(nib.load(str(p.seg)).dataobj) for p in (patient, source))
    outline = np.any([nib.load(str(p)).get_fdata() != 0 for p in patient.images.values()], axis=0)
    assert set(np.unique(labels)) <= set(np.unique(truth)) and not labels[~outline].any()
    np.testing.assert_array_equal(labels[outline], truth[outline])


def test_a_dilated_outline_gets_a_rim_of_signal_around_the_brain(tiny_patient, tmp_path):
    config = VariantConfig(thick_probability=0.0, dilate_probability=1.0, erode_probability=0.0, rim_mm=(2.0, 2.0))
    patient = discover_patient(clinical_variant(tiny_patient, tmp_path, 1, config))
    source = discover_patient(tiny_patient)
    before = np.any([nib.load(str(p)).get_fdata() != 0 for p in source.images.values()], axis=0)
    after = np.any([nib.load(str(p)).get_fdata() != 0 for p in patient.images.values()], axis=0)
    assert before[~after].sum() == 0 and after.sum() > before.sum()
