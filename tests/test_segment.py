"""`recoseg segment`, `synthesize` and `residual`: geometry, outputs, cohorts, weights and bad input."""

import csv
import json
import os
import signal
import shutil

import nibabel as nib
import numpy as np
import pytest

from conftest import TINY, run_cli
from recoseg_cli.data.synthetic import generate_patient, write_patient
from recoseg_cli import weights as weights_module


def write_oriented_patient(folder, volumes, axcodes, zooms=(1.0, 1.0, 1.0)):
    """The tiny patient stored with the given axis codes and voxel sizes; returns its canonical affine too."""
    folder.mkdir(parents=True)
    ras_to_target = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt(("R", "A", "S")),
                                                    nib.orientations.axcodes2ornt(axcodes))
    canonical_affine = np.diag([*zooms, 1.0])
    for name, data in volumes.items():
        canonical = nib.Nifti1Image(data, canonical_affine)
        image = canonical.as_reoriented(ras_to_target)
        image.set_qform(image.affine, code=1)
        image.set_sform(image.affine, code=1)
        nib.save(image, str(folder / f"P_{name}.nii.gz"))
    return folder


def canonical_data(path):
    return np.asanyarray(nib.as_closest_canonical(nib.load(str(path))).dataobj)


@pytest.mark.parametrize("axcodes", [("R", "A", "S"), ("L", "A", "S"), ("L", "P", "S")])
def test_mask_keeps_input_geometry_in_every_orientation(tmp_path, tiny_volumes, tiny_weights, capsys, axcodes):
    reference = write_oriented_patient(tmp_path / "ras", tiny_volumes, ("R", "A", "S"))
    patient = reference if axcodes == ("R", "A", "S") else write_oriented_patient(tmp_path / "p", tiny_volumes, axcodes)
    out = tmp_path / "mask.nii.gz"
    code, _, err = run_cli(["segment", patient, "-o", out, "--weights", tiny_weights["seg"], "--threshold", "0.3",
                            "--save-probabilities", "-q"], capsys)
    assert code == 0, err
    source, written = nib.load(str(patient / "P_flair.nii.gz")), nib.load(str(out))
    assert written.shape == source.shape and written.get_data_dtype() == np.uint8
    np.testing.assert_allclose(written.affine, source.affine)
    assert nib.aff2axcodes(written.affine) == axcodes
    assert int(written.header["qform_code"]) == 1 and int(written.header["sform_code"]) == 1
    assert set(np.unique(np.asanyarray(written.dataobj))) <= {0, 1, 2, 4}
    run_cli(["segment", reference, "-o", tmp_path / "ref.nii.gz", "--weights", tiny_weights["seg"], "--threshold",
             "0.3", "--save-probabilities", "-q"], capsys)
    np.testing.assert_allclose(canonical_data(out.with_name("mask_prob.nii.gz")),
                               canonical_data(tmp_path / "ref_prob.nii.gz"), atol=1e-6)
    np.testing.assert_array_equal(canonical_data(out), canonical_data(tmp_path / "ref.nii.gz"))


def test_label_schemes_and_binary_output(tiny_patient, tmp_path, tiny_weights, capsys):
    common = ["--weights", tiny_weights["seg"], "--threshold", "0.3", "-q"]
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "a.nii.gz", "--report", tmp_path / "a.json",
                            *common], capsys)
    assert code == 0, err
    brats2020 = np.asanyarray(nib.load(str(tmp_path / "a.nii.gz")).dataobj)
    assert set(np.unique(brats2020)) == {0, 1, 2, 4}
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["labels"] == "brats2020"
    assert set(report["volumes_ml"]) == {"necrotic", "edema", "enhancing", "core", "whole"}
    assert set(report["metrics_vs_ground_truth"]) == {"whole", "core", "enhancing"}
    assert {"dice", "hd95", "lesion_dice"} <= set(report["metrics_vs_ground_truth"]["enhancing"])
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "b.nii.gz", "--labels", "brats2023", *common],
                           capsys)
    assert code == 2 and "_seg.nii.gz" in err and "brats2023" in err  # the BraTS2020 ground truth holds label 4
    (next(tiny_patient.glob("*_seg.nii.gz"))).unlink()
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "b.nii.gz", "--labels", "brats2023", *common],
                           capsys)
    assert code == 0, err
    np.testing.assert_array_equal(np.asanyarray(nib.load(str(tmp_path / "b.nii.gz")).dataobj),
                                  np.where(brats2020 == 4, 3, brats2020))
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "c.nii.gz", "--whole-tumour", *common], capsys)
    assert code == 0, err
    np.testing.assert_array_equal(np.asanyarray(nib.load(str(tmp_path / "c.nii.gz")).dataobj), brats2020 > 0)
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "d.nii.gz", "--labels", "brats2019", *common],
                           capsys)
    assert code == 2 and "--labels" in err and not (tmp_path / "d.nii.gz").exists()


