"""The [model] section: the architecture, under the field names of `HfGptConfig`, which is built from it by
name (`model_config_kwargs`) with these defaults (a test holds the two sets of defaults equal)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .fields import NOT_NEGATIVE, POSITIVE, Bounds, setting, zero_or_positive

MAX_DEPTH = 64  # --depth 64 is 4096 wide, 12.9 billion parameters in its blocks: a larger one is a typo


@dataclass
class ModelSection:
    hidden_size: int = setting(128, "Width of the residual stream (embedding dimension).", bounds=POSITIVE,
                               aliases=("dim", "n-embd"))
    intermediate_size: int = setting(0, "Width of the MLP (of each branch of a gated one); 0 means 4 x hidden_size.",
                                     bounds=zero_or_positive("4 x hidden"), aliases=("ff",))
    num_hidden_layers: int = setting(4, "Number of decoder blocks.", bounds=POSITIVE, aliases=("layers", "n-layer"))
    num_attention_heads: int = setting(4, "Attention heads per block; must divide hidden_size.", bounds=POSITIVE,
                                       aliases=("heads", "n-head"))
    num_key_value_heads: int = setting(0, "Key/value heads, each shared by a group of attention heads (grouped-query "
                                          "attention); must divide num_attention_heads. 0: one per attention head.",
                                       bounds=NOT_NEGATIVE, aliases=("kv-heads",))
    max_position_embeddings: int = setting(128, "Longest context the model can attend over.", bounds=POSITIVE,
                                           aliases=("seq", "block-size"))
    position_embedding_type: str = setting("absolute", "Positions: absolute (a learned table, GPT-2) or rotary "
                                                       "(RoPE, Llama).", choices=("absolute", "rotary"))
    rope_theta: float = setting(10000.0, "Base of the rotary frequencies.", bounds=POSITIVE)
    norm_type: str = setting("layernorm", "layernorm (GPT-2) or rmsnorm (Llama).", choices=("layernorm", "rmsnorm"))
    qk_norm: bool = setting(False, "QK-norm: normalise each head's queries and keys (with norm_type) before attention "
                                   "and rotary positions (OLMo 2, Qwen 3, modded-nanogpt). No stock export.")
    mlp_type: str = setting("standard", "standard: proj(act(fc(x))) (GPT-2); gated: proj(act(gate(x)) * up(x)), "
                                        "with hidden_act silu the SwiGLU of Llama.", choices=("standard", "gated"))
    dropout: float = setting(0.0, "Dropout on embeddings, attention weights and residual branches.",
                             bounds=Bounds(low=0, high=1, high_open=True))
    bias: bool = setting(False, "Use biases in linear layers and norms (GPT-2 does).")
    hidden_act: str = setting("gelu", "MLP activation, any name in transformers' ACT2FN, such as gelu, gelu_new "
                                      "(GPT-2), silu (Llama) or relu2 (squared ReLU: Primer, modded-nanogpt).")
    layer_norm_eps: float = setting(1e-5, "Epsilon of the LayerNorms.", bounds=POSITIVE)
    rms_norm_eps: float = setting(1e-6, "Epsilon of the RMSNorms.", bounds=POSITIVE)
    initializer_range: float = setting(0.02, "Std of the normal weight init (residual projections are scaled).",
                                       bounds=POSITIVE)
    zero_init_output_projections: bool = setting(False, "Start the attention and MLP output projections at zero, so "
                                                        "that every block starts as the identity (modded-nanogpt).")
    tie_word_embeddings: bool = setting(True, "Share the input embedding with the output head.")
    logit_softcap: float = setting(0.0, "Soft-cap the logits: cap x tanh(logits / cap), in training and generation "
                                        "(Gemma 2: 30, modded-nanogpt: 15). 0: off. No stock export.",
                                   bounds=zero_or_positive("off"))
    document_masking: bool = setting(False, "In a packed block, a token attends only to the tokens of its own "
                                            "document (documents end at the end-of-text token) and positions "
                                            "restart at each one; evaluation follows, generation and exported "
                                            "models compute without it.")
    attn_implementation: str = setting("auto", "Attention kernel: sdpa (flash/memory-efficient on a GPU), eager, or "
                                               "auto: sdpa, except eager on a CPU in bf16, where torch's sdpa kernel "
                                               "is several times slower than in fp32. Resolved and saved at start.",
                                       choices=("auto", "sdpa", "eager"))
    gradient_checkpointing: bool = setting(False, "Recompute activations in the backward pass to save memory.")
    depth: int = setting(0, "nanochat's size dial: the number of layers, from which hfgpt derives the width (64 x "
                            "depth), the heads, the token batch, the steps (--horizon-ratio tokens per parameter) "
                            "and the learning rate, printed as a table at the start and saved; a setting given in "
                            "a preset, flags file or flag keeps its value. 0: off.",
                         bounds=Bounds(low=0, high=MAX_DEPTH, zero="off"))
    arch: str = setting("", "The architecture from a file: a TOML [model] table or a transformers config.json (gpt2, "
                            "llama or hfgpt); flags given with it override its values. Resolved into the settings "
                            "above, which the run saves.")
    archdir: str = setting("", "Where a relative --arch is looked up (default: the working directory).")


def model_config_kwargs(model: ModelSection) -> dict[str, Any]:
    """The model section as `HfGptConfig` keyword arguments, by field name; what is not an architecture setting
    (the attention kernel, checkpointing, the dials --depth and --arch) stays out, and 0 for the derived sizes is
    HfGptConfig's None."""
    kwargs = {name: value for name, value in dataclasses.asdict(model).items() if name not in RUNTIME_MODEL_FIELDS}
    kwargs["intermediate_size"] = kwargs["intermediate_size"] or None
    kwargs["num_key_value_heads"] = kwargs["num_key_value_heads"] or None
    return kwargs


# What makes a model one of the stock families, option by option: --arch reads these families' config.json,
# hfgpt.exporters writes them. Everything else (biases, kv-heads, eps, theta, a tied head) each carries over.
FAMILY_BLOCKS: dict[str, dict[str, str]] = {
    "gpt2": {"position_embedding_type": "absolute", "norm_type": "layernorm", "mlp_type": "standard"},
    "llama": {"position_embedding_type": "rotary", "norm_type": "rmsnorm", "mlp_type": "gated"},
}
RUNTIME_MODEL_FIELDS = ("attn_implementation", "gradient_checkpointing", "depth", "arch", "archdir")
# The settings that shape the model: what --arch may set.
ARCHITECTURE_FIELDS = tuple(f.name for f in dataclasses.fields(ModelSection) if f.name not in RUNTIME_MODEL_FIELDS)
