"""Merging defaults < TOML preset < flags file < command line, flag spellings, and their errors."""

from __future__ import annotations

import dataclasses
import shlex
import tomllib
from pathlib import Path

import pytest
import torch
from helpers import REPO

from hfgpt.config import (
    ALIASES,
    FIELDS,
    SECTIONS,
    TrainConfig,
    build_config,
    config_from_dict,
    config_to_toml,
    describe_settings,
    model_config_kwargs,
    preset_names,
)
from hfgpt.errors import HfGptError
from hfgpt.exporters.families import stock_family
from hfgpt.models.hfgpt import HfGptConfig, HfGptForCausalLM

PRESET_DIR = REPO / "hfgpt" / "config" / "presets"


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def error_of(argv: list[str]) -> str:
    with pytest.raises(HfGptError) as info:
        build_config(argv)
    return str(info.value)


# ---- the flag surface ----------------------------------------------------------------------------

def test_every_field_is_one_flag_across_sections():
    per_section = [dataclasses.fields(getattr(TrainConfig(), s)) for s in SECTIONS]
    assert len(FIELDS) == sum(map(len, per_section))
    assert SECTIONS == ["model", "data", "training", "logging", "checkpoint", "run", "hub"]
    assert all(f.help for f in FIELDS.values())
    assert not any(name.startswith("no_") for name in FIELDS)


def test_alias_table_is_frozen_and_points_at_fields():
    assert ALIASES == {
        "max-iters": "max_steps", "steps": "max_steps", "batch": "batch_size", "batchsize": "batch_size",
        "dim": "hidden_size", "n-embd": "hidden_size", "heads": "num_attention_heads",
        "n-head": "num_attention_heads", "ff": "intermediate_size", "layers": "num_hidden_layers",
        "n-layer": "num_hidden_layers", "seq": "max_position_embeddings",
        "block-size": "max_position_embeddings", "data-path": "train", "runname": "run_name",
        "lrcrit": "lr_head", "learning-rate": "lr", "grad-accum": "grad_accum_steps",
        "gradient-accumulation-steps": "grad_accum_steps", "eval-interval": "eval_every",
        "log-interval": "log_every", "group": "wandb_group", "job-type": "wandb_job_type",
        "kv-heads": "num_key_value_heads",
    }
    assert all(alias.replace("-", "_") not in FIELDS for alias in ALIASES)


def test_no_flags_gives_the_defaults():
    assert build_config([]) == TrainConfig()


@pytest.mark.parametrize("argv", [
    ["--eval-every", "7"], ["--eval_every", "7"], ["--eval-every=7"], ["--training.eval-every", "7"],
    ["--training.eval_every=7"], ["--eval-interval", "7"], ["--training.eval-interval", "7"],
    ["--eval-every", "3", "--eval-every", "7"],
])
def test_flag_spellings(argv):
    assert build_config(argv).training.eval_every == 7


ALIAS_VALUES = {"max_steps": "7", "batch_size": "3", "hidden_size": "64", "num_attention_heads": "2",
                "intermediate_size": "256", "num_hidden_layers": "2", "max_position_embeddings": "256",
                "train": "a.txt,b.txt", "run_name": "r1", "lr_head": "0.5", "lr": "0.5",
                "grad_accum_steps": "3", "eval_every": "7", "log_every": "7", "wandb_group": "g",
                "wandb_job_type": "eval", "num_key_value_heads": "2"}


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_aliases(alias):
    field = FIELDS[ALIASES[alias]]
    text = ALIAS_VALUES[field.name]
    cfg = build_config([f"--{alias}", text])
    value = getattr(getattr(cfg, field.section), field.name)
    assert value == (text if field.type is str else field.type(text))
    assert build_config([f"--{alias.replace('-', '_')}={text}"]) == cfg