def test_non_240_anisotropic_grid(tmp_path, tiny_volumes, tiny_weights, capsys):
    volumes = {k: v[:45, 3:, :29] for k, v in tiny_volumes.items()}
    patient = write_oriented_patient(tmp_path / "aniso", volumes, ("L", "P", "S"), zooms=(0.9, 1.1, 3.0))
    out = tmp_path / "mask.nii.gz"
    code, _, err = run_cli(["segment", patient, "-o", out, "--weights", tiny_weights["seg"], "--report",
                            tmp_path / "r.json", "-q"], capsys)
    assert code == 0, err
    written, source = nib.load(str(out)), nib.load(str(patient / "P_t1.nii.gz"))
    assert written.shape == (45, 45, 29)
    np.testing.assert_allclose(written.header.get_zooms(), source.header.get_zooms())
    report = json.loads((tmp_path / "r.json").read_text())
    labels = np.asanyarray(written.dataobj)
    voxel_ml = 0.9 * 1.1 * 3.0 / 1000
    assert report["tumour_volume_ml"] == pytest.approx((labels > 0).sum() * voxel_ml, abs=1e-3)
    for name, value in (("necrotic", 1), ("edema", 2), ("enhancing", 4)):
        assert report["volumes_ml"][name] == pytest.approx((labels == value).sum() * voxel_ml, abs=1e-3)
    assert {"load", "preprocess", "synthesis", "segmentation", "write"} <= set(report["seconds"])
    assert report["weights_sha256"] and report["versions"]["torch"] and report["device"] == "cpu"
    assert 0 < report["peak_rss_gb"] < 8
    assert "metrics_vs_ground_truth" in report


def test_extras_overlay_and_missing_t1ce(tiny_patient, tmp_path, tiny_weights, capsys):
    out = tmp_path / "m.nii.gz"
    code, _, err = run_cli(["segment", tiny_patient, "-o", out, "--weights", tiny_weights["seg"], "--save-residual",
                            "--save-synth", "--overlay", tmp_path / "o.png", "-q"], capsys)
    assert code == 0, err
    assert (tmp_path / "m_residual.nii.gz").is_file() and (tmp_path / "m_synth.nii.gz").is_file()
    assert (tmp_path / "o.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stamp = (tmp_path / "o.png").stat().st_mtime_ns
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "new" / "deeper" / "m2.nii.gz", "--weights",
                            tiny_weights["seg"], "--overlay", tmp_path / "o.png", "-q"], capsys)
    assert code == 2 and "o.png: already exists" in err and (tmp_path / "o.png").stat().st_mtime_ns == stamp
    assert not (tmp_path / "new").exists()
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "new" / "deeper" / "m2.nii.gz", "--weights",
                            tiny_weights["seg"], "-q"], capsys)
    assert code == 0 and (tmp_path / "new" / "deeper" / "m2.nii.gz").is_file(), err
    code, _, err = run_cli(["segment", tiny_patient, "-o", out / "below_a_file.nii.gz", "--weights",
                            tiny_weights["seg"], "-q"], capsys)
    assert code == 2 and "m.nii.gz: is a file" in err
    next(tiny_patient.glob("*_t1ce.nii.gz")).unlink()
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "n.nii.gz", "--weights", tiny_weights["seg"],
                            "--report", tmp_path / "n.json", "-q"], capsys)
    assert code == 0, err
    assert "missing T1CE: segmented from FLAIR, T1, T2" in err
    assert json.loads((tmp_path / "n.json").read_text())["t1ce_present"] is False


