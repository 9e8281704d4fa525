"""TrainConfig.validate(): every bad value is rejected with a message naming its flag."""

from __future__ import annotations

import pytest

from hfgpt.config import FIELDS, TrainConfig, build_config
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
    ("data", "vocab_size", 258),
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
    ("training", "optimizer", "sgd"),
    ("training", "muon_lr", 0.0),
    ("training", "muon_momentum", 1.0),
    ("training", "muon_weight_decay", -0.01),
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
    cfg.data.vocab_size = 259  # 256 bytes and 3 special tokens: the smallest byte-level BPE
    cfg.validate()


def test_what_continue_may_change_is_frozen():
    # a setting's on_continue rule decides whether `hfgpt continue` may change it; a change here changes
    # what counts as the same run, so it must be deliberate
    rules = {name: f.rules.on_continue for name, f in FIELDS.items()}
    assert {name for name, rule in rules.items() if rule == "warn"} == {"lr", "lr_head", "muon_lr"}
    assert {name for name, rule in rules.items() if rule == "launch"} == {
        "reset", "stop_at_step", "rundir", "run_name", "overwrite"}
    assert {name for name, rule in rules.items() if rule == "allow"} == {
        "max_steps", "log_every", "log_samples", "trackers", "progress_bar", "sample_prompt", "sample_tokens",
        "ckpt_every", "keep_last", "save_best", "eval_every", "eval_batches", "early_stopping", "patience",
        "early_stopping_min_delta", "max_bad_steps", "deterministic", "cpu_threads", "device", "num_proc",
        "cache_dir", "datadir", "train", "valid", "meta", "wandb", "wandb_project", "wandb_entity", "wandb_group",
        "wandb_job_type", "wandb_mode", "wandb_resume_id", "push_to_hub", "hub_model_id", "hub_strategy",
        "hub_private", "license", "peak_tflops", "step_sync", "eval_tasks", "eval_task_items", "task_dir"}


def test_where_a_run_goes_keeps_its_old_spellings(tmp_path):
    # rundir, run_name and overwrite moved from [checkpoint] to [run]; config files written before still load
    old = tmp_path / "old.toml"
    old.write_text('[checkpoint]\nrundir = "elsewhere"\nrun_name = "exp1"\nckpt_every = 7\n')
    cfg = build_config(["--config", str(old), "--checkpoint.overwrite"])
    assert (cfg.run.rundir, cfg.run.run_name, cfg.run.overwrite, cfg.checkpoint.ckpt_every) == \
        ("elsewhere", "exp1", True, 7)
