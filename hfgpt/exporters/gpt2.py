"""Export to GPT-2: the config and weights of a `GPT2LMHeadModel` equal to an hfgpt model of the GPT-2 family.

The weights are renamed and the Linear weights (out, in) transposed into GPT-2's Conv1D layout (in, out).
GPT-2 always has biases: a bias-free model gets zero ones. GPT-2 has no grouped-query attention: each
shared key/value head is repeated for the query heads it serves, which computes exactly what sharing did.
`hidden_act` carries over as `activation_function` unchanged, so a model with exact `gelu` stays exact
(GPT-2's own is `gelu_new`, the tanh approximation).
"""

from __future__ import annotations

import torch
from transformers import GPT2Config

from ..models.hfgpt import HfGptConfig, HfGptForCausalLM


def gpt2_config(config: HfGptConfig) -> GPT2Config:
    """The `GPT2Config` of the same architecture; the context is `max_position_embeddings`."""
    return GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.max_position_embeddings,
        n_embd=config.hidden_size,
        n_layer=config.num_hidden_layers,
        n_head=config.num_attention_heads,
        n_inner=config.intermediate_size,
        activation_function=config.hidden_act,
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
        layer_norm_epsilon=config.layer_norm_eps,
        initializer_range=config.initializer_range,
        tie_word_embeddings=config.tie_word_embeddings,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )


def gpt2_state_dict(model: HfGptForCausalLM) -> dict[str, torch.Tensor]:
    """`GPT2LMHeadModel`'s state dict (every key, `lm_head.weight` too) holding `model`'s weights."""
    config = model.config
    ours = model.state_dict()
    state = {
        "transformer.wte.weight": ours["model.wte.weight"],
        "transformer.wpe.weight": ours["model.wpe.weight"],
        "lm_head.weight": ours["lm_head.weight"],
    }
    state.update(_layer_norm(ours, "model.ln_f", "transformer.ln_f"))
    for i in range(config.num_hidden_layers):
        layer, theirs = f"model.layers.{i}.", f"transformer.h.{i}."
        state.update(_layer_norm(ours, layer + "ln_1", theirs + "ln_1"))
        state.update(_layer_norm(ours, layer + "ln_2", theirs + "ln_2"))
        for name, tensor in _attention_without_groups(ours, layer + "attn.c_attn", model).items():
            state[f"{theirs}attn.c_attn.{name}"] = tensor
        for ours_name, theirs_name in (("attn.c_proj", "attn.c_proj"), ("mlp.c_fc", "mlp.c_fc"),
                                       ("mlp.c_proj", "mlp.c_proj")):
            state.update(_conv1d(ours, layer + ours_name, theirs + theirs_name))
    return state


def _bias(ours: dict[str, torch.Tensor], name: str, size: int) -> torch.Tensor:
    """The bias `name`, or zeros where the model has none."""
    return ours[f"{name}.bias"] if f"{name}.bias" in ours else torch.zeros(size, dtype=ours[f"{name}.weight"].dtype)


def _layer_norm(ours: dict[str, torch.Tensor], name: str, theirs: str) -> dict[str, torch.Tensor]:
    weight = ours[f"{name}.weight"]
    return {f"{theirs}.weight": weight, f"{theirs}.bias": _bias(ours, name, weight.shape[0])}


def _conv1d(ours: dict[str, torch.Tensor], name: str, theirs: str) -> dict[str, torch.Tensor]:
    weight = ours[f"{name}.weight"]  # (out, in)
    return {f"{theirs}.weight": weight.t().contiguous(), f"{theirs}.bias": _bias(ours, name, weight.shape[0])}


def _attention_without_groups(ours: dict[str, torch.Tensor], name: str,
                              model: HfGptForCausalLM) -> dict[str, torch.Tensor]:
    """The fused query/key/value projection as Conv1D, each key/value head repeated for its group of query heads."""
    attention = model.model.layers[0].attn
    groups, head_dim, sizes = attention.num_key_value_groups, attention.head_dim, attention.split_sizes

    def ungroup(tensor: torch.Tensor) -> torch.Tensor:  # (3 parts of rows, ...) -> (3 * hidden_size, ...)
        query, key, value = tensor.split(sizes, dim=0)
        heads = [part.unflatten(0, (-1, head_dim)).repeat_interleave(groups, dim=0).flatten(0, 1)
                 for part in (key, value)]
        return torch.cat([query, *heads])

    weight = ungroup(ours[f"{name}.weight"])  # (3C, C)
    return {"weight": weight.t().contiguous(), "bias": ungroup(_bias(ours, name, sum(sizes)))}
