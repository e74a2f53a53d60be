"""The rough edges a new user hit, one test each (numbers as in examples/rough_edges/README.md)."""

import json
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np

from conftest import TINY, run_cli, write_nifti
from recoseg_cli.data.synthetic import write_patient
from recoseg_cli.overlay import tumour_slice


def cohort(root, volumes, names):
    for name in names:
        write_patient(root / name, name, volumes, TINY.affine)
    return root


def test_1_a_cohort_output_named_like_a_mask_is_refused(tmp_path, tiny_volumes, tiny_weights, capsys):
    out = tmp_path / "out" / "masks.nii.gz"
    code, _, err = run_cli(["segment", cohort(tmp_path / "c", tiny_volumes, ["A", "B"]), "-o", out, "--weights",
                            tiny_weights["seg"]], capsys)
    assert code == 2 and "give a folder name" in err and not (tmp_path / "out").exists()


def test_3_a_grid_mismatch_names_the_odd_file_out(tiny_patient, tiny_weights, tmp_path, capsys):
    flair = next(tiny_patient.glob("*_flair.nii.gz"))
    write_nifti(flair, np.ones((24, 24, 16), np.float32), TINY.affine @ np.diag([2, 2, 2, 1.0]))
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "m.nii.gz", "--weights", tiny_weights["seg"],
                            "--prepare", "off"], capsys)
    assert code == 2 and f"{flair.name}: shape (24, 24, 16) differs from (48, 48, 32)" in err
    assert "--prepare auto" in err and not (tmp_path / "m.nii.gz").exists()


def test_4_explicit_files_give_the_case_id_without_the_role(tiny_patient, tiny_weights, tmp_path, capsys):
    paths = {m: next(tiny_patient.glob(f"*_{m}.nii.gz")) for m in ("flair", "t1", "t1ce", "t2")}
    args = ["segment", "-o", tmp_path / "m.nii.gz", "--weights", tiny_weights["seg"], "--report", tmp_path / "r.json",
            "-q"] + [item for m, p in paths.items() for item in (f"--{m}", p)]
    assert run_cli(args, capsys)[0] == 0
    assert json.loads((tmp_path / "r.json").read_text())["case_id"] == "Synth_00003"
    assert run_cli(args + ["--case-id", "patient-7", "--overwrite"], capsys)[0] == 0
    assert json.loads((tmp_path / "r.json").read_text())["case_id"] == "patient-7"


def test_5_explicit_files_missing_one_say_which_option(tiny_patient, tiny_weights, tmp_path, capsys):
    files = ["--flair", next(tiny_patient.glob("*_flair.*")), "--t2", next(tiny_patient.glob("*_t2.*"))]
    code, _, err = run_cli(["segment", "-o", tmp_path / "m.nii.gz", "--weights", tiny_weights["seg"], *files], capsys)
    assert code == 2 and "--t1 is required (or give a patient folder)" in err  # weights that need T1
    code, _, err = run_cli(["segment", "-o", tmp_path / "m.nii.gz", "--t1", next(tiny_patient.glob("*_t1.*"))],
                           capsys)
    assert code == 2 and "holds T1 but neither FLAIR nor T2" in err


