"""Token streams into fixed-length blocks: every document tokenized with EOS appended (`datasets.map`, in
batches, `num_proc` processes), read back as one stream, and cut into blocks of `seq_len` tokens written as
Arrow. Blocks are cut from one continuous stream, so no token is lost or repeated whatever the map batch size
or `num_proc`; only the very last block is padded (the loss masks pad labels). Without a validation set,
the last blocks of the stream are held out, so the two sets never share a block.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, Features, List, Value
from transformers import PreTrainedTokenizerFast

from ..console import datasets_bars_off
from ..errors import HfGptError
from ..files import short_hash

TOKENIZE_BATCH_SIZE = 1000  # documents per `map` batch
_READ_BATCH = 1000  # tokenized documents read per packing step; bounds memory


@dataclass(frozen=True)
class Split:
    """One split's token stream: where it comes from, what identifies it, and how to read it in chunks."""

    origin: str  # for messages
    fingerprint: str
    read: Callable[[Path, str], Iterator[np.ndarray]]  # (work folder, split name) -> int32 chunks of the stream


def build(work: Path, train_split: Split, valid_split: Split | None, pad_id: int, valid_fraction: float,
           seq_len: int) -> dict[str, int]:
    """Write the packed splits to `work/out` (a `DatasetDict`) and return the facts to keep with them."""
    train, train_tokens, padded = pack(train_split.read(work, "train"), seq_len, pad_id,
                                        work / "train-blocks.arrow")
    if valid_split is not None:
        valid, valid_tokens, valid_padded = pack(valid_split.read(work, "valid"), seq_len, pad_id,
                                                  work / "valid-blocks.arrow")
        padded += valid_padded
    else:
        n_blocks = len(train)
        if n_blocks < 2:
            raise HfGptError(
                f"{train_split.origin} gives only {train_tokens} tokens, fewer than 2 blocks of --seq-len "
                f"{seq_len}, so no block can be held out for validation. Use a shorter --seq-len, more "
                "text, or a separate --valid set."
            )
        n_valid = min(n_blocks - 1, max(1, math.ceil(valid_fraction * n_blocks)))
        n_train = n_blocks - n_valid
        # The held-out blocks are the tail of the stream: contiguous, and sharing no block with train.
        train, valid = train.select(range(n_train)), train.select(range(n_train, n_blocks))
        train_tokens, valid_tokens = n_train * seq_len, train_tokens - n_train * seq_len
    with datasets_bars_off():  # the packing line says what was saved
        DatasetDict(train=train, valid=valid).save_to_disk(str(work / "out"))  # single process: see PITFALLS
    return {"seq_len": seq_len, "train_tokens": train_tokens, "valid_tokens": valid_tokens,
            "padded_tokens": padded}


def tokenize(raw: Dataset, tokenizer: PreTrainedTokenizerFast, work: Path, name: str,
              num_proc: int) -> Dataset:
    """Every document's token ids followed by EOS, one row per document, in document order."""
    backend, eos_id = tokenizer.backend_tokenizer, tokenizer.eos_token_id

    def encode(batch: dict[str, list[str | None]]) -> dict[str, list[list[int]]]:
        texts = [text or "" for text in batch["text"]]
        encodings = backend.encode_batch_fast(texts, add_special_tokens=False)
        return {"input_ids": [[*encoding.ids, eos_id] for encoding in encodings]}

    return raw.map(
        encode,
        batched=True,
        batch_size=TOKENIZE_BATCH_SIZE,
        num_proc=num_proc if num_proc > 1 else None,
        remove_columns=raw.column_names,
        features=Features({"input_ids": List(Value("int32"))}),
        # An explicit file and fingerprint in the throwaway work folder: no dill hashing of the tokenizer.
        cache_file_name=str(work / f"{name}-tokens.arrow"),
        new_fingerprint=short_hash([work.name, name]),
        desc=f"tokenizing {name}",
    )


def documents(tokens: Dataset, origin: str) -> Iterator[np.ndarray]:
    """The tokenized documents as one stream, batch by batch; fails when every document was empty."""
    n_tokens = 0
    for batch in tokens.with_format("arrow").iter(batch_size=_READ_BATCH):
        chunk = pc.list_flatten(batch["input_ids"]).to_numpy()
        n_tokens += len(chunk)
        yield chunk
    if n_tokens == len(tokens):  # nothing but the EOS appended to each document
        raise HfGptError(f"{origin} holds no text at all: every document is empty. Give it some text.")


def pack(chunks: Iterable[np.ndarray], seq_len: int, pad_id: int, path: Path) -> tuple[Dataset, int, int]:
    """Cut the concatenated token stream into `seq_len` blocks, padding only the last one.

    Returns the blocks (memory-mapped from `path`), the real token count and the padding count.
    """
    schema = Features({"input_ids": List(Value("int32"), length=seq_len)}).arrow_schema
    carry = np.empty(0, dtype=np.int32)  # the stream's tail that does not fill a block yet
    n_tokens = 0
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:

        def write(stream: np.ndarray) -> None:  # stream: (k * seq_len,) int32
            blocks = pa.FixedSizeListArray.from_arrays(pa.array(stream, type=pa.int32()), seq_len)
            writer.write_batch(pa.record_batch([blocks], schema=schema))

        for chunk in chunks:
            stream = np.concatenate([carry, chunk])
            n_tokens += len(chunk)
            cut = len(stream) // seq_len * seq_len
            if cut:
                write(stream[:cut])
            carry = stream[cut:]
        n_padded = (seq_len - len(carry)) % seq_len
        if len(carry):
            write(np.concatenate([carry, np.full(n_padded, pad_id, dtype=np.int32)]))
    return Dataset.from_file(str(path)), n_tokens, n_padded
