"""Mixed runs as users launch them: a 3:1 mixture reads 75% of its tokens from the first source (counted from the
blocks it logged, each told apart by its content); a mixed run and a scheduled one, stopped and continued, end
bitwise equal to their uninterrupted twins; each validation set is a line of its own, in the log, loss.png and the
card; and the weights cannot change within a run, only in a fork."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from helpers import read_log, run_hfgpt
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from resume_helpers import EVAL_EVERY, MAX_STEPS, SEQ, assert_same_run, checked, exact_flags
from transformers import AutoTokenizer

from hfgpt.config import DataSection
from hfgpt.data.prepare import prepare_data

pytestmark = pytest.mark.slow

ALPHABETS = {"letters": "abcdefghij", "digits": "0123456789"}
MIXED = "letters.txt:3,digits.txt:1"
SCHEDULED = "letters.txt:1@0/3@0.5,digits.txt:1"
# Each source streams as one example (a short file), which a hash cannot split: validation sets, then.
STREAMED = (MIXED, "--streaming", "--valid", "letters.txt,digits.txt")
REFERENCES = {"mixed": (MIXED,), "scheduled": (SCHEDULED,), "streamed": STREAMED}


def write_sources(folder: Path) -> None:
    """Two sources that no block can confuse: letters only (24 blocks) and digits only (12 blocks), once per folder
    (a rewrite would change their fingerprint)."""
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    for (name, alphabet), blocks in zip(ALPHABETS.items(), (24, 12), strict=True):
        if not (folder / f"{name}.txt").is_file():
            (folder / f"{name}.txt").write_text("".join(rng.choice(alphabet) for _ in range(blocks * SEQ - 1)))


def mixed_flags(root: Path, name: str, train: str, *extra: str) -> list[str]:
    """exact_flags's tiny run (dropout, every step logged with its blocks), on the mixture `train`."""
    write_sources(root / "data")
    flags = exact_flags(root, name)
    at = flags.index("--valid")
    del flags[at:at + 2]
    flags[flags.index("--train") + 1] = train
    return [*flags, "--datadir", str(root / "data"), *extra]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """The uninterrupted mixed and scheduled runs, which the tests compare with."""
    root = tmp_path_factory.mktemp("mixtures")
    for name, (train, *extra) in REFERENCES.items():
        result = checked(run_hfgpt(mixed_flags(root, name, train, *extra), cwd=root))
        assert "mixture of 2 sources" in result.stdout
    return root


def test_a_three_to_one_mixture_reads_three_quarters_of_its_tokens_from_the_first(root):
    run_dir = root / "runs" / "mixed"
    data = prepare_data(DataSection(train=MIXED, datadir=str(root / "data"), cache_dir=str(root / "cache")), SEQ,
                        log=lambda line: None, tokenizer=AutoTokenizer.from_pretrained(run_dir / "tokenizer"))
    assert data.reused, "the run's own packed blocks"
    tokens = {name: 0 for name in ALPHABETS}
    for record in read_log(run_dir, "samples.jsonl"):
        for block in record["blocks"][0]:
            text = data.tokenizer.decode(data.train[block]["input_ids"], skip_special_tokens=True)
            [source] = [name for name, alphabet in ALPHABETS.items() if set(text) <= set(alphabet)]
            tokens[source] += len(data.tokenizer(text, add_special_tokens=False)["input_ids"])
    share = tokens["letters"] / sum(tokens.values())
    assert abs(share - 0.75) <= 0.02, tokens


def test_a_streamed_mixture_deals_its_micro_batches_as_the_weights_say(root):
    read = [name.split(":")[0] for record in read_log(root / "runs" / "streamed", "samples.jsonl")
            for name in record["blocks"][0]]
    assert len(read) == MAX_STEPS * 8 and read.count("letters") == MAX_STEPS * 6, "6 of 8 at every step"


def test_each_sources_held_out_blocks_are_a_validation_line_and_the_mean_is_valid(root):
    records = read_log(root / "runs" / "mixed")
    evaluated = [r for r in records if r["split"].startswith("valid")]
    assert [r["split"] for r in evaluated] == ["valid/letters", "valid/digits", "valid"] * (MAX_STEPS // EVAL_EVERY)
    for step in range(EVAL_EVERY, MAX_STEPS + 1, EVAL_EVERY):
        letters, digits, mean = (r for r in evaluated if r["step"] == step)
        assert min(letters["loss"], digits["loss"]) < mean["loss"] < max(letters["loss"], digits["loss"])
    train = [r for r in records if r["split"] == "train"]
    assert train[-1]["epoch/letters"] == pytest.approx(MAX_STEPS * 6 / 22)  # 24 blocks less 2 held out; 6 a step
    assert train[-1]["epoch/digits"] == pytest.approx(MAX_STEPS * 2 / 11)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_a_mixed_run_stopped_and_continued_is_bitwise_the_uninterrupted_one(root, name):
    stopped, (train, *extra) = f"{name}-stopped", REFERENCES[name]
    checked(run_hfgpt([*mixed_flags(root, stopped, train, *extra), "--stop-at-step", "7"], cwd=root))
    checked(run_hfgpt(["continue", str(root / "runs" / stopped)], cwd=root))
    assert_same_run(root / "runs" / stopped, root / "runs" / name)


def test_the_weights_cannot_change_within_a_run_and_a_fork_may_change_them(root):
    run_dir = root / "runs" / "mixed"
    refused = run_hfgpt(["continue", str(run_dir), "--train", "letters.txt:1,digits.txt:1", "--max-steps", "16"],
                        cwd=root)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "weights of the mixture's sources" in refused.stderr and "fork" in refused.stderr, refused.stderr
    forked = checked(run_hfgpt(["fork", str(run_dir), "--train", "letters.txt:1,digits.txt:1", "--max-steps", "4",
                                "--run-name", "fork", "--datadir", str(root / "data")], cwd=root))
    assert "digits  " in forked.stdout and "50.0%" in forked.stdout


def test_two_validation_sets_are_two_lines_in_the_log_the_plot_and_the_card(tmp_path):
    write_sources(tmp_path / "data")
    flags = mixed_flags(tmp_path, "two-sets", "letters.txt", "--valid", "letters.txt,numbers=digits.txt",
                        "--best-metric", "valid/numbers", "--max-steps", "8")
    checked(run_hfgpt(flags, cwd=tmp_path))
    run_dir = tmp_path / "runs" / "two-sets"
    splits = [r["split"] for r in read_log(run_dir) if r["split"].startswith("valid")]
    assert splits == ["valid/letters", "valid/numbers", "valid"] * 2
    numbers = [r for r in read_log(run_dir) if r["split"] == "valid/numbers"]
    best = min(numbers, key=lambda r: r["loss"])
    assert json.loads((run_dir / "best" / "metrics.json").read_text())["step"] == best["step"]
    assert (run_dir / "loss.png").stat().st_size > 10_000
    card = ModelCard.load(run_dir / "final" / "README.md")
    _, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    losses = {result.dataset_config or "valid": result.metric_value for result in results
              if result.metric_type == "loss"}
    final = {r["split"].removeprefix("valid/"): r["loss"] for r in read_log(run_dir) if r["step"] == 8
             and r["split"].startswith("valid")}
    assert losses == {key: pytest.approx(value, abs=1e-6) for key, value in final.items()}
    assert "validation of this model on numbers" in card.text
    assert np.isfinite(list(losses.values())).all()
