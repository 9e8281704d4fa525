"""Bits per byte: each token's bytes of text, for char and byte-level BPE tokenizers alike, so that the same
text measured with either gives its byte count, and the measure compares them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from datasets import Dataset

from hfgpt.data.token_bytes import bits_per_byte, target_bytes, token_byte_lengths
from hfgpt.data.tokenization import train_tokenizer

TEXT = "Héllo, wörld! 日本 😀\nThe quick brown fox.\n" * 8


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_the_tokens_of_a_text_add_up_to_its_utf8_bytes(kind):
    tokenizer = train_tokenizer(kind, [TEXT], vocab_size=300)
    lengths = token_byte_lengths(tokenizer)
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    assert lengths[ids].sum() == len(TEXT.encode("utf-8"))
    assert lengths[tokenizer.eos_token_id] == lengths[tokenizer.pad_token_id] == 0
    assert lengths[tokenizer.unk_token_id] == (1 if tokenizer.unk_token_id is not None else 0)


def test_target_bytes_counts_what_the_loss_counts():
    """Every position but each block's first, padding left out."""
    tokenizer = train_tokenizer("char", ["ab\u00e9"])  # é is two bytes
    a, b, e = (tokenizer.convert_tokens_to_ids(c) for c in "abé")
    pad = tokenizer.pad_token_id
    blocks = Dataset.from_dict({"input_ids": [[a, b, e, a], [e, e, pad, pad]]}).with_format("numpy")
    lengths = token_byte_lengths(tokenizer)
    assert target_bytes(blocks, 2, lengths, pad) == (3 + 1, (1 + 2 + 1) + 2)
    assert target_bytes(blocks, 1, lengths, pad) == (3, 4)
    assert bits_per_byte(math.log(2), 4, 4) == pytest.approx(1.0)
    assert math.isnan(bits_per_byte(1.0, 0, 0)) and isinstance(lengths, np.ndarray)
