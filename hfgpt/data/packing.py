"""Token streams into fixed-length blocks, written as Arrow shards of bounded size and read memory-mapped.

A split's stream (every document's ids with EOS appended, hfgpt.data.encoding; or a binary shard's ids) is
cut into blocks of `seq_len` tokens as it arrives and written to `<split>-00000.arrow`, `<split>-00001.arrow`,
... of at most SHARD_BYTES each, so that neither memory nor any one file grows with the corpus. Blocks are
cut from one continuous stream, so no token is lost or repeated whatever the task size or `num_proc`; only
the very last block is padded (the loss masks pad labels). Without a validation set, the last blocks of the
stream are held out, so the two sets never share a block. `facts.json` in the folder says which shards and
blocks make each split; `open_split` maps them. A folder without `"layout"` in it is the single-file layout
of earlier versions (a `DatasetDict` saved with `save_to_disk`), still read as it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from datasets import Dataset, Features, List, Value, concatenate_datasets

from ..errors import HfGptError

SHARD_BYTES = 256 << 20  # the largest shard file
LAYOUT = 2  # facts.json's "layout": sharded blocks, as this module writes them


@dataclass(frozen=True)
class Split:
    """One split's token stream: where it comes from, what identifies it, and how to read it in chunks."""

    origin: str  # for messages
    fingerprint: str
    read: Callable[[Path, str], Iterator[np.ndarray]]  # (work folder, split name) -> int32 chunks of the stream


class ShardWriter:
    """Cuts a token stream into `seq_len` blocks as it comes, into shard files of at most SHARD_BYTES."""

    def __init__(self, folder: Path, name: str, seq_len: int, pad_id: int) -> None:
        self.folder, self.name, self.seq_len, self.pad_id = folder, name, seq_len, pad_id
        self.schema = Features({"input_ids": List(Value("int32"), length=seq_len)}).arrow_schema
        self.per_shard = max(1, SHARD_BYTES // (4 * seq_len))
        self.files: list[str] = []
        self.blocks = self.tokens = 0
        self.carry = np.empty(0, dtype=np.int32)  # the stream's tail that does not fill a block yet
        self._sink: pa.OSFile | None = None
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._open_shard()

    def add(self, chunk: np.ndarray) -> None:
        stream = np.concatenate([self.carry, chunk.astype(np.int32, copy=False)])
        self.tokens += len(chunk)
        cut = len(stream) // self.seq_len * self.seq_len
        self._write(stream[:cut])
        self.carry = stream[cut:]

    def close(self) -> dict[str, Any]:
        """Pad and write the last block; returns the split's entry for facts.json (and its counts)."""
        padded = (self.seq_len - len(self.carry)) % self.seq_len
        if len(self.carry):
            self._write(np.concatenate([self.carry, np.full(padded, self.pad_id, dtype=np.int32)]))
        self._close_shard()
        return {"files": self.files, "start": 0, "stop": self.blocks, "tokens": self.tokens, "padded": padded}

    def _write(self, stream: np.ndarray) -> None:  # stream: (k * seq_len,) int32
        while len(stream):
            room = self.per_shard - (self.blocks - (len(self.files) - 1) * self.per_shard)
            if room == 0:
                self._close_shard()
                self._open_shard()
                continue
            part, stream = stream[: room * self.seq_len], stream[room * self.seq_len:]
            blocks = pa.FixedSizeListArray.from_arrays(pa.array(part, type=pa.int32()), self.seq_len)
            assert self._writer is not None
            self._writer.write_batch(pa.record_batch([blocks], schema=self.schema))
            self.blocks += len(part) // self.seq_len

    def _open_shard(self) -> None:
        self.files.append(f"{self.name}-{len(self.files):05d}.arrow")
        self._sink = pa.OSFile(str(self.folder / self.files[-1]), "wb")
        self._writer = pa.ipc.new_stream(self._sink, self.schema)

    def _close_shard(self) -> None:
        if self._writer is not None and self._sink is not None:
            self._writer.close()
            self._sink.close()
        self._writer = self._sink = None


def build(out: Path, train_split: Split | None, valid_split: Split | None, pad_id: int, valid_fraction: float,
          seq_len: int, work: Path) -> dict[str, Any]:
    """Write the packed splits' shards to `out` and return the facts to keep with them (facts.json). Without
    `train_split`, the validation split alone is packed (a text to evaluate), and train is an empty range."""
    out.mkdir(parents=True, exist_ok=True)
    if train_split is None:
        assert valid_split is not None
        valid = _pack(valid_split.read(work, "valid"), out, "valid", seq_len, pad_id)
        return _facts(seq_len, {**valid, "stop": 0}, valid, 0, valid["tokens"], valid["padded"])
    train = _pack(train_split.read(work, "train"), out, "train", seq_len, pad_id)
    if valid_split is not None:
        valid = _pack(valid_split.read(work, "valid"), out, "valid", seq_len, pad_id)
        return _facts(seq_len, train, valid, train["tokens"], valid["tokens"], train["padded"] + valid["padded"])
    n_blocks = train["stop"]
    if valid_fraction == 0:  # a mixture's source beside given validation sets: every block trains
        return _facts(seq_len, train, {**train, "start": n_blocks}, train["tokens"], 0, train["padded"])
    if n_blocks < 2:
        raise HfGptError(
            f"{train_split.origin} gives only {train['tokens']} tokens, fewer than 2 blocks of --seq-len "
            f"{seq_len}, so no block can be held out for validation. Use a shorter --seq-len, more "
            "text, or a separate --valid set."
        )
    n_valid = min(n_blocks - 1, max(1, math.ceil(valid_fraction * n_blocks)))
    n_train = n_blocks - n_valid
    # The held-out blocks are the tail of the stream: contiguous, and sharing no block with train.
    return _facts(seq_len, {**train, "stop": n_train}, {**train, "start": n_train}, n_train * seq_len,
                  train["tokens"] - n_train * seq_len, train["padded"])


def _facts(seq_len: int, train: dict[str, Any], valid: dict[str, Any], train_tokens: int, valid_tokens: int,
           padded: int) -> dict[str, Any]:
    splits = {name: {key: entry[key] for key in ("files", "start", "stop")}
              for name, entry in (("train", train), ("valid", valid))}
    return {"layout": LAYOUT, "seq_len": seq_len, "train_tokens": train_tokens, "valid_tokens": valid_tokens,
            "padded_tokens": padded, "splits": splits}


def _pack(chunks: Iterator[np.ndarray], out: Path, name: str, seq_len: int, pad_id: int) -> dict[str, Any]:
    writer = ShardWriter(out, name, seq_len, pad_id)
    for chunk in chunks:
        writer.add(chunk)
    return writer.close()


def open_split(folder: Path, entry: dict[str, Any]) -> Dataset:
    """The blocks `[start, stop)` of a split's shards, memory-mapped, as one dataset (no copy is made)."""
    shards = [Dataset.from_file(str(folder / name)) for name in entry["files"]]
    blocks = concatenate_datasets(shards) if len(shards) > 1 else shards[0]
    if entry["start"] == entry["stop"]:  # a source that holds nothing out
        return blocks.select([])
    if (entry["start"], entry["stop"]) != (0, len(blocks)):
        blocks = blocks.select(range(entry["start"], entry["stop"]))  # contiguous: a slice of the table
    return blocks
