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


def test_save_and_reload(tmp_path):
    config = HfGptConfig(vocab_size=97, hidden_size=32, num_attention_heads=2, bias=True, dropout=0.1,
                         tie_word_embeddings=False, eos_token_id=3, hidden_act="gelu_new")
    config.save_pretrained(tmp_path)
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(reloaded, HfGptConfig)
    for name in ("vocab_size", "hidden_size", "intermediate_size", "num_attention_heads", "bias", "dropout",
                 "tie_word_embeddings", "eos_token_id", "hidden_act", "layer_norm_eps", "initializer_range"):
        assert getattr(reloaded, name) == getattr(config, name), name
