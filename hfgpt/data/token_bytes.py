"""How many bytes of text each token stands for, so that a loss per token becomes bits per byte: a measure
that compares models whatever their tokenizer (a char model and a BPE model of the same text).

Bits per byte of a set of blocks = (summed loss over the predicted tokens, in nats) / ln 2 / (UTF-8 bytes of
those tokens' text). A byte-level BPE token is as many bytes as its vocabulary string has characters (each
stands for one byte); another token is the UTF-8 length of its text. Special tokens (end of text, padding)
are no text: 0 bytes, though predicting end of text counts in the loss, as in every tokenizer. The unknown
token stands for at least one character: 1 byte.
"""

from __future__ import annotations

import math

import numpy as np
from datasets import Dataset
from tokenizers import decoders
from transformers import PreTrainedTokenizerBase

from .batches import IGNORE_INDEX

_READ = 512  # blocks read at a time


def token_byte_lengths(tokenizer: PreTrainedTokenizerBase) -> np.ndarray:
    """(vocabulary,) int64: the bytes of text that each token id stands for."""
    vocab = tokenizer.get_vocab()
    lengths = np.zeros(max(len(tokenizer), max(vocab.values()) + 1), dtype=np.int64)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    byte_level = backend is not None and isinstance(backend.decoder, decoders.ByteLevel)
    special = set(tokenizer.all_special_ids)
    for token, index in vocab.items():
        if index in special:
            lengths[index] = 1 if index == tokenizer.unk_token_id else 0
        elif byte_level:
            lengths[index] = len(token)
        else:
            lengths[index] = len(tokenizer.convert_tokens_to_string([token]).encode("utf-8"))
    return lengths


def target_bytes(blocks: Dataset, count: int, lengths: np.ndarray, pad_token_id: int | None) -> tuple[int, int]:
    """(predicted tokens, their bytes) over the first `count` blocks: every position but each block's first,
    padding excluded, as the loss counts them (`hfgpt.training.criterion`)."""
    tokens = text_bytes = 0
    for start in range(0, count, _READ):
        ids = np.asarray(blocks[start:min(start + _READ, count)]["input_ids"], dtype=np.int64)[:, 1:]
        counted = ids != (IGNORE_INDEX if pad_token_id is None else pad_token_id)
        tokens += int(counted.sum())
        text_bytes += int(lengths[ids[counted]].sum())
    return tokens, text_bytes


def bits_per_byte(mean_loss: float, tokens: int, text_bytes: int) -> float:
    """Bits per byte from the mean loss per token (nats) over `tokens` tokens holding `text_bytes` bytes."""
    return mean_loss * tokens / math.log(2) / text_bytes if text_bytes else float("nan")