@pytest.mark.parametrize(("argv", "expected"), [
    (["--bias"], True), (["--no-bias"], False), (["--no_bias"], False), (["--model.bias"], True),
    (["--bias=true"], True), (["--bias=false"], False), (["--bias=1"], True), (["--bias=0"], False),
    (["--bias=yes"], True), (["--bias=NO"], False), (["--bias", "false"], False),
    (["--bias", "--no-bias"], False), (["--no-bias", "--bias"], True),
])
def test_booleans(argv, expected):
    assert build_config(argv).model.bias is expected


def test_negated_boolean_with_default_true():
    assert build_config(["--no-tie-word-embeddings"]).model.tie_word_embeddings is False
    assert build_config(["--progress-bar=off"]).logging.progress_bar is False


@pytest.mark.parametrize(("argv", "words"), [
    (["--bias=maybe"], ["--bias", "true or false", "'maybe'"]),
    (["--progress-bar=sometimes"], ["--progress-bar", "true or false", "'sometimes'"]),
    (["--no-bias=true"], ["--no-bias", "takes no value"]),
    (["--no-lr"], ["Unknown flag --no-lr"]),
])
def test_boolean_errors(argv, words):
    message = error_of(argv)
    assert all(word in message for word in words), message


@pytest.mark.parametrize(("text", "expected"), [
    ("wandb,tensorboard", ["wandb", "tensorboard"]), (" wandb , ", ["wandb"]), ("none", []),
    ("None", []), ("", []),
])
def test_lists(text, expected):
    assert build_config(["--trackers", text]).logging.trackers == expected


def test_strings_keep_their_text():
    cfg = build_config(["--sample-prompt", "To be, or", "--run-name=a=b", "--hidden-act", "gelu_new"])
    assert (cfg.logging.sample_prompt, cfg.run.run_name, cfg.model.hidden_act) == \
        ("To be, or", "a=b", "gelu_new")


# ---- command-line errors -------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "words"), [
    (["--lr", "abc"], ["--lr", "a number", "'abc'"]),
    (["--lr=nan"], ["--lr", "a number"]),
    (["--max-steps", "1.5"], ["--max-steps", "an integer", "'1.5'"]),
    (["--steps", "ten"], ["--steps", "an integer"]),
    (["--batch-size="], ["--batch-size", "an integer"]),
])
def test_type_errors_name_the_flag(argv, words):
    message = error_of(argv)
    assert all(word in message for word in words), message
    assert "on the command line" in message


@pytest.mark.parametrize("argv", [["--lr"], ["--lr", "--max-steps", "5"], ["--config"], ["--flagsfile"]])
def test_missing_value(argv):
    assert f"{argv[0]} on the command line is missing its value" in error_of(argv)


def test_negative_numbers_are_values():
    assert "--warmup-steps must not be negative" in error_of(["--warmup-steps", "-1"])


@pytest.mark.parametrize(("argv", "words"), [
    (["train"], ["Unexpected argument 'train'"]),
    (["--lr", "0.1", "0.2"], ["Unexpected argument '0.2'"]),
    (["-lr", "0.1"], ["'-lr'", "two dashes"]),
])
def test_positional_leftovers(argv, words):
    message = error_of(argv)
    assert all(word in message for word in words), message


@pytest.mark.parametrize(("argv", "words"), [
    (["--eval-evry", "5"], ["Unknown flag --eval-evry on the command line", "Did you mean --eval-every"]),
    (["--eval_evry=5"], ["Unknown flag --eval_evry", "--eval-every"]),
    (["--max-iter", "5"], ["Did you mean --max-steps?"]),
    (["--batchsz", "5"], ["Did you mean --batch-size?"]),
    (["--no-bais"], ["Did you mean --no-bias?"]),
    (["--confg", "x.toml"], ["Did you mean --config?"]),
    (["--trainig.lr", "0.1"], ["Unknown flag --trainig.lr", "Did you mean --training.lr?"]),
    (["--modle.hidden-size", "64"], ["Unknown flag --modle.hidden-size", "--model.hidden-size"]),
    (["--training.hidden-size", "64"], ["belongs to the model section", "--model.hidden-size"]),
])
def test_unknown_flags_suggest_the_closest(argv, words):
    message = error_of(argv)
    assert all(word in message for word in words), message