def test_empty_mask_warns(tiny_patient, tmp_path, tiny_weights, capsys):
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "m.nii.gz", "--weights", tiny_weights["seg"],
                            "--threshold", "1.0", "-q"], capsys)
    assert code == 0 and "mask is empty" in err


def test_images_that_are_not_skull_stripped_warn(tiny_patient, tmp_path, tiny_weights, capsys):
    flair = next(tiny_patient.glob("*_flair.nii.gz"))
    image = nib.load(flair)
    head = np.asarray(image.dataobj, dtype=np.float32) + 0.5  # no zero background: the whole field of view
    nib.save(nib.Nifti1Image(head, image.affine, image.header), flair)
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "m.nii.gz", "--weights", tiny_weights["seg"],
                            "--report", tmp_path / "m.json", "-q"], capsys)
    assert code == 0, err
    assert "look not skull-stripped" in err
    assert any("skull-stripped" in w for w in json.loads((tmp_path / "m.json").read_text())["warnings"])


def test_skull_stripped_images_do_not_warn(tiny_patient, tmp_path, tiny_weights, capsys):
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "m.nii.gz", "--weights", tiny_weights["seg"],
                            "-q"], capsys)
    assert code == 0 and "skull-stripped" not in err


def test_bad_input_and_weights(tiny_patient, tmp_path, tiny_weights, capsys, monkeypatch):
    seg_weights = tiny_weights["seg"]
    cases = [
        (["--weights", tiny_weights["ddpm"]], "holds ddpm weights"),
        (["--weights", tmp_path / "none.pt"], "weights file not found"),
        (["--weights", tmp_path], "is a folder"),
        (["--weights", seg_weights, "--model", "fast"], "--weights and --model both choose the weights"),
    ]
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    cases.append((["--weights", tmp_path / "junk.pt"], "not a readable weights file"))
    for extra, message in cases:
        code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "m.nii.gz", *extra, "-q"], capsys)
        assert code == 2 and message in err and err.count("\n") == 1, err
    (tmp_path / "folder_out").mkdir()
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "folder_out", "--weights", seg_weights], capsys)
    assert code == 2 and "is a folder" in err
    run_cli(["segment", tiny_patient, "-o", tmp_path / "m.nii.gz", "--weights", seg_weights, "-q"], capsys)
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "m.nii.gz", "--weights", seg_weights], capsys)
    assert code == 2 and "already exists" in err
    next(tiny_patient.glob("*_flair.nii.gz")).unlink()
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "x.nii.gz", "--weights", seg_weights], capsys)
    assert code == 2 and "missing flair" in err and not (tmp_path / "x.nii.gz").exists()

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copy(seg_weights, bundle / weights_module.BUNDLED_FILE)
    (bundle / weights_module.CHECKSUMS).write_text(f"{'0' * 64}  {weights_module.BUNDLED_FILE}\n")
    monkeypatch.setattr(weights_module, "BUNDLED_DIR", bundle)
    monkeypatch.delenv(weights_module.ENV_VAR, raising=False)
    restored = tmp_path / "restored"
    write_patient(restored, "R", generate_patient(3, TINY), TINY.affine)
    code, _, err = run_cli(["segment", restored, "-o", tmp_path / "y.nii.gz"], capsys)
    assert code == 2 and "does not match the recorded" in err
    monkeypatch.setenv(weights_module.ENV_VAR, str(seg_weights))
    code, _, err = run_cli(["segment", restored, "-o", tmp_path / "y.nii.gz", "-q"], capsys)
    assert code == 0, err


def make_cohort(root, volumes, names):
    for name in names:
        write_patient(root / "site" / name, name, volumes, TINY.affine)
    return root


