"""Static int8 quantization of cross-validation fold models, scored on their held-out cases against fp32.

    python int8_folds.py RUN CASES THICK OUT.json FOLD [FOLD ...] [--calibration-cases N]

RUN is a ``recoseg crossval`` folder (``fold<k>/cases.json``, ``fold<k>/recoseg/last.pt``), CASES the BraTS-ready
cases, THICK the output of ``../../clinical_exams/make_thick_exams.py`` (each case as a prepared thick-slice exam). Per fold: both networks exported to ONNX (fp32), then quantized by ONNX Runtime (QDQ, int8 weights per
channel, uint8 activations) with activation ranges calibrated on slices of N of the fold's *training* cases; each
held-out case, BraTS-ready and as a thick-slice exam, segmented by ONNX Runtime in fp32 and in int8 (the cross-validation's post-processing), scored
against its labels, and the two masks compared. Also the milliseconds per slice of each network, fp32 and int8
alternated in batches of 8 as ``segment`` runs them.
"""

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import onnxruntime
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from recoseg_cli.api import Segmenter
from recoseg_cli.crossval import POSTPROCESS_CANDIDATES
from recoseg_cli.io.json_io import write_json
from recoseg_cli.metrics import dice, paired_difference
from recoseg_cli.onnx_networks import OnnxSlices, export_onnx, onnx_files
from recoseg_cli.prepare.exam import PreparedExam
from recoseg_cli.regions import REGIONS, region_mask

POSTPROCESS = POSTPROCESS_CANDIDATES[4]
CALIBRATION_SLICES = 96
"""Slices per network kept for calibration (drawn evenly from the calibration cases' brain slices)."""


class Recorder:
    """Passes batches to a network and keeps them."""

    def __init__(self, network):
        self.network, self.batches = network, []
        self.out_channels = network.out_channels

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(batch.copy())
        return self.network(batch)


class Slices(CalibrationDataReader):
    def __init__(self, input_name: str, slices: np.ndarray, batch: int = 8):
        self.feeds = iter([{input_name: slices[i:i + batch]} for i in range(0, len(slices), batch)])

    def get_next(self):
        return next(self.feeds, None)


def calibration_slices(recorder: Recorder) -> np.ndarray:
    stacked = np.concatenate(recorder.batches)
    picked = np.linspace(0, len(stacked) - 1, CALIBRATION_SLICES).round().astype(int)
    return np.ascontiguousarray(stacked[picked])


