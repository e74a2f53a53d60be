"""A bundled model's networks on this CPU: ONNX Runtime fp32, ONNX Runtime int8 and OpenVINO fp32, ms per slice.

    python network_speed.py MODEL CASE_DIR [CASE_DIR ...] OUT.json

The slices are those `segment` feeds each network on the given BraTS-ready cases (96 drawn evenly), run in
batches of 8, the three runtimes alternated over five rounds (medians). int8: the ONNX export quantized
statically as in ``int8_folds.py``, calibrated on the same slices (speed only, not accuracy). OpenVINO reads the
same ONNX file (``pip install openvino``); its largest output difference from ONNX Runtime fp32 is recorded.
"""

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import openvino

from int8_folds import Recorder, calibration_slices, ms_per_slice, quantized
from recoseg_cli.api import Segmenter
from recoseg_cli.onnx_networks import OnnxSlices, onnx_files

ROUNDS = 5


def run_all(network, slices: np.ndarray) -> np.ndarray:
    return np.concatenate([network(slices[i:i + 8]) for i in range(0, len(slices), 8)])


def main() -> None:
    model, cases, out = sys.argv[1], [Path(p) for p in sys.argv[2:-1]], Path(sys.argv[-1])
    segmenter = Segmenter(model=model, device="cpu", runtime="onnx", bf16=False)
    networks = {"segmenter": segmenter.network}
    if segmenter.synthesizer is not None:
        networks["regressor"] = segmenter.synthesizer
    recorders = {}
    for name, holder in networks.items():
        recorders[name] = Recorder(holder.network)
        holder.network = recorders[name]
    for case in cases:
        segmenter(case, prepare="off")
    files = dict(zip(("segmenter", "regressor"), onnx_files(segmenter.weights.path)))
    core = openvino.Core()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, recorder in recorders.items():
            slices = calibration_slices(recorder)
            compiled = core.compile_model(str(files[name]), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            candidates = {"onnxruntime_fp32": recorder.network,
                          "onnxruntime_int8": OnnxSlices(quantized(files[name], slices, Path(folder))),
                          "openvino_fp32": lambda batch, c=compiled: c(batch)[0]}
            results[name] = {"ms_per_slice": ms_per_slice(candidates, slices, ROUNDS),
                             "openvino_largest_difference": float(np.abs(
                                 run_all(candidates["openvino_fp32"], slices)
                                 - run_all(candidates["onnxruntime_fp32"], slices)).max())}
            print(name, results[name], flush=True)
    out.write_text(json.dumps({"model": model, "cases": [c.name for c in cases], "rounds": ROUNDS,
                               "openvino": openvino.__version__, **results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