def test_7_the_overlay_format_follows_its_extension(tiny_patient, tiny_weights, tmp_path, capsys):
    common = ["segment", tiny_patient, "--weights", tiny_weights["seg"], "-q"]
    assert run_cli(common + ["-o", tmp_path / "a.nii.gz", "--overlay", tmp_path / "o.jpg"], capsys)[0] == 0
    assert (tmp_path / "o.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert run_cli(common + ["-o", tmp_path / "b.nii.gz", "--overlay", tmp_path / "o.pdf"], capsys)[0] == 0
    assert (tmp_path / "o.pdf").read_bytes()[:4] == b"%PDF"
    code, _, err = run_cli(common + ["-o", tmp_path / "c.nii.gz", "--overlay", tmp_path / "o.gif"], capsys)
    assert code == 2 and "o.gif: overlay name must end in" in err and not (tmp_path / "c.nii.gz").exists()


def test_8_an_unusable_ground_truth_is_skipped_with_a_warning(tiny_patient, tiny_weights, tmp_path, capsys):
    seg = next(tiny_patient.glob("*_seg.nii.gz"))
    common = ["segment", tiny_patient, "--weights", tiny_weights["seg"], "-q"]
    seg.write_bytes(b"")
    code, _, err = run_cli(common + ["-o", tmp_path / "a.nii.gz", "--report", tmp_path / "a.json"], capsys)
    assert code == 0 and "ground truth not used" in err and seg.name in err
    assert "metrics_vs_ground_truth" not in json.loads((tmp_path / "a.json").read_text())
    write_nifti(seg, np.zeros(TINY.shape, np.uint8), TINY.affine)
    code, _, err = run_cli(common + ["-o", tmp_path / "b.nii.gz", "--report", tmp_path / "b.json"], capsys)
    assert code == 0 and "is empty (all zero); no metrics" in err
    assert "metrics_vs_ground_truth" not in json.loads((tmp_path / "b.json").read_text())


def test_9_an_unwritable_output_is_refused_before_any_work(tiny_patient, tiny_weights, capsys):
    code, _, err = run_cli(["segment", tiny_patient, "-o", "/proc/mask.nii.gz", "--weights", tiny_weights["seg"]],
                           capsys)
    assert code == 2 and "/proc/mask.nii.gz: cannot create files in /proc" in err


def test_10_13_a_cohort_prints_a_line_per_patient_and_a_failed_one_leaves_no_folder(tmp_path, tiny_volumes,
                                                                                       tiny_weights, capsys):
    root = cohort(tmp_path / "c", tiny_volumes, ["A", "B"])
    code, out, err = run_cli(["segment", root, "-o", tmp_path / "masks", "--weights", tiny_weights["seg"]], capsys)
    assert code == 0 and "A: whole tumour" in err and "B: whole tumour" in err and "Dice WT" in err
    for name in ("A", "B"):
        next((root / name).glob("*_t2.nii.gz")).write_text("broken")
    code, _, err = run_cli(["segment", root, "-o", tmp_path / "failed", "--weights", tiny_weights["seg"]], capsys)
    assert code == 2 and "failed: A, B" in err and not (tmp_path / "failed").exists()


def test_11_train_names_its_validation_metric(tmp_path, tiny_volumes, capsys):
    root = cohort(tmp_path / "c", tiny_volumes, ["A", "B"])
    code, _, err = run_cli(["train", "--stage", "ddpm", "--data", root, "-o", tmp_path / "run", "--max-steps", "2",
                            "--batch-size", "2", "--widths", "8,16", "--size", "32", "--val-fraction", "0.5"], capsys)
    assert code == 0 and "best validation healthy-brain mean absolute error" in err and "(lower is better)" in err
    code, _, err = run_cli(["train", "--stage", "ddpm", "--data", root, "-o", tmp_path / "all", "--max-steps", "2",
                            "--batch-size", "2", "--widths", "8,16", "--size", "32", "--val-fraction", "0"], capsys)
    assert code == 0 and "no validation split" in err and "best validation" not in err


def test_14_the_summary_line_gives_the_dice_against_the_ground_truth(tiny_patient, tiny_weights, tmp_path, capsys):
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "m.nii.gz", "--weights", tiny_weights["seg"]],
                           capsys)
    assert code == 0 and "Synth_00003: whole tumour" in err and ", Dice WT " in err and " ET " in err


def test_15_the_overlay_shows_the_slice_with_most_enhancing_tumour():
    whole = np.zeros((8, 8, 6), bool)
    whole[:, :, 1] = True
    enhancing = np.zeros_like(whole)
    enhancing[2:4, 2:4, 4] = True
    masks = {"whole": whole | enhancing, "core": enhancing, "enhancing": enhancing}
    assert tumour_slice(masks, None, whole) == 4
    assert tumour_slice({**masks, "enhancing": np.zeros_like(whole)}, None, whole) == 1


