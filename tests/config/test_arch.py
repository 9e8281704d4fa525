"""--arch FILE: the model settings from a TOML [model] table or a transformers config.json, under the flags."""

from __future__ import annotations

import json

import pytest
from transformers import GPT2Config, LlamaConfig

from hfgpt.config import build_config, model_config_kwargs
from hfgpt.errors import HfGptError
from hfgpt.models.hfgpt import HfGptConfig


def test_a_toml_model_table_under_archdir_and_the_flags_win(tmp_path):
    (tmp_path / "tiny.toml").write_text("[model]\nhidden_size = 48\nnum_attention_heads = 6\nnorm_type = 'rmsnorm'\n")
    cfg = build_config(["--config", "shakespeare-char", "--archdir", str(tmp_path), "--arch", "tiny.toml",
                        "--num-attention-heads", "3"])
    assert (cfg.model.hidden_size, cfg.model.num_attention_heads, cfg.model.norm_type) == (48, 3, "rmsnorm")
    assert cfg.model.num_hidden_layers == 4, "the preset's value where the file is silent"
    assert (cfg.model.arch, cfg.model.archdir) == ("", ""), "resolved: the saved config holds the settings"


def test_a_gpt2_config_json_is_gpt2_block(tmp_path):
    GPT2Config(n_embd=64, n_layer=3, n_head=4, n_positions=256, activation_function="gelu_new",
               layer_norm_epsilon=1e-5).save_pretrained(tmp_path)
    cfg = build_config(["--arch", str(tmp_path / "config.json")])
    m = cfg.model
    assert (m.hidden_size, m.num_hidden_layers, m.num_attention_heads, m.max_position_embeddings, m.intermediate_size,
            m.hidden_act, m.bias, m.norm_type, m.position_embedding_type) == \
        (64, 3, 4, 256, 0, "gelu_new", True, "layernorm", "absolute")


def test_a_llama_config_json_is_a_llama_block(tmp_path):
    LlamaConfig(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=500000.0,
                tie_word_embeddings=True).save_pretrained(tmp_path)
    cfg = build_config(["--arch", str(tmp_path / "config.json"), "--seq-len", "64"])
    config = HfGptConfig(**model_config_kwargs(cfg.model))
    assert (config.position_embedding_type, config.norm_type, config.mlp_type, config.hidden_act,
            config.key_value_heads, config.intermediate_size, config.rope_theta, config.rms_norm_eps, config.bias) == \
        ("rotary", "rmsnorm", "gated", "silu", 2, 176, 500000.0, 1e-5, False)


def test_an_hfgpt_config_json_round_trips(tmp_path):
    saved = HfGptConfig(hidden_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                        norm_type="rmsnorm", mlp_type="gated", hidden_act="silu", vocab_size=99)
    saved.save_pretrained(tmp_path)
    config = HfGptConfig(**model_config_kwargs(build_config(["--arch", str(tmp_path / "config.json")]).model))
    for name in ("hidden_size", "num_hidden_layers", "key_value_heads", "norm_type", "mlp_type", "hidden_act"):
        assert getattr(config, name) == getattr(saved, name), name


@pytest.mark.parametrize(("content", "name", "message"), [
    ("[model]\nlr = 1.0\n", "bad.toml", r"Unknown key model.lr in .*bad.toml. Did you mean lr in \[training\]\?"),
    ("[model]\nhidden_size = 'wide'\n", "bad.toml", r"hidden_size"),
    ("not toml = = =", "bad.toml", r"--arch .*bad.toml is not valid TOML"),
    (json.dumps({"model_type": "bert", "hidden_size": 8}), "config.json", r"model_type 'bert' is not one hfgpt builds"),
    (json.dumps({"model_type": "llama", "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}), "config.json",
     r"no rope scaling"),
    (json.dumps({"model_type": "llama", "attention_bias": True, "mlp_bias": False}), "config.json",
     r"one bias setting for attention and MLP"),
])
def test_a_file_hfgpt_cannot_take_is_named(tmp_path, content, name, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(HfGptError, match=message):
        build_config(["--arch", str(tmp_path / name)])


def test_a_missing_file_names_the_archdir(tmp_path):
    with pytest.raises(HfGptError, match=r"--arch nope.toml: cannot read .*nope.toml \(--archdir .*\)"):
        build_config(["--arch", "nope.toml", "--archdir", str(tmp_path)])
