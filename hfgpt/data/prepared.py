"""What `prepare_data` (hfgpt.data.prepare) hands a run: the tokenizer, the blocks of each split, and the facts
about them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset
from transformers import PreTrainedTokenizerFast


@dataclass
class PreparedData:
    """The tokenizer and the packed blocks, `(n, seq_len)` int arrays via `ds[indices]["input_ids"]`."""

    tokenizer: PreTrainedTokenizerFast
    train: Dataset
    valid: Dataset
    cache_dir: Path  # the packed data folder; its name identifies the data of a run
    reused: bool  # loaded from the cache rather than built by this call
    seq_len: int
    train_tokens: int  # real tokens (EOS included, padding excluded)
    valid_tokens: int
    padded_tokens: int  # pad tokens filling the last block of a stream

    def blocks(self) -> str:
        """How many blocks of each split, in words."""
        return f"{len(self.train):,} train and {len(self.valid):,} validation blocks"

    def summary(self) -> str:
        return (
            f"{self.blocks()} of {self.seq_len} tokens ({self.train_tokens:,} + {self.valid_tokens:,} tokens, "
            f"{self.padded_tokens} padding), vocabulary {len(self.tokenizer):,}, "
            f"{'reused' if self.reused else 'built'} {self.cache_dir}"
        )