def test_validation_runs_and_names_the_flag():
    assert "--num-attention-heads (3) must divide --hidden-size (128)" in error_of(["--heads", "3"])


def test_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit) as info:
        build_config(["--lr", "oops", "--help"], prog="hfgpt-test")
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: hfgpt-test")
    for field in FIELDS.values():
        flag = f"--[no-]{field.name}" if field.type is bool else f"--{field.name}"
        assert flag.replace("_", "-") in out
    for alias in ALIASES:
        assert f"--{alias}" in out
    assert "--config" in out and "--flagsfile" in out and "quickstart" in out
    assert "Default: 250. Aliases: --eval-interval." in " ".join(out.split())
    with pytest.raises(SystemExit):
        build_config(["-h"])


# ---- TOML files, flags files, and precedence -----------------------------------------------------

def test_precedence_defaults_toml_flagsfile_cli(tmp_path):
    toml = write(tmp_path / "run.toml",
                 "[training]\nlr = 0.1\nmax_steps = 11\nwarmup_steps = 5\nseed = 1\n[model]\nbias = true\n")
    flags = write(tmp_path / "run.flags", "--lr 0.2\n--max-steps=22\n--batch 4\n--seed 2\n")
    # The order on the command line does not matter: the source decides.
    cfg = build_config(["--lr", "0.3", "--seed=3", "--flagsfile", flags, "--config", toml])
    t = cfg.training
    assert (t.lr, t.seed) == (0.3, 3)  # every level: the command line
    assert t.max_steps == 22  # TOML and flags file: the flags file
    assert t.batch_size == 4  # only the flags file
    assert (t.warmup_steps, cfg.model.bias) == (5, True)  # only TOML
    assert t.eval_every == TrainConfig().training.eval_every  # nowhere: the default


def test_config_named_in_a_flags_file_loses_to_the_command_line_one(tmp_path):
    low = write(tmp_path / "low.toml", "[training]\nlr = 0.1\nseed = 1\n")
    high = write(tmp_path / "high.toml", "[training]\nlr = 0.2\n")
    flags = write(tmp_path / "run.flags", f"--config {low}\n")
    cfg = build_config(["--flagsfile", flags, "--config", high])
    assert (cfg.training.lr, cfg.training.seed) == (0.2, 1)


def test_flags_file_syntax(tmp_path):
    flags = write(tmp_path / "run.flags", "# a comment\n\n  --sample-prompt 'To be # or not'  # why\n"
                                          "--train=\"my data.txt\"\n--no-progress-bar\n--trackers none\n")
    cfg = build_config(["--flagsfile", flags])
    assert cfg.logging.sample_prompt == "To be # or not"
    assert cfg.data.train == "my data.txt"
    assert cfg.logging.progress_bar is False and cfg.logging.trackers == []


@pytest.mark.parametrize(("text", "words"), [
    ("--lr 0.1\n\n--eval-evry 5\n", ["Unknown flag --eval-evry in flags file", "line 3",
                                     "Did you mean --eval-every"]),
    ("--lr\n0.1\n", ["--lr in flags file", "line 1", "missing its value"]),
    ("--lr abc\n", ["--lr in flags file", "line 1", "a number"]),
    ("--run-name 'open\n", ["line 1", "quote"]),
    ("--flagsfile other.flags\n", ["cannot include another"]),
])
def test_flags_file_errors_name_file_and_line(tmp_path, text, words):
    flags = write(tmp_path / "bad.flags", text)
    message = error_of(["--flagsfile", flags])
    assert all(word in message for word in [*words, flags]), message


def test_missing_files(tmp_path):
    message = error_of(["--flagsfile", "nope.flags"])
    assert "--flagsfile nope.flags on the command line: cannot read it" in message
    message = error_of(["--config", "quickstrat"])
    assert "--config quickstrat on the command line" in message and "Did you mean quickstart" in message
    assert "gpt2-small" in message


