"""Every script under examples/ runs as its docstring says, so a change in the library cannot break one unseen."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import REPO, TINY_MODEL_FLAGS, launch_env, write_corpus

pytestmark = pytest.mark.slow

TESTED = {"train_as_library.py", "use_saved_model.py"}  # the Slurm scripts have tests of their own


def run_example(name: str, *args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "examples" / name), *args], cwd=cwd, env=launch_env(),
                          capture_output=True, text=True, timeout=300)


def test_every_python_example_is_run_here():
    assert {path.name for path in (REPO / "examples").glob("*.py")} == TESTED


def test_train_as_library_trains_and_samples(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", documents=10)
    result = run_example("train_as_library.py", str(corpus), *TINY_MODEL_FLAGS, "--max-steps", "10", "--no-compile",
                         "--cache-dir", str(tmp_path / "cache"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert (tmp_path / "runs" / "examples").is_dir()
    assert "sampling from " in result.stdout and "/final" in result.stdout


def test_use_saved_model_generates_from_a_final_folder(trained_run, tmp_path):
    result = run_example("use_saved_model.py", str(trained_run / "final"), "The quick", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert result.stdout.startswith("The quick") and len(result.stdout.strip()) > len("The quick")
    assert "Do you wish to run the custom code" not in result.stdout  # every loader was given trust_remote_code
