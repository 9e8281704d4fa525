"""The benchmark scripts run end to end at toy sizes and print their comparison lines, so that they do not rot
between the days someone measures with them (the figures themselves are for the closing notes, not tests)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import PANGRAMS, REPO, launch_env, write_corpus

pytestmark = pytest.mark.slow  # each runs real training or generation


def run_benchmark(name: str, *args: str, cwd) -> list[str]:
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / name), *args], cwd=cwd, env=launch_env(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout.splitlines()


def test_train_throughput_takes_turns_and_ends_with_the_ratio(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", documents=10)
    lines = run_benchmark("train_throughput.py", "--preset", "quickstart", "--data", str(corpus), "--steps", "3",
                          "--warmup", "2", "--rounds", "2", cwd=tmp_path)
    assert sum(line.startswith("round ") for line in lines) == 2
    assert any(line.startswith("(b) plain fp32 eager loop, HfGpt") for line in lines)
    assert any(line.startswith('(a") hfgpt, shipped, nondeterministic') for line in lines)
    assert lines[-2].startswith("deterministic algorithms (shipped) vs without: ") and lines[-2].endswith("x")
    assert lines[-1].startswith("shipped fast path vs plain fp32 eager loop: ") and lines[-1].endswith("x")


@pytest.mark.parametrize("cache", [[], ["--static-cache"]])
def test_generate_throughput_compares_the_same_greedy_tokens(tmp_path, cache):
    lines = run_benchmark("generate_throughput.py", "--layers", "1", "--heads", "2", "--dim", "32", "--vocab", "64",
                          "--context", "32", "--new-tokens", "4", "--repeats", "1", *cache, cwd=tmp_path)
    assert lines[0].endswith("same greedy tokens: True"), lines
    assert lines[-1].startswith("hfgpt vs GPT2LMHeadModel, KV-cache decode: ")


def test_data_throughput_takes_its_text_from_a_flag(tmp_path):
    """It read tinyshakespeare from one machine's absolute path; the text is a flag now (by default the corpus
    beside the checkout, where there is one)."""
    text = tmp_path / "lines.txt"
    text.write_text("".join(f"{line}\n" for line in PANGRAMS) * 50)
    lines = run_benchmark("data_throughput.py", "--text", str(text), "--generate-mb", "1", "--num-proc", "1",
                          "--tokenizer", "char", "--seq-len", "64", "--raw", "raw-fast", "--workdir", str(tmp_path),
                          cwd=tmp_path)
    assert lines[0].startswith("corpus ") and "tokenizer char" in lines[0]
    assert any(line.startswith("hfgpt text -> packed Arrow") for line in lines), lines