def quantized(source: Path, slices: np.ndarray, folder: Path) -> Path:
    prepared, target = folder / f"{source.stem}.pre.onnx", folder / f"{source.stem}.int8.onnx"
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    name = onnxruntime.InferenceSession(str(source), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    quantize_static(str(prepared), str(target), Slices(name, slices), quant_format=QuantFormat.QDQ,
                    per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    return target


def ms_per_slice(networks: dict, slices: np.ndarray, rounds: int = 3) -> dict:
    """Median ms per slice of each network over ``rounds`` passes, the networks alternated."""
    times = {name: [] for name in networks}
    for _ in range(rounds):
        for name, network in networks.items():
            start = time.perf_counter()
            for i in range(0, len(slices), 8):
                network(slices[i:i + 8])
            times[name].append(1000 * (time.perf_counter() - start) / len(slices))
    return {name: round(float(np.median(t)), 2) for name, t in times.items()}


def masks(result) -> dict:
    return {region: region_mask(result.labels, region) for region in REGIONS}


def fold_scores(run: Path, cases: Path, thick: Path, fold: int, calibration_cases: int, folder: Path) -> dict:
    split = json.loads((run / f"fold{fold}" / "cases.json").read_text())
    weights = folder / f"fold{fold}.pt"
    shutil.copy(run / f"fold{fold}" / "recoseg" / "last.pt", weights)
    export_onnx(weights)
    segmenter = Segmenter(weights, "cpu", force=True, runtime="onnx", bf16=False)
    segmenter.postprocess = POSTPROCESS
    fp32 = {"segmenter": segmenter.network.network, "regressor": segmenter.synthesizer.network}
    recorders = {name: Recorder(network) for name, network in fp32.items()}
    segmenter.network.network, segmenter.synthesizer.network = recorders["segmenter"], recorders["regressor"]
    for name in split["train"][:calibration_cases]:
        segmenter(cases / name, prepare="off")
    calibration = {name: calibration_slices(recorder) for name, recorder in recorders.items()}
    paths = dict(zip(("segmenter", "regressor"), onnx_files(weights)))
    int8 = {name: OnnxSlices(quantized(paths[name], calibration[name], folder)) for name in paths}
    timing = {name: ms_per_slice({"fp32": fp32[name], "int8": int8[name]}, calibration[name]) for name in paths}
    scored = []
    for name in split["test"]:
        versions = {"clean": (cases / name, cases / name / f"{name}_seg.nii.gz"),
                    "thick": (PreparedExam.read(thick / "prepared" / name), thick / "exams" / name / f"{name}_seg.nii.gz")}
        for version, (exam, truth_path) in versions.items():
            truth = np.asarray(nib.load(str(truth_path)).dataobj).astype(np.uint8)
            truths = {region: region_mask(truth, region) for region in REGIONS}
            found = {}
            for precision, networks in (("fp32", fp32), ("int8", int8)):
                segmenter.network.network, segmenter.synthesizer.network = networks["segmenter"], networks["regressor"]
                found[precision] = masks(segmenter(exam, prepare="off") if version == "clean" else segmenter(exam))
            scored.append({"case_id": name, "fold": fold, "version": version,
                           **{precision: {region: round(dice(m[region], truths[region]), 4) for region in REGIONS}
                              for precision, m in found.items()},
                           "agreement": {region: round(dice(found["int8"][region], found["fp32"][region]), 5)
                                         for region in REGIONS}})
            print(f"fold {fold}: {name} {version} {scored[-1]['fp32']} {scored[-1]['int8']}", flush=True)
    return {"fold": fold, "ms_per_slice": timing, "cases": scored}


def summary(results: dict) -> str:
    """Markdown: per version and region, fp32 and int8 mean Dice, their paired difference and the masks' agreement;
    then each fold's milliseconds per slice."""
    cases = [c for fold in results["folds"] for c in fold["cases"]]
    lines = ["| version (cases) | region | fp32 Dice | int8 Dice | int8 - fp32 [95% CI] | masks' agreement, lowest |",
             "| --- | --- | --- | --- | --- | --- |"]
    for version in ("clean", "thick"):
        rows = [c for c in cases if c["version"] == version]
        for region in REGIONS:
            fp32 = [c["fp32"][region] for c in rows]
            int8 = [c["int8"][region] for c in rows]
            d = paired_difference(int8, fp32)
            lines.append(f"| {version} ({len(rows)}) | {region} | {np.mean(fp32):.3f} | {np.mean(int8):.3f} | "
                         f"{d['mean']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] | "
                         f"{min(c['agreement'][region] for c in rows):.4f} |")
    lines += ["", "| fold | regressor ms per slice, fp32 / int8 | segmenter ms per slice, fp32 / int8 |",
              "| --- | --- | --- |"]
    for fold in results["folds"]:
        ms = fold["ms_per_slice"]
        lines.append(f"| {fold['fold']} | {ms['regressor']['fp32']} / {ms['regressor']['int8']} | "
                     f"{ms['segmenter']['fp32']} / {ms['segmenter']['int8']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("cases", type=Path)
    parser.add_argument("thick", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("folds", type=int, nargs="+")
    parser.add_argument("--calibration-cases", type=int, default=4)
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.is_file() else {"folds": []}
    done = {f["fold"] for f in results["folds"]}
    for fold in args.folds:
        if fold in done:
            continue
        with tempfile.TemporaryDirectory() as folder:
            results["folds"].append(fold_scores(args.run, args.cases, args.thick, fold, args.calibration_cases, Path(folder)))
        write_json(args.out, results)
    args.out.with_suffix(".md").write_text(summary(results))


if __name__ == "__main__":
    main()
