"""Command-line behaviour shared by all commands: one-line errors, exit codes, fast rejection of typos."""

import subprocess
import sys

import pytest

RUN_MAIN = ("import sys\nfrom recoseg_cli.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as exit_:\n"
            "    print(exit_.code, 'torch' in sys.modules)")


@pytest.mark.parametrize("args, message", [
    (["segment", "{tmp}/missing", "-o", "{tmp}/m.nii.gz"], "missing: no such folder"),
    (["segment", "{tmp}", "-o", "{tmp}/m.nii.gz", "--shard", "3"], "--shard must look like i/n"),
    (["segment", "{tmp}", "-o", "{tmp}/m.nii.gz", "--device", "gpu"], "--device must be auto, cpu or cuda[:i]"),
    (["segment", "{tmp}", "-o", "{tmp}/m.nii.gz", "--threshold", "2"], "Invalid value for '--threshold'"),
    (["synthesize", "{tmp}/missing", "-o", "{tmp}/s.nii.gz"], "missing: no such folder"),
    (["train", "--data", "{tmp}"], "Missing option '-o'"),
    (["segment", "{tmp}", "-o", "{tmp}/m.nii.gz", "--labels", "brats2021"], "Invalid value for '--labels'"),
    (["residual", "{tmp}", "-o", "{tmp}/r.nii.gz", "--sampler", "euler"], "Invalid value for '--sampler'"),
])
def test_typos_get_one_line_and_exit_2_before_torch_is_imported(tmp_path, args, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    done = subprocess.run([sys.executable, "-c", RUN_MAIN, *argv], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1 and message in done.stderr


def test_benchmark_budget_help_names_defaults_and_quick_values():
    """The budget options default to None (the plan decides), so their help must say what the plan uses."""
    import inspect

    from recoseg_cli.benchmark.plan import QUICK, Plan
    from recoseg_cli.cli import app

    command = next(c.callback for c in app.registered_commands if c.callback.__name__ == "benchmark")
    parameters = inspect.signature(command).parameters
    for name in ("train_patients", "test_patients", "size", "stage_one_steps", "seg_steps", "batch_size"):
        help_text = parameters[name].default.help
        assert f"[default: {getattr(Plan(), name)}; --quick: {getattr(QUICK, name)}]" in help_text, name