@pytest.mark.parametrize(("text", "words"), [
    ("[training]\neval_evry = 5\n", ["Unknown key training.eval_evry", "Did you mean eval_every"]),
    ("[model]\nlr = 0.1\n", ["Unknown key model.lr", "lr in [training]"]),
    ("[model]\ndim = 64\n", ["Unknown key model.dim", "hidden_size in [model]"]),
    ("[trainig]\nlr = 0.1\n", ["Unknown section 'trainig'", "Did you mean training"]),
    ("lr = 0.1\n", ["Unknown section 'lr'", "Put it under [training]"]),
    ("model = 3\n", ["model in", "must be a table"]),
    ("[training\n", ["is not valid TOML"]),
])
def test_toml_key_errors(tmp_path, text, words):
    path = write(tmp_path / "bad.toml", text)
    message = error_of(["--config", path])
    assert all(word in message for word in [*words, path]), message


@pytest.mark.parametrize(("text", "words"), [
    ("[training]\nmax_steps = 1.5\n", ["training.max_steps", "an integer", "1.5 (float)"]),
    ("[model]\nhidden_size = true\n", ["model.hidden_size", "an integer", "True (bool)"]),
    ("[model]\nbias = \"true\"\n", ["model.bias", "true or false", "'true' (str)"]),
    ("[training]\nlr = \"1e-3\"\n", ["training.lr", "a number", "'1e-3' (str)"]),
    ("[training]\nlr = false\n", ["training.lr", "a number"]),
    ("[training]\nlr = inf\n", ["training.lr", "a number"]),
    ("[logging]\ntrackers = \"wandb\"\n", ["logging.trackers", "a list of strings"]),
    ("[logging]\ntrackers = [1]\n", ["logging.trackers", "a list of strings"]),
    ("[data]\ntrain = 3\n", ["data.train", "a quoted string", "3 (int)"]),
])
def test_toml_type_errors(tmp_path, text, words):
    path = write(tmp_path / "bad.toml", text)
    message = error_of(["--config", path])
    assert all(word in message for word in [*words, path]), message


def test_toml_int_is_accepted_as_float(tmp_path):
    path = write(tmp_path / "run.toml", "[training]\nlr = 1\n")
    lr = build_config(["--config", path]).training.lr
    assert lr == 1.0 and isinstance(lr, float)


def test_config_from_dict():
    assert config_from_dict({}, "saved") == TrainConfig()
    assert config_from_dict(TrainConfig().to_dict(), "saved") == TrainConfig()
    assert config_from_dict({"training": {"seed": 5}}, "saved").training.seed == 5
    with pytest.raises(HfGptError, match=r"Unknown key training\.sed in runs/x/config\.toml"):
        config_from_dict({"training": {"sed": 5}}, "runs/x/config.toml")


def test_toml_round_trip(tmp_path):
    cfg = TrainConfig()
    cfg.logging.sample_prompt = 'He said "hi"\\n\n\tand\r left \x01\x7f é 日本'
    cfg.logging.trackers = ["tensorboard", "wandb"]
    cfg.data.dataset = "it's # not a comment"
    cfg.training.lr = 1e-10
    cfg.training.max_grad_norm = 3.0
    cfg.model.bias = True
    cfg.data.train = "C:\\data\\a.txt,b.txt"
    for c in (TrainConfig(), cfg):
        text = config_to_toml(c)
        assert config_from_dict(tomllib.loads(text), "round trip") == c
        assert build_config(["--config", write(tmp_path / "saved.toml", text)]) == c
    assert 'sample_prompt = "\\n"' in config_to_toml(TrainConfig())


def test_describe_settings_names_only_what_differs_from_the_defaults_as_flags():
    assert describe_settings(build_config([])) == "the defaults"
    flags = ["--lr", "3e-4", "--no-progress-bar", "--trackers", "none", "--sample-prompt", "Once upon"]
    text = describe_settings(build_config(flags))
    assert text == "--lr 0.0003 --trackers none --progress-bar false --sample-prompt 'Once upon'"
    assert build_config(shlex.split(text)) == build_config(flags)
    assert describe_settings(build_config(["--sample-prompt", "a\nb"])) == '--sample-prompt "a\\nb"'


