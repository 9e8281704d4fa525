"""Tasks in a real run: a model trained on facts whose answer a rule decides learns to answer facts it never saw, and
its in-loop accuracy rises from chance to near 1 while an untrained model stays at chance; the scores reach the log,
loss.png, the model card's model-index and --best-metric; `hfgpt eval --tasks` scores the saved model the same; and
a bad task is refused before any training."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
import torch
from helpers import read_log, run_hfgpt
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from resume_helpers import checked

from hfgpt import HfGptConfig, HfGptForCausalLM
from hfgpt.cli import main

pytestmark = pytest.mark.slow

ANSWERS = dict(zip("abcdefgh", "QRSTUVWX", strict=True))  # a word's last letter decides its answer


def write_facts(folder: Path) -> tuple[Path, Path]:
    """Training text of 400 facts `abc S.` and a task of 100 words it never holds, four choices each."""
    rng = random.Random(0)
    words = ["".join(letters) for letters in itertools.product(ANSWERS, repeat=3)]
    rng.shuffle(words)
    folder.mkdir(parents=True, exist_ok=True)
    facts = folder / "facts.txt"
    facts.write_text("\n".join([f"{word} {ANSWERS[word[-1]]}." for word in words[:400]] * 3) + "\n")
    items = []
    for word in words[400:500]:
        right = ANSWERS[word[-1]]
        choices = [right, *rng.sample([a for a in ANSWERS.values() if a != right], 3)]
        rng.shuffle(choices)
        items.append(json.dumps({"context": word, "choices": choices, "label": choices.index(right)}))
    task = folder / "unseen.jsonl"
    task.write_text("\n".join(items) + "\n")
    return facts, task


def flags(root: Path, name: str, *extra: str) -> list[str]:
    facts, task = write_facts(root / "data")
    return ["--train", str(facts), "--eval-tasks", str(task), "--layers", "2", "--dim", "64", "--heads", "4",
            "--position-embedding-type", "rotary", "--seq", "32", "--batch", "16", "--lr", "3e-3",
            "--warmup-steps", "20", "--max-steps", "200", "--eval-every", "25", "--eval-batches", "2",
            "--sample-tokens", "0", "--trackers", "none", "--no-progress-bar", "--rundir", str(root / "runs"),
            "--run-name", name, "--cache-dir", str(root / "cache"), *extra]


@pytest.fixture(scope="module")
def learned(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tasks")
    checked(run_hfgpt(flags(root, "facts", "--best-metric", "task/unseen"), cwd=root))
    return root


def test_the_in_loop_accuracy_rises_from_chance_to_near_one(learned):
    scores = [r for r in read_log(learned / "runs" / "facts") if r["split"] == "task/unseen"]
    assert [r["step"] for r in scores] == list(range(25, 201, 25))
    assert scores[0]["acc"] < 0.5 and scores[0]["chance"] == 0.25 and scores[0]["items"] == 100
    assert scores[-1]["acc"] >= 0.95 and scores[-1]["centred"] >= 0.93
    means = [r for r in read_log(learned / "runs" / "facts") if r["split"] == "tasks"]
    assert [r["centred"] for r in means] == [r["centred"] for r in scores], "one task: the mean is its score"


def test_best_follows_the_task_and_the_card_carries_its_scores(learned):
    run_dir = learned / "runs" / "facts"
    scores = [r for r in read_log(run_dir) if r["split"] == "task/unseen"]
    best = max(scores, key=lambda r: r["centred"])  # the first of the highest
    assert json.loads((run_dir / "best" / "metrics.json").read_text())["step"] == best["step"]
    card = ModelCard.load(run_dir / "final" / "README.md")
    _, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    task = {result.metric_type: result.metric_value for result in results if result.dataset_type == "unseen"}
    assert task == {"accuracy": scores[-1]["acc"], "accuracy_norm": scores[-1]["acc_norm"],
                    "centred_accuracy": pytest.approx(scores[-1]["centred"], abs=1e-6)}
    assert "| task unseen | acc" in card.text
    assert (run_dir / "loss.png").stat().st_size > 10_000


def test_hfgpt_eval_scores_the_saved_model_as_the_loop_did(learned, capsys):
    run_dir = learned / "runs" / "facts"
    assert main(["eval", str(run_dir / "final"), "--tasks", str(learned / "data" / "unseen.jsonl"), "--json",
                 "--precision", "bf16"]) == 0
    task, mean = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    last = [r for r in read_log(run_dir) if r["split"] == "task/unseen"][-1]
    assert {key: task[key] for key in ("acc", "acc_norm", "items")} == \
        {key: last[key] for key in ("acc", "acc_norm", "items")}
    assert mean == {"tasks": 1, "centred": task["centred"]}


def test_an_untrained_model_stays_at_chance(learned, tmp_path, capsys):
    torch.manual_seed(0)
    config = HfGptConfig(vocab_size=32, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=32, position_embedding_type="rotary")
    HfGptForCausalLM(config).save_pretrained(tmp_path / "untrained")
    for name in ("tokenizer.json", "tokenizer_config.json"):  # the trained run's tokenizer
        (tmp_path / "untrained" / name).write_bytes((learned / "runs" / "facts" / "final" / name).read_bytes())
    assert main(["eval", str(tmp_path / "untrained"), "--tasks", str(learned / "data" / "unseen.jsonl"),
                 "--json"]) == 0
    task = json.loads(capsys.readouterr().out.splitlines()[0])
    assert 0.1 <= task["acc"] <= 0.4, "100 items, 4 choices: chance is 25% +- 4.3%"


@pytest.mark.parametrize(("task_line", "words"), [
    ('{"context": "abc", "choices": ["S", "T"], "label": 5}', ["unseen.jsonl, line 1", "label 5"]),
    ("not json", ["unseen.jsonl, line 1 is not valid JSON"]),
])
def test_a_bad_task_is_refused_before_any_training(tmp_path, capsys, task_line, words):
    run_flags = flags(tmp_path, "bad")
    (tmp_path / "data" / "unseen.jsonl").write_text(task_line + "\n")
    assert main(["train", *run_flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hfgpt: error:") and err.count("\n") == 1 and all(word in err for word in words), err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "runs" / "bad").exists()
