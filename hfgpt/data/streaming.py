"""`--streaming`: no packed cache of the training text; each process tokenizes and packs its part of the stream
as it trains (hfgpt.data.stream_batches), for corpora bigger than the disk.

`prepare_stream` gives the run its tokenizer (given, or trained on the first `--tokenizer-sample` MB of the
stream) and its validation blocks, which are packed once into `<cache>/streamed/<key>/` (the folder's name is
the run's data identity, as a packed folder's is): the first VALID_TOKENS tokens of the `--valid` text or
`--valid-split`, else of the examples `held_out` keeps back from the training stream. `TokenStream` says how a
process opens its part: the training stream without the held-out examples, split over the processes by
`split_dataset_by_node`, so each process reads different text and the parts depend on the number of
processes (a run continues only on as many).
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
from datasets import Dataset, Features, IterableDataset, List, Value
from datasets.distributed import split_dataset_by_node
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

from ..config import DataSection
from ..errors import HfGptError
from ..files import publish, refuse_linked_cache, remove_made, short_hash
from .checks import failures_named
from .chunking import cuttable, pieces
from .packing import LAYOUT, ShardWriter, open_split
from .prepared import PreparedData
from .shards import Shards
from .sources import Source, find_sources, local_files
from .streams import held_out, stream_fingerprint, text_stream
from .tokenization import load_or_train_tokenizer

VALID_TOKENS = 1 << 20  # the most validation tokens read from a stream
MB = 1_000_000
_STREAMED = re.compile(r"[0-9a-f]{16}")  # <cache>/streamed/<key>
_WORK = re.compile(rf"\.{_STREAMED.pattern}-\w+")  # tempfile.mkdtemp(prefix=".<key>-") beside them


@dataclass(frozen=True)
class TokenStream:
    """How a process opens its part of the training stream, and how an example becomes ids."""

    source: Source
    cfg: DataSection
    datasets_cache: Path
    tokenizer: str  # tokenizer.json
    eos_id: int
    hold_out: bool  # keep the held-out examples back (no separate validation text)

    def part(self, rank: int, world_size: int) -> IterableDataset:
        fraction = self.cfg.valid_fraction
        stream = text_stream(self.source, self.cfg.text_column, self.cfg.split_documents, self.datasets_cache,
                             keep=(lambda text: not held_out(text, fraction)) if self.hold_out else None)
        return split_dataset_by_node(stream, rank=rank, world_size=world_size) if world_size > 1 else stream

    def encoder(self) -> Callable[[dict], np.ndarray]:
        return example_encoder(Tokenizer.from_str(self.tokenizer), self.eos_id)

    def failures_named(self) -> contextlib.AbstractContextManager[None]:
        """Around reading the stream: a damaged local file is named (`hfgpt.data.checks.failures_named`)."""
        return failures_named(local_files(self.source), self.cfg.text_column)


def example_encoder(tokenizer: Tokenizer, eos_id: int) -> Callable[[dict], np.ndarray]:
    """An example's ids, with EOS when it ends a document; cut into pieces where that changes no id."""
    cut = cuttable(tokenizer)

    def encode(example: dict) -> np.ndarray:
        texts = pieces(example["text"]) if cut else [example["text"]]
        encodings = tokenizer.encode_batch_fast(texts, add_special_tokens=False)
        ids = chain(chain.from_iterable(encoding.ids for encoding in encodings), [eos_id] if example["end"] else [])
        return np.fromiter(ids, dtype=np.int32)
    return encode


