"""--depth N: the size and training derived from one number, what a given setting keeps, and what is refused."""

from __future__ import annotations

import tomllib

import pytest

from hfgpt.cli import main
from hfgpt.config import (
    TrainConfig,
    build_config,
    build_config_with_derivation,
    config_to_toml,
    config_values,
    depth_table,
    model_config_kwargs,
    saved_run_config,
)
from hfgpt.config.depth import block_parameters
from hfgpt.errors import HfGptError
from hfgpt.models.hfgpt import HfGptConfig, HfGptForCausalLM
from hfgpt.training.modes import fork_setup

DERIVED = ("num_hidden_layers", "hidden_size", "num_attention_heads", "token_batch_size", "max_sentences_per_device",
           "max_steps", "warmup_steps", "lr")


@pytest.mark.parametrize(("depth", "expected"), [
    # layers, width, heads, tokens per step, micro-batch, steps, warmup, lr (docs/configuration.md's table)
    (2, (2, 128, 2, 65_536, 16, 120, 12, 0.00147)),
    (4, (4, 256, 2, 131_072, 16, 480, 40, 0.00104)),
    (6, (6, 384, 3, 262_144, 16, 810, 40, 0.000849)),
    (12, (12, 768, 6, 524_288, 16, 3_240, 40, 0.0006)),
])
def test_the_table_of_a_few_depths(depth, expected):
    cfg, rows = build_config_with_derivation(["--depth", str(depth)])
    values = config_values(cfg)
    assert tuple(values[name] for name in DERIVED) == expected
    assert [(row.name, row.value, row.given) for row in rows] == [(name, values[name], False) for name in DERIVED]


def test_the_horizon_is_the_ratio_times_the_block_parameters_in_steps_of_the_token_batch():
    cfg = build_config(["--depth", "4", "--horizon-ratio", "40"])
    assert cfg.training.max_steps == 40 * 3_148_032 // 131_072 == 960


@pytest.mark.parametrize("where", ["command line", "flags file", "preset"])
def test_a_given_setting_keeps_its_value_and_the_rules_after_it_take_it(tmp_path, where):
    given = {"hidden_size": 512, "token_batch_size": 8192, "lr": 1e-3}
    flags = ["--hidden-size", "512", "--token-batch-size", "8192", "--lr", "1e-3"]
    if where == "flags file":
        (tmp_path / "flags").write_text("\n".join(f"{a} {b}" for a, b in zip(flags[::2], flags[1::2], strict=True)))
        flags = ["--flagsfile", str(tmp_path / "flags")]
    elif where == "preset":
        (tmp_path / "p.toml").write_text("[model]\nhidden_size = 512\n[training]\ntoken_batch_size = 8192\nlr = 1e-3\n")
        flags = ["--config", str(tmp_path / "p.toml")]
    cfg, rows = build_config_with_derivation(["--depth", "6", *flags])
    values = config_values(cfg)
    assert {name: values[name] for name in given} == given
    assert {row.name for row in rows if row.given} == set(given)
    # the heads of the given width, the steps of the given batch
    assert values["num_attention_heads"] == 4 and values["num_hidden_layers"] == 6
    assert values["max_steps"] == 20 * block_parameters(values) // 8192 == 46_096


def test_a_setting_given_at_its_default_value_is_given():
    assert build_config(["--depth", "4", "--hidden-size", "128"]).model.hidden_size == 128


def test_a_given_batch_is_the_token_batch_in_any_number_of_processes():
    cfg = build_config(["--depth", "4", "--batch-size", "12", "--grad-accum-steps", "2", "--seq", "64"])
    assert (cfg.training.token_batch_size, cfg.training.max_sentences_per_device) == (12 * 2 * 64, 12)
    assert cfg.training.max_steps == 20 * 3_148_032 // (12 * 2 * 64)


