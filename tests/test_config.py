"""TrainConfig.validate(): every bad value is rejected with a message naming its flag."""

from __future__ import annotations

import pytest

from hfgpt.config import TrainConfig
from hfgpt.errors import HfGptError

BAD_VALUES = [
    ("model", "hidden_size", 0),
    ("model", "num_hidden_layers", 0),
    ("model", "num_attention_heads", 3),
    ("model", "num_attention_heads", 0),
    ("model", "intermediate_size", -1),
    ("model", "max_position_embeddings", 0),
    ("model", "dropout", 1.0),
    ("model", "dropout", -0.1),
    ("model", "attn_implementation", "flash"),
    ("data", "tokenizer", "word"),
    ("data", "vocab_size", 259),
    ("data", "seq_len", 129),
    ("data", "seq_len", -1),
    ("data", "valid_fraction", 0.0),
    ("data", "valid_fraction", 1.0),
    ("data", "num_proc", 0),
    ("training", "max_steps", 0),
    ("training", "batch_size", 0),
    ("training", "grad_accum_steps", -1),
    ("training", "lr", 0.0),
    ("training", "lr_head", -1e-3),
    ("training", "min_lr_ratio", 1.5),
    ("training", "warmup_steps", -1),
    ("training", "weight_decay", -0.1),
    ("training", "beta1", 1.0),
    ("training", "beta2", -0.5),
    ("training", "max_grad_norm", -1.0),
    ("training", "precision", "fp8"),
    ("training", "device", "tpu"),
    ("training", "eval_every", -1),
    ("training", "eval_batches", 0),
    ("logging", "log_every", 0),
    ("logging", "sample_tokens", -1),
    ("checkpoint", "ckpt_every", -1),
]


def test_defaults_are_valid():
    cfg = TrainConfig()
    assert cfg.validate() is cfg
    assert cfg.seq_len == cfg.model.max_position_embeddings


@pytest.mark.parametrize(("section", "name", "value"), BAD_VALUES, ids=lambda v: str(v))
def test_bad_value_names_its_flag(section, name, value):
    cfg = TrainConfig()
    setattr(getattr(cfg, section), name, value)
    with pytest.raises(HfGptError, match="Invalid configuration") as info:
        cfg.validate()
    assert f"--{name.replace('_', '-')}" in str(info.value)


def test_every_problem_is_reported_at_once():
    cfg = TrainConfig()
    cfg.training.lr = 0.0
    cfg.logging.log_every = 0
    with pytest.raises(HfGptError) as info:
        cfg.validate()
    assert "--lr must be positive" in str(info.value) and "--log-every must be positive" in str(info.value)


def test_edge_values_are_valid():
    cfg = TrainConfig()
    cfg.data.seq_len = cfg.model.max_position_embeddings
    cfg.training.warmup_steps = 0
    cfg.training.max_grad_norm = 0.0
    cfg.training.eval_every = 0
    cfg.checkpoint.ckpt_every = 0
    cfg.logging.sample_tokens = 0
    cfg.model.attn_implementation = "eager"
    cfg.data.vocab_size = 260
    cfg.validate()