def test_cohort_shards_skip_existing_and_a_broken_patient(tmp_path, tiny_volumes, tiny_weights, capsys):
    cohort = make_cohort(tmp_path / "cohort", tiny_volumes, ["A", "B", "C"])
    out = tmp_path / "masks"
    base = ["segment", cohort, "-o", out, "--weights", tiny_weights["seg"], "-q"]
    assert run_cli(base + ["--shard", "0/2"], capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["A.nii.gz", "C.nii.gz"]
    code, _, err = run_cli(base + ["--shard", "1/2"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["A.nii.gz", "B.nii.gz", "C.nii.gz"]
    code, _, err = run_cli(base, capsys)
    assert code == 2 and "--skip-existing" in err
    stamp = (out / "A.nii.gz").stat().st_mtime_ns
    assert run_cli(base + ["--skip-existing"], capsys)[0] == 0
    assert (out / "A.nii.gz").stat().st_mtime_ns == stamp

    next((cohort / "site" / "B").glob("*_t2.nii.gz")).write_text("broken")
    code, _, err = run_cli(base + ["--overwrite", "--report", tmp_path / "r.json"], capsys)
    assert code == 2 and "B_t2.nii.gz" in err and "failed: B" in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["failed"] == ["B"] and len(report["cases"]) == 3
    assert (out / "A.nii.gz").stat().st_mtime_ns != stamp
    code, _, err = run_cli(["segment", cohort, "-o", tmp_path / "r.json", "--weights", tiny_weights["seg"]], capsys)
    assert code == 2 and "is a file" in err
    code, _, err = run_cli(base + ["--shard", "2/2"], capsys)
    assert code == 2 and "--shard" in err


def test_cohort_resume_keeps_the_report_and_says_what_it_skipped(tmp_path, tiny_volumes, tiny_weights, capsys):
    cohort = make_cohort(tmp_path / "cohort", tiny_volumes, ["A", "B"])
    out, report = tmp_path / "masks", tmp_path / "r.json"
    base = ["segment", cohort, "-o", out, "--weights", tiny_weights["seg"], "--report", report]
    assert run_cli(base + ["--shard", "0/2", "-q"], capsys)[0] == 0
    code, _, err = run_cli(base + ["--skip-existing"], capsys)
    assert code == 0, err
    assert "segmented 1 of 2 patients" in err and "1 skipped" in err
    written = json.loads(report.read_text())
    assert [c["case_id"] for c in written["cases"]] == ["A", "B"] and all("volumes_ml" in c for c in written["cases"])
    summary = written["summary"]
    assert summary["patients"] == 2 and summary["metrics_vs_ground_truth"]["whole"]["dice"]["n"] == 2
    whole = [c["volumes_ml"]["whole"] for c in written["cases"]]
    assert summary["volumes_ml"]["whole"]["mean"] == pytest.approx(np.mean(whole), abs=1e-3)


def test_cohort_names_outputs_by_folder_even_when_file_prefixes_repeat(tmp_path, tiny_volumes, tiny_weights,
                                                                         capsys):
    for site in ("site1", "site2"):
        write_patient(tmp_path / "cohort" / site / "P001", "P001", tiny_volumes, TINY.affine)
    write_patient(tmp_path / "cohort" / "site1" / "P002", "P001", tiny_volumes, TINY.affine)
    code, _, err = run_cli(["segment", tmp_path / "cohort", "-o", tmp_path / "masks", "--weights", tiny_weights["seg"],
                            "--overlay", tmp_path / "png", "--report", tmp_path / "r.json", "-q"], capsys)
    assert code == 0, err
    names = ["P002", "site1_P001", "site2_P001"]
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == [f"{n}.nii.gz" for n in names]
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [f"{n}.png" for n in names]
    assert sorted(c["case_id"] for c in json.loads((tmp_path / "r.json").read_text())["cases"]) == names
    code, _, err = run_cli(["segment", tmp_path / "cohort", "-o", tmp_path / "masks2", "--weights",
                            tiny_weights["seg"], "--overlay", tmp_path / "png", "-q"], capsys)
    assert code == 2 and "site1_P001.png: already exists" in err


def test_synthesize_and_residual_outputs(tiny_patient, tmp_path, tiny_weights, capsys):
    code, _, err = run_cli(["synthesize", tiny_patient, "-o", tmp_path / "s.nii.gz", "--weights", tiny_weights["ddpm"],
                            "--sampler", "ddim", "--steps", "3", "--report", tmp_path / "s.json"], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "s.json").read_text())
    assert {"healthy_ssim", "healthy_psnr", "tumour_ssim", "tumour_psnr"} <= set(report["metrics_vs_ground_truth"])
    shared = {"case_id", "output", "inputs", "slices_processed", "seconds", "seconds_total", "weights",
              "weights_sha256", "device", "precision", "peak_rss_gb", "versions"}
    assert shared <= set(report) and str(tmp_path / "s.nii.gz") in err.replace("\n", "")
    written = nib.load(str(tmp_path / "s.nii.gz"))
    assert written.get_data_dtype() == np.float32 and written.shape == TINY.shape
    np.testing.assert_allclose(written.affine, TINY.affine)
    code, _, err = run_cli(["residual", tiny_patient, "-o", tmp_path / "r.nii.gz", "--weights", tiny_weights["seg"],
                            "--smooth", "1.5"], capsys)
    assert code == 0, err
    residual = np.asanyarray(nib.load(str(tmp_path / "r.nii.gz")).dataobj)
    assert residual.min() >= 0 and residual.max() > 0
    next(tiny_patient.glob("*_t1ce.nii.gz")).unlink()
    code, _, err = run_cli(["synthesize", tiny_patient, "-o", tmp_path / "s2.nii.gz", "--weights", tiny_weights["ddpm"],
                            "--report", tmp_path / "s2.json"], capsys)
    assert code == 0 and "metrics" not in json.loads((tmp_path / "s2.json").read_text())
    code, _, err = run_cli(["residual", tiny_patient, "-o", tmp_path / "r2.nii.gz", "--weights", tiny_weights["seg"]],
                           capsys)
    assert code == 2 and "missing t1ce" in err


@pytest.mark.parametrize("layout", ["brats2023", "nnunet", "uppercase"])
def test_other_layouts_segment_end_to_end(tmp_path, tiny_volumes, tiny_weights, capsys, layout):
    """BraTS2023 names and labels, nnU-Net channel files, and upper-case BraTS2020 names all work."""
    folder = tmp_path / "case"
    folder.mkdir()
    names = {"brats2023": {"flair": "C-t2f.nii.gz", "t1": "C-t1n.nii.gz", "t1ce": "C-t1c.nii.gz", "t2": "C-t2w.nii.gz",
                           "seg": "C-seg.nii.gz"},
             "nnunet": {"flair": "C_0000.nii.gz", "t1": "C_0001.nii.gz", "t1ce": "C_0002.nii.gz", "t2": "C_0003.nii.gz",
                        "seg": "C.nii.gz"},
             "uppercase": {m: f"C_{m.upper()}.NII.GZ" for m in ("flair", "t1", "t1ce", "t2", "seg")}}[layout]
    for modality, name in names.items():
        data = tiny_volumes[modality]
        if modality == "seg" and layout == "brats2023":
            data = np.where(data == 4, 3, data).astype(np.uint8)
        nib.save(nib.Nifti1Image(data, TINY.affine), str(folder / name))
    code, _, err = run_cli(["segment", folder, "-o", tmp_path / "m.nii", "--weights", tiny_weights["seg"], "--report",
                            tmp_path / "r.json", "-q"], capsys)
    assert code == 0, err
    assert nib.load(str(tmp_path / "m.nii")).shape == TINY.shape
    assert "metrics_vs_ground_truth" in json.loads((tmp_path / "r.json").read_text())


def test_output_name_must_be_nifti(tiny_patient, tmp_path, tiny_weights, capsys):
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "mask", "--weights", tiny_weights["seg"]], capsys)
    assert code == 2 and "must end in .nii.gz or .nii" in err
    assert list(tmp_path.iterdir()) == [tiny_patient]


