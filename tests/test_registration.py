"""`import hfgpt` registers the model with the Auto classes whatever the import order, without importing
transformers or torch itself, so the `hfgpt` command starts at once."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import REPO

pytestmark = pytest.mark.slow  # fresh interpreters

USE_THE_AUTO_CLASSES = """
from transformers import AutoConfig, AutoModelForCausalLM
config = AutoConfig.for_model("hfgpt", hidden_size=8, num_attention_heads=2, num_hidden_layers=1, vocab_size=10)
print(type(AutoModelForCausalLM.from_config(config)).__name__)
"""


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)


@pytest.mark.parametrize("first", [
    "import hfgpt",
    "import transformers; import hfgpt",
    "from hfgpt import HfGptConfig",
    "import hfgpt.models.hfgpt.modeling_hfgpt",
    "from hfgpt.models.hfgpt.configuration_hfgpt import HfGptConfig",
])
def test_the_auto_classes_know_hfgpt_whatever_was_imported_first(first):
    result = python(first + "\n" + USE_THE_AUTO_CLASSES)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("HfGptForCausalLM")


def test_importing_hfgpt_and_its_help_load_neither_transformers_nor_torch():
    result = python("""
import sys
import hfgpt
from hfgpt.cli import main
for argv in (["--help"], ["train", "--help"], ["continue", "--help"], ["fork", "--help"], ["--version"]):
    main(argv)
for argv in (["generate", "--help"], ["eval", "--help"], ["plot", "--help"], ["runs", "--help"], ["push", "--help"],
             ["export", "--help"]):
    try:
        main(argv)
    except SystemExit:  # argparse's --help
        pass
heavy = sorted(name for name in ("torch", "transformers", "accelerate", "datasets") if name in sys.modules)
print("heavy:", heavy)
""")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("heavy: []")