# ---- presets -------------------------------------------------------------------------------------

def test_presets_exist():
    assert {"quickstart", "shakespeare-char", "gpt2-small", "llama-style", "llama-small", "speedrun"} <= \
        set(preset_names())


@pytest.mark.parametrize("path", sorted(PRESET_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_every_preset_loads_and_validates(path):
    assert build_config(["--config", path.stem]) == build_config(["--config", str(path)])


def test_the_speedrun_preset_keeps_the_options_that_paid_and_evaluates_the_baselines_blocks():
    """shakespeare-char's context (so that benchmarks/speedrun.py compares the same validation blocks) and the
    options its ablation kept (docs/configuration.md, "The speedrun preset")."""
    s, baseline = build_config(["--config", "speedrun"]), build_config(["--config", "shakespeare-char"])
    assert (s.model.max_position_embeddings, s.data.tokenizer) == (baseline.model.max_position_embeddings, "char")
    assert (s.model.qk_norm, s.model.hidden_act, s.model.position_embedding_type, s.model.norm_type,
            s.model.num_hidden_layers, s.training.compile, s.training.optimizer) == (
        True, "relu2", "rotary", "rmsnorm", 2, True, "adamw")


def test_preset_values():
    assert build_config(["--config", "quickstart"]) == TrainConfig()
    s = build_config(["--config", "shakespeare-char"])
    assert (s.model.num_hidden_layers, s.model.num_attention_heads, s.model.hidden_size,
            s.model.max_position_embeddings, s.training.batch_size, s.training.max_steps,
            s.data.tokenizer, s.training.lr, s.training.warmup_steps, s.model.dropout,
            s.training.eval_every) == (4, 4, 128, 64, 12, 2000, "char", 1e-3, 100, 0.0, 250)
    g = build_config(["--config", "gpt2-small.toml"])
    assert (g.model.num_hidden_layers, g.model.num_attention_heads, g.model.hidden_size,
            g.model.max_position_embeddings, g.data.tokenizer, g.data.vocab_size, g.model.bias,
            g.model.hidden_act, g.training.token_batch_size, g.training.max_sentences_per_device, g.training.lr,
            g.training.warmup_steps, g.training.max_steps, g.training.weight_decay, g.training.beta2,
            g.training.precision, g.training.device, g.model.dropout, g.training.eval_every,
            g.checkpoint.ckpt_every) == (12, 12, 768, 1024, "bpe", 50257, True, "gelu_new", 480 * 1024, 12, 6e-4,
                                         2000, 600000, 0.1, 0.95, "bf16", "cuda", 0.0, 1000, 1000)


@pytest.mark.parametrize(("llama", "sibling", "vocab", "within"), [
    ("llama-style", "shakespeare-char", 65, 0.011), ("llama-small", "gpt2-small", 50257, 0.10)])
def test_the_llama_presets_are_llama_blocks_the_size_of_their_gpt2_siblings(llama, sibling, vocab, within):
    def built(preset: str) -> HfGptForCausalLM:
        with torch.device("meta"):  # the shapes only
            return HfGptForCausalLM(HfGptConfig(vocab_size=vocab, **model_config_kwargs(
                build_config(["--config", preset]).model)))

    ours, theirs = built(llama), built(sibling)
    assert (stock_family(ours.config), stock_family(theirs.config)) == ("llama", "gpt2")
    assert ours.config.key_value_heads < ours.config.num_attention_heads and not ours.config.bias
    count = sum(p.numel() for p in ours.parameters())
    assert count == pytest.approx(sum(p.numel() for p in theirs.parameters()), rel=within)


def test_presets_resolve_from_the_package_and_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert build_config(["--config", "shakespeare-char"]).model.max_position_embeddings == 64
    (tmp_path / "recipes" / "configs").mkdir(parents=True)
    write(tmp_path / "recipes" / "configs" / "mine.toml", "[training]\nseed = 7\n")
    assert build_config(["--config", "mine"]).training.seed == 7
    assert "mine" in preset_names()