def test_cohort_names_of_bids_anat_folders():
    from pathlib import Path

    from recoseg_cli.commands.cohort import cohort_names

    root = Path("/data/bids")
    folders = [root / "sub-01" / "ses-1" / "anat", root / "sub-02" / "anat", root / "site" / "P1"]
    assert cohort_names(root, folders) == ["sub-01_ses-1", "sub-02", "P1"]


def test_progress_hooks_report_stages_in_order_and_every_slice(tiny_patient, tiny_weights):
    from recoseg_cli.api import Segmenter
    from recoseg_cli.commands.segment import STAGES, next_stage
    from recoseg_cli.io.discovery import discover_patient

    stages, slices = [], []
    segmenter = Segmenter(tiny_weights["seg"], device="cpu", batch_size=5)
    prediction = segmenter.predict(discover_patient(tiny_patient), stages.append,
                                   lambda stage, done, total: slices.append((stage, done, total)))
    count = len(prediction.prepared.sliced.images)
    assert stages == list(STAGES[:4])
    for stage in ("synthesis", "segmentation"):
        done = [d for s, d, t in slices if s == stage]
        assert done == sorted(done) and done[-1] == count and all(t == count for s, _, t in slices)
    assert next_stage("preprocess", overlay=False) == "synthesis" and next_stage("write", overlay=False) == "done"


