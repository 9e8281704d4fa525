"""Small saved hfgpt models of both families, for the exporter tests."""

from __future__ import annotations

from pathlib import Path

import torch
from helpers import PANGRAMS

from hfgpt.data.tokenization import train_tokenizer
from hfgpt.models.hfgpt import HfGptConfig
from hfgpt.models.hfgpt.modeling_hfgpt import HfGptForCausalLM

# The options that make an hfgpt model a Llama one.
LLAMA = dict(position_embedding_type="rotary", norm_type="rmsnorm", mlp_type="gated", hidden_act="silu")


def hfgpt_model(seed: int = 0, **options) -> HfGptForCausalLM:
    torch.manual_seed(seed)
    config = HfGptConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=48, initializer_range=0.2, bos_token_id=0, eos_token_id=0,
                         pad_token_id=1, **options)
    return HfGptForCausalLM(config).eval()


def saved(folder: Path, tokenizer: bool = True, **options) -> Path:
    """A saved hfgpt folder (model and byte-level BPE tokenizer), as a run's final/ holds."""
    hfgpt_model(**options).save_pretrained(folder)
    if tokenizer:
        train_tokenizer("bpe", PANGRAMS * 5, vocab_size=300).save_pretrained(folder)
    return folder


def prompt(length: int = 12) -> torch.Tensor:
    return torch.randint(3, 300, (2, length), generator=torch.Generator().manual_seed(1))
