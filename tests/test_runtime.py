"""The ONNX Runtime path: exported networks agree with torch's, the choice of runtime, and a `segment` without torch."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, run_cli
from recoseg_cli.api import Segmenter
from recoseg_cli.data.synthetic import write_patient
from recoseg_cli.metrics import dice
from recoseg_cli.onnx_networks import export_onnx, onnx_files
from recoseg_cli.regions import region_mask
from recoseg_cli.weights import BUNDLED_DIR, BUNDLED_MODELS, bundled_checksum, sha256_of

REAL_CASES = Path(__file__).resolve().parents[2] / "shared" / "real" / "cases"
needs_real = pytest.mark.skipif(not REAL_CASES.is_dir(), reason="the real BraTS cases are not beside this checkout")


@pytest.fixture
def exported(tiny_weights, tmp_path) -> Path:
    """A copy of the tiny regressor-residual weights with its ONNX export beside it."""
    weights = tmp_path / "tiny.pt"
    shutil.copy(tiny_weights["seg_regressor"], weights)
    assert export_onnx(weights) == list(onnx_files(weights))
    return weights


def test_exported_networks_agree_with_torch(exported, tiny_patient):
    on_onnx = Segmenter(exported, "cpu", runtime="onnx")
    on_torch = Segmenter(exported, "cpu", runtime="torch", bf16=False)
    assert on_onnx.runtime.startswith("onnxruntime") and on_torch.runtime.startswith("torch")
    assert on_onnx.precision == "fp32"
    a, b = on_onnx(tiny_patient, probabilities=True), on_torch(tiny_patient, probabilities=True)
    threshold = on_onnx.postprocess.threshold
    for region in ("whole", "core", "enhancing"):
        p, q = a.probabilities[region].get_fdata(), b.probabilities[region].get_fdata()
        assert np.abs(p - q).max() < 1e-3, region
        clear = np.abs(q - threshold) > 1e-3  # away from the threshold, the two runtimes label alike
        assert np.array_equal((p >= threshold)[clear], (q >= threshold)[clear]), region


def test_auto_runs_an_export_on_the_cpu_and_torch_otherwise(exported, tiny_weights, monkeypatch):
    assert Segmenter(exported, "cpu").runtime.startswith("onnxruntime")
    assert Segmenter(tiny_weights["seg"], "cpu").runtime.startswith("torch")  # a DDPM stage 1: no export
    monkeypatch.setattr("recoseg_cli.runtime.cpu_has_amx", lambda: True)  # bf16 pays: torch, unless bf16 is off
    assert Segmenter(exported, "cpu").runtime.startswith("torch")
    assert Segmenter(exported, "cpu", bf16=False).runtime.startswith("onnxruntime")


def test_weights_without_a_usable_export_are_refused_on_onnx(exported, tiny_weights, tiny_patient, tmp_path, capsys):
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "m.nii.gz", "--weights", tiny_weights["seg"],
                            "--runtime", "onnx"], capsys)
    assert code == 2 and "--runtime onnx" in err and "has no ONNX export" in err and "export-onnx" in err
    code, _, err = run_cli(["export-onnx", tiny_weights["seg"]], capsys)
    assert code == 2 and "stage 1 is a ddpm" in err
    shutil.copy(tiny_weights["seg"], exported)  # other weights under the exported name: the export is stale
    code, _, err = run_cli(["segment", tiny_patient, "-o", tmp_path / "m.nii.gz", "--weights", exported,
                            "--runtime", "onnx"], capsys)
    assert code == 2 and "exported from other weights" in err and not (tmp_path / "m.nii.gz").exists()


def test_bundled_exports_match_their_sums_and_their_weights():
    for name in BUNDLED_MODELS.values():
        weights = BUNDLED_DIR / name
        segmenter_export, stage_one_export = onnx_files(weights)
        if name == "recoseg_ddpm.pt":  # DDPM stage 1: torch only
            assert not segmenter_export.exists() and not stage_one_export.exists()
            continue
        has_stage_one = Segmenter(weights, "cpu", runtime="torch").synthesizer is not None
        exported = Segmenter(weights, "cpu", runtime="onnx")
        assert exported.weights.extra["channels"] and (exported.synthesizer is not None) == has_stage_one
        assert stage_one_export.exists() == has_stage_one  # a specialist without stage 1 exports one network
        for path in (segmenter_export, stage_one_export)[:1 + has_stage_one]:
            assert bundled_checksum(path.name) == sha256_of(path), path.name


def test_segment_on_the_cpu_never_imports_torch(tiny_patient, tmp_path):
    script = ("import sys, json; from recoseg_cli.cli import main; import os; os._exit = sys.exit\n"
              "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
              "print(json.dumps('torch' in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script, "segment", str(tiny_patient), "-o",
                           str(tmp_path / "m.nii.gz"), "--device", "cpu", "--report", str(tmp_path / "r.json"), "-q"],
                          capture_output=True, text=True, check=True)
    report = json.loads((tmp_path / "r.json").read_text())
    assert done.stdout.strip().splitlines()[-1] == "false" and report["runtime"].startswith("onnxruntime")


@needs_real
@pytest.mark.slow
@pytest.mark.parametrize("model", ["accurate", "hires"])
def test_bundled_onnx_masks_agree_with_torch_on_a_real_case(model):
    case = REAL_CASES / sorted(p.name for p in REAL_CASES.iterdir())[0]
    a = Segmenter(model=model, device="cpu", runtime="onnx")(case, probabilities=True)
    b = Segmenter(model=model, device="cpu", runtime="torch", bf16=False)(case, probabilities=True)
    for region in ("whole", "core", "enhancing"):
        p, q = a.probabilities[region].get_fdata(), b.probabilities[region].get_fdata()
        difference = np.abs(p - q)[(p > 0) | (q > 0)]
        # the stated tolerance; measured on the 38 real cases: 99.9th percentile <= 1.0e-3, largest 0.042
        assert np.percentile(difference, 99.9) < 2e-3 and difference.max() < 0.1, region
        assert dice(region_mask(a.labels, region), region_mask(b.labels, region)) >= 0.999, region


def test_a_cohort_runs_torch_under_auto_and_onnx_when_asked(exported, tiny_volumes, tmp_path, capsys):
    for name in ("A", "B"):
        write_patient(tmp_path / "cohort" / name, name, tiny_volumes, TINY.affine)
    for runtime, expected in (("auto", "torch"), ("onnx", "onnxruntime")):
        report = tmp_path / f"{runtime}.json"
        code, _, err = run_cli(["segment", tmp_path / "cohort", "-o", tmp_path / runtime, "--weights", exported,
                                "--runtime", runtime, "--report", report, "--device", "cpu", "-q"], capsys)
        cases = json.loads(report.read_text())["cases"]
        assert code == 0 and [c["runtime"].split()[0] for c in cases] == [expected, expected], err
