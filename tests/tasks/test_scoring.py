"""hfgpt scores multiple-choice items as lm-evaluation-harness does: the same split of context and continuation, the
same log-likelihood of every choice, the same acc and acc_norm, for a char and a byte-level BPE model; and a batch's
padding changes no score beyond fp32 rounding."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from helpers import PANGRAMS, import_or_unavailable

from hfgpt import HfGptConfig, HfGptForCausalLM
from hfgpt.data.tokenization import train_tokenizer
from hfgpt.tasks.items import Item, Task, read_task
from hfgpt.tasks.scoring import encode_pair, log_likelihoods, score_tasks

CONTEXT = 64
TEXT = " ".join(PANGRAMS) + " naïve café — 日本語 ✓"
PAIRS = [("The quick", " brown"), ("The quick ", "brown"), ("The quick  ", " brown"), ("", "The quick"),
         ("", " jumps"), ("naï", "ve café"), ("caf", "é"), ("Sphinx of black quartz,", " judge my vow"),
         ("a" * 100, " over the lazy dog")]


@pytest.fixture(scope="module", params=["char", "bpe"])
def model_and_tokenizer(request):
    tokenizer = train_tokenizer(request.param, [TEXT] * 4, vocab_size=300)
    torch.manual_seed(0)
    config = HfGptConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         max_position_embeddings=CONTEXT, pad_token_id=tokenizer.pad_token_id,
                         initializer_range=0.5)  # peaked logits: no near-ties for rounding to flip
    return HfGptForCausalLM(config).eval(), tokenizer


def write_items(path: Path, count: int = 30) -> Path:
    """Items from the pangrams: contexts of every length (empty, ending in spaces, longer than the model's context)
    and choices drawn from the same words."""
    rng = random.Random(0)
    words = TEXT.split()
    lines = []
    for index in range(count):
        context = " ".join(rng.sample(words, rng.randint(0, 30))) + rng.choice(["", " ", "  "])
        choices = [" ".join(rng.sample(words, rng.randint(1, 3))) for _ in range(rng.randint(2, 5))]
        lines.append(json.dumps({"context": context.lstrip() if index % 7 else "", "choices": choices,
                                 "label": rng.randrange(len(choices))}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def lm_eval_task(folder: Path, items: Path) -> Path:
    """The same items as a custom lm-evaluation-harness task, read offline from the local file."""
    (folder / "pangrams.yaml").write_text(f"""task: pangrams
dataset_path: json
dataset_kwargs:
  data_files:
    test: {items}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
""")
    return folder


def test_context_and_continuation_are_split_as_lm_eval_splits_them(model_and_tokenizer):
    import_or_unavailable("lm_eval")
    from lm_eval.models.huggingface import HFLM

    model, tokenizer = model_and_tokenizer
    harness = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, max_length=CONTEXT)
    for context, continuation in PAIRS:
        if context:
            assert encode_pair(tokenizer, context, continuation) == \
                tuple(map(list, harness._encode_pair(context, continuation))), (context, continuation)
        else:  # lm-eval's loglikelihood conditions an empty context on its prefix token
            ids = tokenizer.encode(continuation, add_special_tokens=False)
            assert encode_pair(tokenizer, context, continuation) == ([harness.prefix_token_id], ids)


@pytest.mark.slow  # lm-eval's simple_evaluate runs git to record the environment
@pytest.mark.machine_sensitive  # lm-eval batches otherwise: equal to a tolerance
def test_the_scores_are_lm_evals_on_the_same_items(model_and_tokenizer, tmp_path):
    lm_eval = import_or_unavailable("lm_eval")
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    model, tokenizer = model_and_tokenizer
    items = write_items(tmp_path / "pangrams.jsonl")
    harness = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, max_length=CONTEXT)
    output = lm_eval.simple_evaluate(model=harness, tasks=["pangrams"], log_samples=True,
                                     task_manager=TaskManager(include_path=str(lm_eval_task(tmp_path, items))))
    theirs = [[float(ll) for ll, _ in sample["filtered_resps"]]
              for sample in sorted(output["samples"]["pangrams"], key=lambda sample: sample["doc_id"])]
    task = read_task("pangrams", items)
    every, likelihoods = log_likelihoods(model, tokenizer, [task], Accelerator(cpu=True), 4, CONTEXT)
    mine = [[float(ll) for request, ll in zip(every, likelihoods, strict=True) if request.item == index]
            for index in range(len(task.items))]
    assert [len(choices) for choices in mine] == [len(choices) for choices in theirs]
    assert np.allclose(np.concatenate(mine), np.concatenate(theirs), rtol=0, atol=1e-4)
    scores = score_tasks(model, tokenizer, [task], Accelerator(cpu=True), 4, CONTEXT)["pangrams"]
    assert scores["acc"] == output["results"]["pangrams"]["acc,none"]
    assert scores["acc_norm"] == output["results"]["pangrams"]["acc_norm,none"]
    assert 0 < scores["acc"] < 1, "a test that can tell the choices apart"


@pytest.mark.slow  # lm-eval indexes its thousands of task files: seconds
def test_lm_evals_own_task_gives_the_same_items_as_the_file(tmp_path):
    import_or_unavailable("lm_eval")
    from hfgpt.tasks.harness import harness_task

    items = write_items(tmp_path / "pangrams.jsonl", count=12)
    assert harness_task("pangrams", task_dir=str(lm_eval_task(tmp_path, items))).items == \
        read_task("pangrams", items).items


def test_padding_in_a_batch_changes_no_score_beyond_rounding(model_and_tokenizer, tmp_path):
    model, tokenizer = model_and_tokenizer
    task = read_task("pangrams", write_items(tmp_path / "pangrams.jsonl", count=12))
    alone = log_likelihoods(model, tokenizer, [task], Accelerator(cpu=True), 1, CONTEXT)[1]
    batched = log_likelihoods(model, tokenizer, [task], Accelerator(cpu=True), 7, CONTEXT)[1]
    assert np.allclose(alone, batched, rtol=1e-6, atol=0), "to fp32 rounding: a batch's shape picks its kernels"


def test_accuracies_chance_and_the_centred_score(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    ask = [Item("The quick brown fox", ("jumps over", "dog"), 0), Item("Sphinx of", ("black", "quartz", "vow"), 2)]
    every, likelihoods = log_likelihoods(model, tokenizer, [Task("t", tuple(ask), "test")], Accelerator(cpu=True), 4,
                                         CONTEXT)
    per_item = [likelihoods[:2], likelihoods[2:]]
    lengths = [np.array([10.0, 3.0]), np.array([5.0, 6.0, 3.0])]
    acc = np.mean([np.argmax(ll) == item.label for ll, item in zip(per_item, ask, strict=True)])
    acc_norm = np.mean([np.argmax(ll / n) == item.label for ll, n, item in zip(per_item, lengths, ask, strict=True)])
    scores = score_tasks(model, tokenizer, [Task("t", tuple(ask), "test")], Accelerator(cpu=True), 4, CONTEXT)["t"]
    chance = (1 / 2 + 1 / 3) / 2
    assert scores == {"acc": acc, "acc_norm": acc_norm, "chance": pytest.approx(chance),
                      "centred": pytest.approx((acc - chance) / (1 - chance)), "items": 2}
    assert [request.scored for request in every][:2] == [len(request.targets) for request in every][:2]
