"""benchmarks/gpu.sh runs its every step on the CPU with --dry-run, so that it works the day a GPU is lent."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from helpers import REPO, import_or_unavailable

pytestmark = pytest.mark.slow  # five short launches


def test_the_gpu_script_dry_run_trains_and_continues_under_each_config(tmp_path):
    import_or_unavailable("deepspeed")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu.sh"), "--dry-run", "--out", str(tmp_path / "out"),
                             "--", "--qk-norm", "--hidden-act", "relu2"],  # the records' options, to every run
                            capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert sum(line.startswith("step 4: loss ") and "tokens/s, mfu" in line for line in lines) == 3, result.stdout
    runs = tmp_path / "out" / "runs"
    assert [line for line in lines if line.startswith("continuing from")] == [
        f"continuing from {runs / name}/checkpoints/step_00000002 (step 2)" for name in ("cpu", "zero3-cpu")]
    assert lines[-1].startswith("gpu.sh: done")
    for name in ("single", "cpu", "zero3-cpu"):
        model = tomllib.loads((runs / name / "config.toml").read_text())["model"]
        assert (model["qk_norm"], model["hidden_act"]) == (True, "relu2"), name