def prepare_stream(cfg: DataSection, seq_len: int, root: Path, log: Callable[[str], None],
                   tokenizer: PreTrainedTokenizerFast | None, shards: Shards | None) -> PreparedData:
    """The tokenizer, the validation blocks (cached) and the `TokenStream` of a streamed run."""
    if shards is not None:
        raise HfGptError("--streaming reads text, and --train names binary shards of token ids, which are read in "
                         "place already (memory-mapped, never loaded whole). Leave --streaming off for them.")
    train_src, valid_src = find_sources(cfg)
    datasets_cache = root / "datasets"
    train_fp = stream_fingerprint(train_src, cfg.text_column)
    tokenizer = tokenizer or stream_tokenizer(cfg, train_src, root, log)
    # valid_fraction 0: a mixture's source beside --valid sets, which holds nothing out and has no validation blocks
    stream = TokenStream(train_src, cfg, datasets_cache, tokenizer.backend_tokenizer.to_str(),
                         tokenizer.eos_token_id, hold_out=valid_src is None and cfg.valid_fraction > 0)
    key = short_hash({"streaming": 1, "train": train_fp, "tokenizer": short_hash(stream.tokenizer), "seq_len": seq_len,
                      "valid": stream_fingerprint(valid_src, cfg.text_column) if valid_src else None,
                      "valid_fraction": None if valid_src else cfg.valid_fraction,
                      "split_documents": cfg.split_documents})
    folder = root / "streamed" / key
    reused = (folder / "facts.json").is_file() and not cfg.reset
    if not (valid_src or stream.hold_out):
        empty = _empty_blocks()
        return PreparedData(tokenizer, empty, empty, folder, True, seq_len, 0, 0, 0, stream=stream)
    if not reused:
        log(f"streaming {train_src.origin}; packing the validation blocks into {folder} ...")
        valid = (text_stream(valid_src, cfg.text_column, cfg.split_documents, datasets_cache) if valid_src else
                 text_stream(train_src, cfg.text_column, cfg.split_documents, datasets_cache,
                             keep=lambda text: held_out(text, cfg.valid_fraction)))
        with failures_named(local_files(valid_src or train_src), cfg.text_column):
            _write_valid(folder, valid, stream, seq_len, tokenizer.pad_token_id)
    facts = json.loads((folder / "facts.json").read_text())
    data = PreparedData(tokenizer, _empty_blocks(), open_split(folder, facts["splits"]["valid"])
                        .with_format("numpy"), folder, reused, seq_len, 0, facts["valid_tokens"],
                        facts["padded_tokens"], stream=stream)
    log(f"{'reusing' if reused else 'packed'} {data.summary()}")
    return data


def stream_tokenizer(cfg: DataSection, train_src: Source, root: Path,
                     log: Callable[[str], None]) -> PreTrainedTokenizerFast:
    """The tokenizer trained on the first `--tokenizer-sample` MB of the training stream (bpe), or on all of it
    (char), from the cache when it was trained before."""
    budget = cfg.tokenizer_sample * MB if cfg.tokenizer == "bpe" else 0
    about = f" on the first {cfg.tokenizer_sample:,} MB of the stream" if budget else ""
    return load_or_train_tokenizer(
        cfg.tokenizer, lambda: _head(train_src, cfg.text_column, root / "datasets", budget),
        fingerprint=short_hash([stream_fingerprint(train_src, cfg.text_column), "head", budget]),
        cache_dir=root / "tokenizers", vocab_size=cfg.vocab_size, reset=cfg.reset, log=log, about=about)


def _empty_blocks() -> Dataset:
    """No blocks: a streamed run's training split, which the stream replaces."""
    empty = Dataset.from_dict({"input_ids": []}, features=Features({"input_ids": List(Value("int32"))}))
    return empty.with_format("numpy")


def _head(src: Source, text_column: str, datasets_cache: Path, budget: int) -> Iterator[str]:
    """The source's text streamed up to `budget` bytes (all of it when 0), for training a tokenizer."""
    seen = 0
    with failures_named(local_files(src), text_column):
        for example in text_stream(src, text_column, "file", datasets_cache):
            yield from pieces(example["text"], 1 << 16)
            seen += len(example["text"].encode("utf-8"))
            if budget and seen >= budget:
                return


def _write_valid(folder: Path, valid: IterableDataset, stream: TokenStream, seq_len: int, pad_id: int) -> None:
    """Pack the first VALID_TOKENS tokens of `valid` into `folder`, published whole."""
    refuse_linked_cache(folder, "validation blocks")
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        writer, encode = ShardWriter(work, "valid", seq_len, pad_id), stream.encoder()
        for example in valid:
            writer.add(encode(example)[: VALID_TOKENS - writer.tokens])
            if writer.tokens >= VALID_TOKENS:
                break
        entry = writer.close()
        if not entry["tokens"]:
            raise HfGptError("The stream holds no validation text: no example was held out of the training text "
                             f"(--valid-fraction {stream.cfg.valid_fraction}). Give --valid (or --valid-split), or "
                             "raise --valid-fraction.")
        split = {key: entry[key] for key in ("files", "start", "stop")}
        facts = {"layout": LAYOUT, "seq_len": seq_len, "valid_tokens": entry["tokens"],
                 "padded_tokens": entry["padded"], "splits": {"valid": split}}
        (work / "facts.json").write_text(json.dumps(facts))
        remove_made(folder, _STREAMED)  # --reset
        publish(work, folder)
    finally:
        remove_made(work, _WORK, ignore_errors=True)