def test_a_preset_that_sets_the_size_and_batch_keeps_them():
    assert config_values(build_config(["--config", "shakespeare-char", "--depth", "6"])) == \
        config_values(build_config(["--config", "shakespeare-char"])) | \
        {"depth": 6, "token_batch_size": 12 * 64, "max_sentences_per_device": 12}


def test_the_printed_table_says_how_and_what_was_given():
    cfg, rows = build_config_with_derivation(["--depth", "2", "--max-steps", "50"])
    lines = depth_table(cfg.model.depth, rows).splitlines()
    assert lines[0].startswith("--depth 2 derives")
    assert lines[3].split() == ["--hidden-size", "128", "64", "x", "depth,", "rounded", "up", "to", "a", "multiple",
                                "of", "the", "head", "size", "64"]
    assert lines[7].split() == ["--max-steps", "50", "given", "(the", "rule:", "120)"]
    assert lines[8].split()[:2] == ["--warmup-steps", "5"]


@pytest.mark.parametrize("overrides", [
    {},
    {"bias": True, "norm_type": "layernorm", "intermediate_size": 200},
    {"norm_type": "rmsnorm", "mlp_type": "gated", "num_key_value_heads": 2, "intermediate_size": 96},
    {"num_attention_heads": 4, "bias": True, "mlp_type": "gated"},
])
def test_block_parameters_are_those_of_the_model_built(overrides):
    cfg = build_config(["--depth", "2"])
    for name, value in overrides.items():
        setattr(cfg.model, name, value)
    built = HfGptForCausalLM(HfGptConfig(**model_config_kwargs(cfg.model), vocab_size=50))
    counted = sum(p.numel() for p in [*built.model.layers.parameters(), *built.model.ln_f.parameters()])
    assert block_parameters(config_values(cfg)) == counted


def test_a_saved_config_holds_the_derived_values_and_continues_without_the_depth():
    cfg = build_config(["--depth", "2", "--max-steps", "50"])
    saved = saved_run_config(tomllib.loads(config_to_toml(cfg)), "config.toml")
    assert config_values(saved) == config_values(cfg)
    base = config_values(saved)  # as hfgpt continue takes it: every setting given, the 50 steps too
    assert build_config([], base=base) == cfg
    longer = build_config(["--max-steps", "300"], base=base)
    assert (longer.training.max_steps, longer.training.warmup_steps, longer.model.hidden_size) == (300, 5, 128)


@pytest.mark.parametrize("argv", [["--depth", "-1"], ["--depth", "65"], ["--depth", "1000", "--lr", "1e-3"]])
def test_a_bad_depth_is_refused_in_one_paragraph(argv):
    with pytest.raises(HfGptError) as error:
        build_config(argv)
    message = str(error.value)
    assert message.startswith(f"--depth {argv[1]} is out of range") and "from 1 to 64" in message
    assert "\n" not in message


def test_a_config_not_built_from_flags_refuses_a_bad_depth_by_its_bounds():
    cfg = TrainConfig()
    cfg.model.depth = 65
    with pytest.raises(HfGptError, match=r"--depth must be 0 \(off\) or positive, at most 64"):
        cfg.validate()


def test_a_bad_depth_in_a_preset_is_refused_too(tmp_path):
    (tmp_path / "deep.toml").write_text("[model]\ndepth = 100\n")
    with pytest.raises(HfGptError, match="--depth 100 is out of range"):
        build_config(["--config", str(tmp_path / "deep.toml")])


def test_other_bad_values_are_named_not_derived_from():
    with pytest.raises(HfGptError, match="--num-attention-heads must be positive"):
        build_config(["--depth", "4", "--heads", "0"])


def test_fork_refuses_a_depth_before_loading_its_source():
    with pytest.raises(HfGptError, match="fork takes its model from no/such-source"):
        fork_setup(["no/such-source", "--depth", "4"])


def test_train_help_shows_the_dial(capsys):
    assert main(["train", "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "--depth INT nanochat's size dial" in shown and "--horizon-ratio FLOAT With --depth" in shown
