"""What `prepare_data` (hfgpt.data.prepare) hands a run: the tokenizer, the blocks of each split, and the facts
about them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import PreTrainedTokenizerFast


@dataclass
class PreparedData:
    """The tokenizer and the packed blocks, `(n, seq_len)` int arrays via `ds[indices]["input_ids"]`.

    With `--streaming`, `stream` says how to read the training blocks (hfgpt.data.streaming) and `train` is
    empty; `valid` holds the validation blocks either way."""

    tokenizer: PreTrainedTokenizerFast
    train: Dataset
    valid: Dataset
    cache_dir: Path  # the packed data folder; its name identifies the data of a run
    reused: bool  # loaded from the cache rather than built by this call
    seq_len: int
    train_tokens: int  # real tokens (EOS included, padding excluded)
    valid_tokens: int
    padded_tokens: int  # pad tokens filling the last block of a stream
    stream: Any = None  # a hfgpt.data.streaming.TokenStream

    @property
    def evaluated_only(self) -> bool:
        """Whether these are the blocks of a text to evaluate, with no training split (`hfgpt eval`)."""
        return self.stream is None and not len(self.train)

    def blocks(self) -> str:
        """How many blocks of each split, in words."""
        if self.evaluated_only:
            return f"{len(self.valid):,} blocks to evaluate"
        train = "streamed train" if self.stream is not None else f"{len(self.train):,} train"
        return f"{train} and {len(self.valid):,} validation blocks"

    def summary(self) -> str:
        train = "" if self.evaluated_only else "streamed + " if self.stream is not None else f"{self.train_tokens:,} + "
        return (
            f"{self.blocks()} of {self.seq_len} tokens ({train}{self.valid_tokens:,} tokens, "
            f"{self.padded_tokens} padding), vocabulary {len(self.tokenizer):,}, "
            f"{'reused' if self.reused else 'built'} {self.cache_dir}"
        )
