"""Export to Llama: the config and weights of a `LlamaForCausalLM` equal to an hfgpt model of the Llama family.

hfgpt's rotary positions use transformers' Llama layout (rotate half), so the export is a renaming: the
fused query/key/value projection is split into `q_proj`, `k_proj`, `v_proj` and the fused gated MLP into
`gate_proj` and `up_proj`. Biases carry over as `attention_bias` and `mlp_bias`.
"""

from __future__ import annotations

import torch
from transformers import LlamaConfig

from ..models.hfgpt import HfGptConfig, HfGptForCausalLM


def llama_config(config: HfGptConfig) -> LlamaConfig:
    """The `LlamaConfig` of the same architecture."""
    return LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.key_value_heads,
        hidden_act=config.hidden_act,
        max_position_embeddings=config.max_position_embeddings,
        initializer_range=config.initializer_range,
        rms_norm_eps=config.rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
        attention_bias=config.bias,
        attention_dropout=config.dropout,
        mlp_bias=config.bias,
        tie_word_embeddings=config.tie_word_embeddings,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )


def llama_state_dict(model: HfGptForCausalLM) -> dict[str, torch.Tensor]:
    """`LlamaForCausalLM`'s state dict (every key, `lm_head.weight` too) holding `model`'s weights."""
    config = model.config
    qkv_sizes = model.model.layers[0].attn.split_sizes  # the query, key and value widths of the fused projection
    ours = model.state_dict()
    state = {
        "model.embed_tokens.weight": ours["model.wte.weight"],
        "model.norm.weight": ours["model.ln_f.weight"],
        "lm_head.weight": ours["lm_head.weight"],
    }
    for i in range(config.num_hidden_layers):
        layer = f"model.layers.{i}."
        state[layer + "input_layernorm.weight"] = ours[layer + "ln_1.weight"]
        state[layer + "post_attention_layernorm.weight"] = ours[layer + "ln_2.weight"]
        for kind in ("weight", "bias") if config.bias else ("weight",):
            query, key, value = ours[f"{layer}attn.c_attn.{kind}"].split(qkv_sizes)
            gate, up = ours[f"{layer}mlp.c_fc.{kind}"].chunk(2)
            state.update({
                f"{layer}self_attn.q_proj.{kind}": query,
                f"{layer}self_attn.k_proj.{kind}": key,
                f"{layer}self_attn.v_proj.{kind}": value,
                f"{layer}self_attn.o_proj.{kind}": ours[f"{layer}attn.c_proj.{kind}"],
                f"{layer}mlp.gate_proj.{kind}": gate,
                f"{layer}mlp.up_proj.{kind}": up,
                f"{layer}mlp.down_proj.{kind}": ours[f"{layer}mlp.c_proj.{kind}"],
            })
    return state
