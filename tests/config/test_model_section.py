"""The [model] section: HfGptConfig is built from it by field name, with the same defaults."""

from __future__ import annotations

import pytest

from hfgpt.config import ModelSection, TrainConfig, build_config, model_config_kwargs
from hfgpt.errors import HfGptError
from hfgpt.models.hfgpt import HfGptConfig


def test_the_model_section_and_hfgpt_config_have_one_set_of_defaults():
    built, default = HfGptConfig(**model_config_kwargs(ModelSection())), HfGptConfig()
    for name in model_config_kwargs(ModelSection()):
        assert getattr(built, name) == getattr(default, name), name


def test_derived_sizes_are_zero_in_the_section_and_none_in_the_config():
    kwargs = model_config_kwargs(ModelSection(intermediate_size=0, num_key_value_heads=0))
    assert (kwargs["intermediate_size"], kwargs["num_key_value_heads"]) == (None, None)
    config = HfGptConfig(**model_config_kwargs(ModelSection(num_attention_heads=8, num_key_value_heads=2)))
    assert (config.num_attention_heads, config.key_value_heads) == (8, 2)


def test_a_llama_block_is_spelled_with_flags():
    cfg = build_config(["--position-embedding-type", "rotary", "--norm-type", "rmsnorm", "--mlp-type", "gated",
                        "--hidden-act", "silu", "--kv-heads", "2", "--rope-theta", "500000"])
    config = HfGptConfig(**model_config_kwargs(cfg.model))
    assert (config.position_embedding_type, config.norm_type, config.mlp_type, config.key_value_heads,
            config.rope_theta) == ("rotary", "rmsnorm", "gated", 2, 500000.0)


def test_the_speed_records_options_are_spelled_with_flags():
    cfg = build_config(["--qk-norm", "--hidden-act", "relu2", "--logit-softcap", "15", "--zero-init-output-projections",
                        "--no-tie-word-embeddings", "--document-masking"])
    config = HfGptConfig(**model_config_kwargs(cfg.model))
    assert (config.qk_norm, config.hidden_act, config.logit_softcap, config.zero_init_output_projections,
            config.tie_word_embeddings, config.document_masking) == (True, "relu2", 15.0, True, False, True)


@pytest.mark.parametrize(("model", "message"), [
    ({"num_key_value_heads": 3}, "--num-key-value-heads (3) must divide --num-attention-heads (4)"),
    ({"position_embedding_type": "rotary", "hidden_size": 12, "num_attention_heads": 4},
     "rotary positions need an even head size"),
    ({"norm_type": "batchnorm"}, "--norm-type must be layernorm or rmsnorm"),
    ({"logit_softcap": -1.0}, "--logit-softcap must be 0 (off) or positive"),
])
def test_impossible_architectures_are_named(model, message):
    cfg = TrainConfig()
    for name, value in model.items():
        setattr(cfg.model, name, value)
    with pytest.raises(HfGptError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cfg.validate()
