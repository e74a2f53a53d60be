"""Inference seconds and peak memory of each peer on one case, run in turn as separate processes on the same CPU.

    python examples/peers/inference_cost.py CASE OUT.json --rounds 3 \
        --segresnet runs/peers_segresnet/fold0/checkpoint.pt \
        --system "accurate=" --system "four sequences=runs/cv_mod/fold0/modalities/last.pt" ...

Each ``--system NAME=WEIGHTS`` is ``recoseg segment CASE`` with those weights (empty: the bundled default), a new
process as users run it; ``--segresnet CHECKPOINT`` adds MONAI's SegResNet as ``segresnet.py`` scores it (load,
z-score, sliding-window inference over the 128³ crops it trained on, threshold, write the mask). The systems run
one after another, ``--rounds`` times (A B C A B C ...); per system the median wall time from the process's start
to its exit and the largest peak resident memory (``wait4``), both in ``OUT.json``. Pass a case none of the
weights trained on, or do not read anything into its accuracy.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEGRESNET_ROI = (128, 128, 128)


def segresnet_segment(case: Path, checkpoint: Path, output: Path) -> None:
    """One case through the trained SegResNet, as the peer script scores it, written as a BraTS label map."""
    import nibabel as nib
    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent))
    from segresnet import load_case, predict, trained_network

    from recoseg_cli.io.nifti import to_image
    from recoseg_cli.regions import labels_from_regions

    loaded = load_case(case)
    masks = {region: p > 0.5 for region, p in predict(trained_network(checkpoint), loaded, SEGRESNET_ROI).items()}
    labels = labels_from_regions(masks["whole"], masks["core"], masks["enhancing"], "brats2020")
    nib.save(to_image(labels, loaded["volumes"].geometry, np.uint8), output)


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds from start to exit and peak resident memory (GB) of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    errors = process.stderr.read()  # to the end (the child's exit), so that a full pipe never blocks it
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {errors.decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024 ** 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--system", action="append", default=[], help="NAME=WEIGHTS (empty: the bundled default)")
    parser.add_argument("--segresnet", type=Path, help="a checkpoint of segresnet.py")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--segresnet-only", nargs=2, type=Path, metavar=("CHECKPOINT", "OUTPUT"),
                        help=argparse.SUPPRESS)  # the child process of --segresnet
    arguments = parser.parse_args()
    if arguments.segresnet_only:
        segresnet_segment(arguments.case, *arguments.segresnet_only)
        return
    with tempfile.TemporaryDirectory() as work:
        commands = {}
        for entry in arguments.system:
            name, _, weights = entry.partition("=")
            command = ["recoseg", "segment", str(arguments.case), "-o", f"{work}/{len(commands)}.nii.gz",
                       "--overwrite", "-q"]
            commands[name] = command + (["--weights", weights] if weights else [])
        if arguments.segresnet:
            commands["SegResNet"] = [sys.executable, __file__, str(arguments.case), str(arguments.out),
                                     "--segresnet-only", str(arguments.segresnet), f"{work}/segresnet.nii.gz"]
        runs = {name: [] for name in commands}
        for _ in range(arguments.rounds):
            for name, command in commands.items():
                runs[name].append(timed(command))
    results = {name: {"median_seconds": round(statistics.median(s for s, _ in values), 2),
                      "seconds": [round(s, 2) for s, _ in values],
                      "peak_memory_gb": round(max(m for _, m in values), 2)} for name, values in runs.items()}
    results = {"case": arguments.case.name, "threads": os.environ.get("OMP_NUM_THREADS", "all"),
               "commands": {name: " ".join(c) for name, c in commands.items()}, "systems": results}
    arguments.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results["systems"], indent=1))


if __name__ == "__main__":
    main()
