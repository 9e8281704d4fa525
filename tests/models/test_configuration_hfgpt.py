"""Tests of hfgpt/configuration_hfgpt.py: defaults, validation and the config.json round trip."""

from __future__ import annotations

import pytest
from transformers import AutoConfig

import hfgpt  # noqa: F401  (registers model_type "hfgpt" with AutoConfig)
from hfgpt.models.hfgpt import HfGptConfig
from hfgpt.models.hfgpt.modeling_hfgpt import HfGptForCausalLM


def test_defaults():
    config = HfGptConfig()
    assert config.model_type == "hfgpt"
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (256, 128, 4)
    assert config.intermediate_size == 4 * 128
    assert config.tie_word_embeddings is True and config.use_cache is True
    assert config.bias is False and config.dropout == 0.0
    assert config.pad_token_id is None
    # the architecture options default to GPT-2's block, as hfgpt built it before they existed
    assert (config.position_embedding_type, config.norm_type, config.mlp_type) == ("absolute", "layernorm", "standard")
    assert config.num_key_value_heads is None and config.key_value_heads == config.num_attention_heads
    assert (config.rope_theta, config.rms_norm_eps, config.layer_norm_eps) == (10000.0, 1e-6, 1e-5)


def test_intermediate_size_resolves_from_hidden_size():
    assert HfGptConfig(hidden_size=64, intermediate_size=None).intermediate_size == 256
    assert HfGptConfig(hidden_size=64, intermediate_size=100).intermediate_size == 100


def test_a_config_is_built_step_by_step_and_checked_where_a_model_is_built():
    # transformers' convention: a config accepts any combination; tools set fields one at a time
    config = HfGptConfig(hidden_size=30, num_attention_heads=4)
    with pytest.raises(ValueError, match="divisible by num_attention_heads"):
        HfGptForCausalLM(config)
    config.num_attention_heads = 5
    assert HfGptForCausalLM(config).config.num_attention_heads == 5


@pytest.mark.parametrize(("name", "value", "message"), [
    ("position_embedding_type", "alibi", "position_embedding_type must be one of 'absolute', 'rotary'"),
    ("norm_type", "batchnorm", "norm_type must be one of 'layernorm', 'rmsnorm'"),
    ("mlp_type", "swiglu", "mlp_type must be one of 'standard', 'gated'"),
    ("num_key_value_heads", 3, r"num_attention_heads \(4\) must be divisible by num_key_value_heads \(3\)"),
])
def test_unknown_options_are_refused_where_a_model_is_built(name, value, message):
    config = HfGptConfig(vocab_size=97, hidden_size=32, num_attention_heads=4)
    setattr(config, name, value)
    with pytest.raises(ValueError, match=message):
        HfGptForCausalLM(config)


def test_rotary_positions_need_an_even_head_size():
    with pytest.raises(ValueError, match="must be even"):
        HfGptForCausalLM(HfGptConfig(hidden_size=12, num_attention_heads=4, position_embedding_type="rotary"))


def test_save_and_reload(tmp_path):
    config = HfGptConfig(vocab_size=97, hidden_size=32, num_attention_heads=4, bias=True, dropout=0.1,
                         tie_word_embeddings=False, eos_token_id=3, hidden_act="silu", num_key_value_heads=2,
                         position_embedding_type="rotary", rope_theta=500.0, norm_type="rmsnorm", rms_norm_eps=1e-5,
                         mlp_type="gated")
    config.save_pretrained(tmp_path)
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(reloaded, HfGptConfig)
    for name in ("vocab_size", "hidden_size", "intermediate_size", "num_attention_heads", "bias", "dropout",
                 "tie_word_embeddings", "eos_token_id", "hidden_act", "layer_norm_eps", "initializer_range",
                 "num_key_value_heads", "position_embedding_type", "rope_theta", "norm_type", "rms_norm_eps",
                 "mlp_type"):
        assert getattr(reloaded, name) == getattr(config, name), name