def test_cohort_csv_report_two_shards_merge_and_uncertainty(tmp_path, tiny_volumes, tiny_weights, capsys):
    import csv

    root = cohort(tmp_path / "c", tiny_volumes, ["A", "B", "C"])
    base = ["segment", root, "-o", tmp_path / "masks", "--weights", tiny_weights["seg"], "--save-uncertainty",
            "--save-probabilities", "-q"]
    (tmp_path / "reports").mkdir()
    for shard in ("0/2", "1/2"):  # as two tasks of examples/slurm/segment_array.sbatch would
        code, _, err = run_cli(base + ["--shard", shard, "--report", tmp_path / "reports" / f"r{shard[0]}.csv"],
                               capsys)
        assert code == 0, err
    merge = Path(__file__).resolve().parents[1] / "examples" / "slurm" / "merge_reports.sh"
    subprocess.run(["bash", str(merge), str(tmp_path / "reports"), str(tmp_path / "all.csv")], check=True)
    rows = list(csv.DictReader(open(tmp_path / "all.csv")))
    assert sorted(row["case_id"] for row in rows) == ["A", "B", "C"]
    assert all(row["status"] == ("flagged" if row["warnings"] else "ok") for row in rows)  # written, flagged or not
    for row in rows:
        assert 0.0 <= float(row["uncertainty_score"]) <= 1.0 and float(row["dice_whole"]) >= 0.0
        assert float(row["whole_ml"]) >= float(row["core_ml"]) >= float(row["enhancing_ml"])
    uncertainty = np.asarray(nib.load(str(tmp_path / "masks" / "A_uncertainty.nii.gz")).dataobj)
    assert uncertainty.shape == TINY.shape and 0 <= uncertainty.min() and uncertainty.max() <= 1
    for suffix in ("_prob", "_prob_core", "_prob_enhancing"):
        assert (tmp_path / "masks" / f"B{suffix}.nii.gz").is_file()
    code, _, err = run_cli(base + ["--skip-existing", "--report", tmp_path / "reports" / "r0.csv"], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(open(tmp_path / "reports" / "r0.csv")))
    assert {row["case_id"]: row["status"] for row in rows} == {"A": "skipped", "B": "skipped", "C": "skipped"}
    assert next(r for r in rows if r["case_id"] == "A")["uncertainty_score"] != ""  # kept from the earlier run


def test_12_help_at_80_columns_keeps_every_option_name_whole(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    for command in ("segment", "train", "crossval", "benchmark"):
        code, out, _ = run_cli([command, "--help"], capsys)
        assert code == 0 and "…" not in out and max(len(line) for line in out.splitlines()) <= 80
    code, out, _ = run_cli(["segment", "--help"], capsys)
    assert "--save-probabilities / --no-save-probabilities" in out and "$RECOSEG_WEIGHTS" in out


def test_an_empty_folder_blames_the_folder_not_the_output_name(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["segment", tmp_path / "empty", "-o", tmp_path / "m.nii.gz"], capsys)
    assert code == 2 and "empty: no patient folders found" in err and len(err.strip().splitlines()) == 1


def test_too_few_slices_are_refused_on_every_path(tiny_patient, tmp_path, capsys):
    """A one-slice exam is refused as a prepared exam's thin series is: at least MIN_SLICES along every axis."""
    for path in tiny_patient.glob("*.nii.gz"):
        image = nib.load(str(path))
        nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[:, :, 10:11], image.affine), str(path))
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "m.nii.gz"], capsys)
    assert code == 2 and "1 slices along one axis, too few to segment (at least 10)" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "m.nii.gz").exists()


def test_a_4d_sequence_is_refused_before_any_preparation(tiny_patient, tmp_path, capsys):
    t2 = next(tiny_patient.glob("*_t2.nii.gz"))
    image = nib.load(str(t2))
    nib.save(nib.Nifti1Image(np.stack([np.asarray(image.dataobj)] * 2, -1), image.affine), str(t2))
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "m.nii.gz"], capsys)
    assert code == 2 and err.strip() == f"error: {t2}: expected a 3D image, got shape (48, 48, 32, 2)"


def test_15b_the_overlay_shows_every_separate_lesion(tmp_path):
    """Two lesions far apart: the picture gets a second row, one panel per lesion, the distant one in red."""
    from recoseg_cli.overlay import lesion_views, write_overlay

    whole = np.zeros((40, 40, 30), bool)
    whole[5:12, 5:12, 5:10], whole[28:32, 28:32, 20:24] = True, True
    masks = {"whole": whole, "core": whole & False, "enhancing": whole & False}
    views = lesion_views(masks, (1.0, 1.0, 1.0))
    assert [entry["ml"] for _, _, entry in views] == [0.245, 0.064] and views[1][2]["distance_mm"] > 20
    assert [index for index, _, _ in views] == [5, 20]  # each lesion's largest cross-section
    image = np.random.default_rng(0).random(whole.shape).astype(np.float32)
    write_overlay(tmp_path / "o.png", image, None, masks, None, "brats2020", np.ones_like(whole), "P", (1.0, 1.0, 1.0))
    assert (tmp_path / "o.png").read_bytes()[:4] == b"\x89PNG"
    assert lesion_views({**masks, "whole": masks["whole"] & (np.arange(30) < 15)}, (1.0, 1.0, 1.0)) == []
