"""What `prepare_data` (hfgpt.data.prepare) hands a run: the tokenizer, the blocks of each split, and the facts
about them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import PreTrainedTokenizerFast

from .mixture import Schedule


@dataclass(frozen=True)
class Part:
    """One source's blocks `[start, stop)` in a split of a mixture (hfgpt.data.mixture_data), and its real tokens."""

    name: str
    start: int
    stop: int
    tokens: int

    @property
    def blocks(self) -> int:
        return self.stop - self.start


@dataclass
class PreparedData:
    """The tokenizer and the packed blocks, `(n, seq_len)` int arrays via `ds[indices]["input_ids"]`.

    With `--streaming`, `stream` says how to read the training blocks (hfgpt.data.streaming) and `train` is
    empty; `valid` holds the validation blocks either way. A mixture's splits are its sources' blocks side by side:
    `train_parts` (with their weight `schedules`) and `valid_parts` say which are whose; empty for one source."""

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
    train_parts: tuple[Part, ...] = ()
    valid_parts: tuple[Part, ...] = ()
    schedules: tuple[Schedule, ...] = ()  # the weight of each of train_parts
    key: str = ""  # a mixture's identity: its parts' names and packed folders, hashed

    @property
    def identity(self) -> str:
        """What identifies these blocks across launches: the packed folder's name, or a mixture's key."""
        return self.key or self.cache_dir.name

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
            f"{'reused' if self.reused else 'built'} {self.cache_dir}{' (a folder per source)' if self.key else ''}"
        )
