"""The benchmark scripts run end to end at toy sizes and print their comparison lines, so that they do not rot
between the days someone measures with them (the figures themselves are for the closing notes, not tests)."""

from __future__ import annotations

import argparse
import importlib.util
import math
import re
import subprocess
import sys

import pytest
from helpers import PANGRAMS, REPO, launch_env, play, write_corpus

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


def test_speedrun_times_two_presets_and_a_variant_in_turns_after_tokenizing_untimed(tmp_path):
    text = tmp_path / "play.txt"
    text.write_text(play(0, lines=400), encoding="utf-8")
    lines = run_benchmark("speedrun.py", "--baseline", "quickstart", "--contender", "llama-style", "--data", str(text),
                          "--valid-start", "0.8", "--valid-chars", "500", "--target", "5.0", "--eval-every", "2",
                          "--rounds", "2", "--variant", "QK-norm: --qk-norm", "--", "--max-steps", "4", "--seq", "16",
                          "--batch", "4", cwd=tmp_path)
    rounds = [number for number, line in enumerate(lines) if line.startswith("round ")]
    assert [lines[number][:10] for number in rounds] == ["round 1/2:", "round 2/2:"]
    packing = [number for number, line in enumerate(lines) if line.startswith(("tokenizing and packing", "training"))]
    timed = [number for number, line in enumerate(lines) if line.startswith("timed: ")]
    assert len(timed) == 6 and packing and max(packing) < timed[0], "tokenizing belongs to the untimed runs"
    # preset, median time to the target, its range, the full run, the loss at the baseline's full time
    assert re.fullmatch(r"quickstart +(\d+\.\d s) +\d+\.\d s-\d+\.\d s +\d+\.\d s +[1-4]\.\d{3}", lines[-4]), lines
    assert re.fullmatch(r"llama-style +(\d+\.\d s|never) +.* s +(\d\.\d{3}|n/a)", lines[-3]), lines
    assert re.fullmatch(r"llama-style, QK-norm +(\d+\.\d s|never) +.* s +(\d\.\d{3}|n/a)", lines[-2]), lines
    assert re.fullmatch(r"time to validation loss 5\.00: llama-style vs quickstart: \d+\.\d\dx", lines[-1]), lines[-1]


@pytest.fixture
def speedrun(monkeypatch):
    """benchmarks/speedrun.py as a module, to test its arithmetic without training."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("speedrun", REPO / "benchmarks" / "speedrun.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "speedrun", module)  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def test_speedrun_reads_times_and_losses_from_the_evaluations(speedrun):
    outcome = speedrun.Outcome(seconds=[1.0, 3.0, 5.0], losses=[4.0, 3.0, 2.5])
    assert (outcome.time_to(3.0), outcome.time_to(2.6), outcome.time_to(2.0)) == (3.0, 5.0, math.inf)
    assert (outcome.loss_at(2.0), outcome.loss_at(4.0), outcome.loss_at(9.0)) == (3.5, 2.75, 2.5)
    assert math.isnan(outcome.loss_at(0.5))


def test_speedrun_reports_medians_and_the_baselines_time_over_the_contenders(speedrun, capsys, tmp_path):
    args = argparse.Namespace(baseline="slow", contender="fast", target=1.8, data=tmp_path / "t.txt", valid_chars=9,
                              valid_start=0.95,
                              eval_every=50, rounds=3, device="cpu")
    slow = [speedrun.Outcome([10.0, 20.0 + r, 40.0 + r], [2.0, 1.8, 1.6]) for r in (0, 5, 1)]  # full 41 s
    fast = [speedrun.Outcome([5.0, 10.0 * r, 60.0], [1.9, 1.7, 1.5]) for r in (1, 3, 2)]  # at 41 s: 1.576 1.627 1.595
    roles = {"baseline": speedrun.Contestant("slow", []), "contender": speedrun.Contestant("fast", [])}
    speedrun.report(args, roles, {"baseline": slow, "contender": fast})
    lines = capsys.readouterr().out.splitlines()
    assert lines[-3].split() == ["slow", "21.0", "s", "20.0", "s-25.0", "s", "41.0", "s", "1.600"]
    assert lines[-2].split() == ["fast", "20.0", "s", "10.0", "s-30.0", "s", "60.0", "s", "1.595"]
    assert lines[-1] == "time to validation loss 1.80: fast vs slow: 1.05x"


def test_a_speedrun_variant_is_the_contender_with_its_flags_on_top(speedrun):
    args = argparse.Namespace(baseline="a", contender="b", variant=["no QK-norm: --no-qk-norm --lr 1e-3"])
    roles = speedrun.contestants(args)
    assert [(role, c.label, c.flags) for role, c in roles.items()] == [
        ("baseline", "a", ["--config", "a"]), ("contender", "b", ["--config", "b"]),
        ("variant-1", "b, no QK-norm", ["--config", "b", "--no-qk-norm", "--lr", "1e-3"])]
