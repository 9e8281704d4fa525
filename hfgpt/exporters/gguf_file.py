"""Export to GGUF: one file llama.cpp runs, written with llama.cpp's own writer (the `gguf` package).

A GPT-2 family model becomes llama.cpp's `gpt2` architecture and a Llama family model its `llama`
architecture. The weights take the path llama.cpp's `convert_hf_to_gguf.py` takes from the stock transformers
model: the stock state dict (see gpt2.py and llama.py), renamed by gguf's own tensor map; GPT-2's Conv1D
weights transposed back, and Llama's query and key rows permuted from transformers' rotate-half layout into
the adjacent pairs llama.cpp rotates. Norms, biases and the position table stay f32 at every dtype, as
convert_hf_to_gguf keeps them; a q8_0 tensor whose rows are not a multiple of 32 is written f16.

The tokenizer goes inside as a byte-level BPE (`tokenizer.ggml.model = "gpt2"`) with pre-tokenizer `gpt-2`:
the regex of hfgpt's byte-level BPE (`ByteLevel(add_prefix_space=False)`, GPT-2's). A char tokenizer goes in
as the same kind: each character is written as its UTF-8 bytes in GPT-2's byte alphabet, with merges that join
the bytes of each multi-byte character back into it, so llama.cpp tokenizes and detokenizes every text made
of the vocabulary's characters as hfgpt does. (A character outside the vocabulary, which hfgpt maps to its unk
token, has no token in llama.cpp: it is dropped.) No BOS or EOS is added on encode, as in hfgpt.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import gguf
import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..errors import HfGptError
from ..models.hfgpt import HfGptConfig, HfGptForCausalLM
from .families import nearest_family, require_family, stock_family
from .gpt2 import gpt2_state_dict
from .llama import llama_state_dict

# --dtype -> (tensor type of the 2D weights, general.file_type)
GGUF_DTYPES = {
    "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
}
# llama.cpp's GPT-2 computes GELU with the tanh approximation; its Llama gates with SiLU.
ACTIVATIONS = {"gpt2": ("gelu_new", "gelu_pytorch_tanh"), "llama": ("silu",)}
ARCHITECTURES = {"gpt2": gguf.MODEL_ARCH.GPT2, "llama": gguf.MODEL_ARCH.LLAMA}
# llama.cpp refuses a BPE vocabulary without merges, and gguf cannot write an empty list: a char vocabulary of
# single-byte characters (Tiny Shakespeare's) has no merges, so it gets this one, which never applies: BPE starts
# from single characters and no merge builds the multi-character special token it names.
_INERT_MERGE = "{0} {0}"
PRE_TOKENIZER = "gpt-2"  # llama.cpp's name for GPT-2's pre-tokenizer regex (llama-vocab.cpp)


def write_gguf(model: HfGptForCausalLM, tokenizer: PreTrainedTokenizerBase | None, path: Path, dtype: str,
               family: str) -> None:
    """Write `model` and `tokenizer` to the GGUF file `path` as llama.cpp's `family` (`gguf_family`), its 2D
    weights as `dtype` (f32, f16 or q8_0)."""
    config = model.config
    if tokenizer is None:
        raise HfGptError("Cannot export to gguf without a tokenizer: llama.cpp reads the vocabulary from the file. "
                         "Export a folder that holds one (a run's final/ or best/).")
    tokens, types, merges = gguf_vocabulary(tokenizer, config.vocab_size)
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[ARCHITECTURES[family]])
    qtype, file_type = GGUF_DTYPES[dtype]
    writer.add_file_type(file_type)
    _add_hyperparameters(writer, config, family)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(PRE_TOKENIZER)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges or [_INERT_MERGE.format(tokenizer.eos_token)])
    for name, token_id in (("bos", tokenizer.bos_token_id), ("eos", tokenizer.eos_token_id),
                           ("pad", tokenizer.pad_token_id), ("unk", tokenizer.unk_token_id)):
        if token_id is not None:
            getattr(writer, f"add_{name}_token_id")(token_id)
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)
    for name, tensor in gguf_tensors(model, family).items():
        _add_tensor(writer, name, tensor, qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def gguf_family(config: HfGptConfig) -> str:
    """`gpt2` or `llama`: the llama.cpp architecture that computes what `config`'s model computes. Exact GELU
    (hfgpt's default) goes to llama.cpp's gpt2, which computes the tanh approximation, with a warning."""
    family = stock_family(config)
    # raises for a mixture or an option neither family has: the sentence names what prevents it
    require_family(config, family or nearest_family(config), "gguf")
    if family == "gpt2" and config.hidden_act == "gelu":
        warnings.warn("llama.cpp's gpt2 computes GELU with the tanh approximation and this model was trained with "
                      "exact GELU (hidden_act='gelu'): the two differ by at most 4.8e-4 per activation, so llama.cpp's "
                      "logits are close to hfgpt's, not equal; train with --hidden-act gelu_new for the same math, "
                      "or export --to gpt2 for a transformers folder that keeps it.", stacklevel=2)
    elif config.hidden_act not in ACTIVATIONS[family]:
        raise HfGptError(f"Cannot export to gguf: llama.cpp's {family} computes its MLP with "
                         f"{' or '.join(ACTIVATIONS[family])}, not hidden_act={config.hidden_act!r}; export with "
                         f"--to {family}, a transformers folder that keeps it, or train with "
                         f"hidden_act={ACTIVATIONS[family][0]!r}.")
    return family


def gguf_tensors(model: HfGptForCausalLM, family: str) -> dict[str, torch.Tensor]:
    """The model's tensors under their GGUF names, in llama.cpp's layout; a tied head is written once."""
    config = model.config
    names = gguf.get_tensor_name_map(ARCHITECTURES[family], config.num_hidden_layers)
    stock = gpt2_state_dict(model) if family == "gpt2" else llama_state_dict(model)
    if config.tie_word_embeddings:
        del stock["lm_head.weight"]  # llama.cpp falls back to the token embedding
    tensors = {}
    for name, tensor in stock.items():
        if family == "gpt2" and name.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
            tensor = tensor.t()  # Conv1D (in, out) back to (out, in)
        elif name.endswith(("q_proj.weight", "q_proj.bias")):
            tensor = _adjacent_pairs(tensor, config.num_attention_heads)
        elif name.endswith(("k_proj.weight", "k_proj.bias")):
            tensor = _adjacent_pairs(tensor, config.key_value_heads)
        tensors[names.get_name(name, try_suffixes=(".weight", ".bias"))] = tensor.contiguous()
    return tensors


def _adjacent_pairs(tensor: torch.Tensor, heads: int) -> torch.Tensor:
    """Reorder each head's rows from rotate-half pairs (i, i + hs/2) to adjacent ones (2i, 2i + 1), as
    convert_hf_to_gguf's `LlamaModel.permute` does for llama.cpp's rope."""
    return tensor.reshape(heads, 2, tensor.shape[0] // heads // 2, *tensor.shape[1:]).swapaxes(1, 2).reshape(
        tensor.shape)


def _add_hyperparameters(writer: gguf.GGUFWriter, config: HfGptConfig, family: str) -> None:
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_head_count(config.num_attention_heads)
    if family == "gpt2":
        writer.add_layer_norm_eps(config.layer_norm_eps)
        return
    writer.add_head_count_kv(config.key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(config.rope_theta)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_vocab_size(config.vocab_size)


def _add_tensor(writer: gguf.GGUFWriter, name: str, tensor: torch.Tensor, qtype: gguf.GGMLQuantizationType) -> None:
    """Add one tensor at `qtype`, or f32 for what convert_hf_to_gguf never quantizes (1D, position table)."""
    data = tensor.detach().to(torch.float32).numpy()
    if data.ndim == 1 or name.startswith("position_embd") or qtype == gguf.GGMLQuantizationType.F32:
        writer.add_tensor(name, data)
    elif qtype == gguf.GGMLQuantizationType.F16 or data.shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0]:
        writer.add_tensor(name, data.astype(np.float16))
    else:
        writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)


def gguf_vocabulary(tokenizer: PreTrainedTokenizerBase, vocab_size: int) -> tuple[list[str], list[int], list[str]]:
    """The token strings (byte-level), token types and merges ("a b") of `tokenizer`, padded with unused tokens
    to the model's `vocab_size`. Refuses a tokenizer llama.cpp's `gpt-2` byte-level BPE cannot reproduce."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = tokenizer.backend_tokenizer.get_vocab(with_added_tokens=True)
    by_id = sorted(vocab, key=vocab.__getitem__)
    if [vocab[token] for token in by_id] != list(range(len(by_id))) or len(by_id) > vocab_size:
        raise HfGptError(f"Cannot export to gguf: the tokenizer's ids are not 0..{len(by_id) - 1} within the "
                         f"model's {vocab_size}, so llama.cpp could not map them to the model's rows.")
    special = {token["content"] for token in spec["added_tokens"] if token["special"]}
    kind = spec["model"]["type"]
    if kind == "BPE" and _is_gpt2_byte_level(spec):
        tokens, merges = by_id, [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    elif kind == "WordLevel" and all(len(token) == 1 for token in by_id if token not in special):
        tokens, merges = _characters_as_bytes(by_id, special)
    else:
        raise HfGptError(f"Cannot export to gguf: the tokenizer is a {kind} model that is neither GPT-2's byte-level "
                         "BPE nor one token per character, so llama.cpp would split text differently; export with "
                         "--to gpt2 or --to llama, whose folders keep the tokenizer as it is.")
    types = [gguf.TokenType.CONTROL if token in special else gguf.TokenType.NORMAL for token in by_id]
    padding = range(len(by_id), vocab_size)  # rows the model has beyond the tokenizer: never produced by it
    return ([*tokens, *(f"[PAD{i}]" for i in padding)], [*types, *(gguf.TokenType.UNUSED for _ in padding)],
            merges)


def _is_gpt2_byte_level(spec: dict) -> bool:
    """Whether the tokenizer splits text as GPT-2 does: no normalizer, ByteLevel with its regex, no prefix space."""
    pre = spec.get("pre_tokenizer") or {}
    return (spec.get("normalizer") is None and pre.get("type") == "ByteLevel" and pre.get("use_regex", True)
            and not pre.get("add_prefix_space", False))


def _characters_as_bytes(by_id: list[str], special: set[str]) -> tuple[list[str], list[str]]:
    """A char vocabulary as byte-level BPE: each character spelled in GPT-2's byte alphabet, and the merges
    that rebuild a multi-byte character from its bytes, one byte at a time (a merge never crosses characters:
    a UTF-8 continuation byte never starts one)."""
    alphabet = gguf.vocab.bytes_to_unicode()
    tokens, merges = [], {}
    for token in by_id:
        if token in special:
            tokens.append(token)
            continue
        symbols = [alphabet[byte] for byte in token.encode("utf-8")]
        for end in range(1, len(symbols)):
            merges.setdefault(f"{''.join(symbols[:end])} {symbols[end]}", None)
        tokens.append("".join(symbols))
    return tokens, list(merges)