def test_strict_exits_3_for_a_flagged_mask_and_reports_say_flagged(tmp_path, tiny_volumes, tiny_weights, capsys):
    cohort = make_cohort(tmp_path / "cohort", tiny_volumes, ["A", "B"])
    base = ["segment", cohort, "-o", tmp_path / "masks", "--weights", tiny_weights["seg"], "-q",
            "--threshold", "1.0"]  # empty masks: written, with a warning
    code, _, err = run_cli(base + ["--report", tmp_path / "r.csv", "--strict"], capsys)
    assert code == 3 and "flagged for review (--strict): A, B" in err
    assert (tmp_path / "masks" / "A.nii.gz").is_file() and (tmp_path / "masks" / "B.nii.gz").is_file()
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert [row["status"] for row in rows] == ["flagged", "flagged"] and "mask is empty" in rows[0]["warnings"]
    code, _, _ = run_cli(base + ["--report", tmp_path / "r.json", "--overwrite"], capsys)
    assert code == 0  # without --strict a flagged mask is still a success
    summary = json.loads((tmp_path / "r.json").read_text())["summary"]
    assert summary["flagged"] == 2 and summary["ok"] == 0 and summary["failed"] == 0


def test_an_interrupted_cohort_reports_its_finished_patients(tmp_path, tiny_volumes, tiny_weights, capsys,
                                                             monkeypatch):
    import recoseg_cli.commands.cohort as cohort_module

    cohort = make_cohort(tmp_path / "cohort", tiny_volumes, ["A", "B", "C"])
    run_case, calls = cohort_module._run_case, []

    def terminated_at_b(segmenter, options, folder, name, *rest):
        calls.append(name)
        if name == "B":
            os.kill(os.getpid(), signal.SIGTERM)  # as a cluster's time limit does
        return run_case(segmenter, options, folder, name, *rest)

    monkeypatch.setattr(cohort_module, "_run_case", terminated_at_b)
    base = ["segment", cohort, "-o", tmp_path / "masks", "--weights", tiny_weights["seg"], "-q",
            "--report", tmp_path / "r.json"]
    code, _, err = run_cli(base, capsys)
    assert code == 130 and "interrupted" in err and calls == ["A", "B"]
    written = json.loads((tmp_path / "r.json").read_text())
    assert [c["case_id"] for c in written["cases"]] == ["A"] and written["not_run"] == ["B", "C"]
    assert not (tmp_path / "masks" / "B.nii.gz").exists()
    (tmp_path / "r.json").unlink()  # a report lost too: the rerun reads the skipped patient's mask
    monkeypatch.undo()
    code, _, err = run_cli(base + ["--skip-existing"], capsys)
    assert code == 0, err
    cases = {c["case_id"]: c for c in json.loads((tmp_path / "r.json").read_text())["cases"]}
    assert cases["A"]["status"] == "skipped" and cases["A"]["volumes_ml"]["whole"] >= 0
    assert cases["A"]["from_existing_mask"] and cases["C"]["status"] in ("ok", "flagged")


def test_the_report_gives_wall_time_since_the_command_started(tiny_patient, tiny_weights, tmp_path, capsys):
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "m.nii.gz", "--weights", tiny_weights["seg"],
                            "--report", tmp_path / "r.json"], capsys)
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and report["seconds_since_start"] >= report["seconds_total"] > 0  # start-up and imports too
    assert "s since the command started" in err
