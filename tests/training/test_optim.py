import math
import warnings

import pytest
import torch

from hfgpt import HfGptConfig, HfGptForCausalLM
from hfgpt.config import TrainingSection
from hfgpt.training.optim import build_optimizer, build_scheduler, lr_factor, parameter_groups, scaled_lr


def tiny_model(tied: bool) -> HfGptForCausalLM:
    return HfGptForCausalLM(HfGptConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                        max_position_embeddings=8, bias=True, tie_word_embeddings=tied))


@pytest.mark.parametrize("tied", [True, False])
def test_no_decay_on_norms_biases_embeddings_and_head_lr(tied):
    model = tiny_model(tied)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        groups = parameter_groups(model, TrainingSection(lr=1e-3, lr_head=5e-3, weight_decay=0.1))
    # a tied head trains with the embedding: the head's own rate is ignored, and the user is told how to untie it
    assert [str(w.message) for w in caught] == ([
        "--lr-head 0.005 is ignored: the output head of this model is tied to the input embedding, so it trains at "
        "--lr; train with --no-tie-word-embeddings to give the head a rate of its own."] if tied else [])
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for g in groups if g["weight_decay"] > 0 and g["lr"] == 1e-3 for p in g["params"]}
    undecayed = {names[id(p)] for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    assert decayed and all(n.endswith("weight") and "ln_" not in n and "wte" not in n and "wpe" not in n
                           for n in decayed)
    assert any("wte" in n for n in undecayed) and any(n.endswith("bias") for n in undecayed)
    head_groups = [g for g in groups if g["lr"] == 5e-3]
    assert len(head_groups) == (0 if tied else 1)
    every = [p for g in groups for p in g["params"]]
    assert len(every) == len({id(p) for p in every}) == len(list(model.parameters()))


def test_warmup_then_cosine_to_the_floor():
    training = TrainingSection(max_steps=110, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, training) == pytest.approx(0.1)
    assert lr_factor(9, training) == pytest.approx(1.0)
    assert lr_factor(60, training) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(110, training) == pytest.approx(0.1)
    assert lr_factor(500, training) == pytest.approx(0.1)


def test_scheduler_scales_every_group_from_its_own_peak():
    model = tiny_model(tied=False)
    training = TrainingSection(lr=1e-3, lr_head=4e-3, warmup_steps=4, max_steps=20)
    optimizer = build_optimizer(model, training)
    scheduler = build_scheduler(optimizer, training)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    lrs = sorted({g["lr"] for g in optimizer.param_groups})
    assert lrs == pytest.approx([1e-3, 4e-3])
    assert isinstance(optimizer, torch.optim.AdamW)


@pytest.mark.parametrize(("scaling", "expected"), [("none", 1e-3), ("linear", 4e-3), ("sqrt", 2e-3)])
def test_lr_scaling_from_the_base_batch_to_the_global_batch(scaling, expected):
    training = TrainingSection(lr=1e-3, lr_scaling=scaling, base_batch_size=16)
    assert scaled_lr(training.lr, training, global_batch=64) == pytest.approx(expected)
    groups = parameter_groups(tiny_model(tied=False), training, global_batch=64)
    assert len(groups) == 3 and all(g["lr"] == pytest.approx(expected) for g in groups)
