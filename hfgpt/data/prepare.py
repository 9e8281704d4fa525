"""Raw text or token shards in, fixed-length token blocks out: memory-mapped Arrow data, built once and cached.

`prepare_data` takes the train (and optional validation) text that `hfgpt.data.sources` finds, checks
and loads (local files, a `load_dataset` dataset, or the default corpus), trains or reuses a
tokenizer on the training text, tokenizes every document with EOS appended, and packs the token
stream into blocks of `seq_len` tokens:

    doc1 EOS doc2 EOS doc3 ... EOS PAD PAD      ->  [b0][b1][b2]...[b(n-1)]

Binary shards (nanoGPT's train.bin/val.bin, see `hfgpt.data.shards`) are token ids already: their
stream is packed as it is, with the tokenizer their meta.json describes, and never re-tokenized.
A caller may supply the tokenizer (a continued run's, a forked model's) instead of a trained one.
Blocks are cut from one continuous stream, so no token is lost or repeated whatever the map
batch size or `num_proc`; only the very last block is padded (the trainer masks pad labels).
Without a validation set, the last blocks of the stream are held out, so the two sets never
share a block. The result lives under `<cache>/packed/<key>/`, where the key hashes everything
that shapes it, so a later run (or another rank after `main_process_first`) reuses it without
reading any text. A rebuild (--reset, or a cache that cannot be read) deletes only that folder and
its own work folder beside it, never through a symlink: a linked entry is refused, not replaced.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
from datasets import Dataset, load_from_disk
from transformers import PreTrainedTokenizerFast

from ..config import DataSection
from ..errors import HfGptError, error_summary
from ..files import publish, refuse_linked_cache, remove_made, short_hash
from .packing import Split, build, documents, tokenize
from .shards import Shards, find_shards, shard_fingerprint, shard_ids, shard_tokenizer
from .sources import Source, find_sources, fingerprint, load_source, texts
from .tokenization import check_tokenizer_kind, load_or_train_tokenizer

FORMAT_VERSION = 1  # bump when the packed layout changes, so old caches are rebuilt
_PACKED = re.compile(r"[0-9a-f]{16}")  # <cache>/packed/<key>: sources.short_hash of what shapes the blocks
_WORK = re.compile(rf"\.{_PACKED.pattern}-\w+")  # tempfile.mkdtemp(prefix=".<key>-") beside them


@dataclass
class PreparedData:
    """The tokenizer and the packed blocks, `(n, seq_len)` int arrays via `ds[indices]["input_ids"]`."""

    tokenizer: PreTrainedTokenizerFast
    train: Dataset
    valid: Dataset
    cache_dir: Path  # the packed data folder
    reused: bool  # loaded from the cache rather than built by this call
    seq_len: int
    train_tokens: int  # real tokens (EOS included, padding excluded)
    valid_tokens: int
    padded_tokens: int  # pad tokens filling the last block of a stream

    def summary(self) -> str:
        return (
            f"{len(self.train):,} train + {len(self.valid):,} valid blocks of {self.seq_len} tokens "
            f"({self.train_tokens:,} + {self.valid_tokens:,} tokens, {self.padded_tokens} padding), "
            f"vocabulary {len(self.tokenizer):,}, {'reused' if self.reused else 'built'} {self.cache_dir}"
        )


def cache_root(cache_dir: str = "") -> Path:
    """`cache_dir`, else `$HFGPT_CACHE`, else `~/.cache/hfgpt`."""
    return Path(cache_dir or os.environ.get("HFGPT_CACHE") or "~/.cache/hfgpt").expanduser()


def prepare_data(cfg: DataSection, seq_len: int, log: Callable[[str], None] = print,
                 tokenizer: PreTrainedTokenizerFast | None = None) -> PreparedData:
    """Return the tokenizer and packed train/valid blocks for `cfg`, building what is not cached.

    A given `tokenizer` (a continued run's, a forked model's, a ready one) is used as it is instead of a trained
    one; with binary shards it must agree with their meta.json.
    """
    if tokenizer is None:
        check_tokenizer_kind(cfg.tokenizer)
    if seq_len < 1:
        raise HfGptError(f"--seq-len must be at least 1 token, got {seq_len}.")
    root = cache_root(cfg.cache_dir)
    shards = find_shards(cfg)
    given_for_text = tokenizer is not None and shards is None  # may not know every character of the text
    if shards is None:
        tokenizer, train, valid = _text_splits(cfg, root, tokenizer, log)
    else:
        tokenizer = shard_tokenizer(shards, tokenizer)
        train, valid = _shard_splits(shards)
        log(f"reading token ids from {shards.train}" + (f" and {shards.valid}" if shards.valid else "")
            + f" as {shards.meta.path} describes; they are not re-tokenized")
    key = short_hash({
        "format": FORMAT_VERSION,
        "train": train.fingerprint,
        "valid": valid.fingerprint if valid else None,
        "valid_fraction": None if valid else cfg.valid_fraction,
        "tokenizer": short_hash(tokenizer.backend_tokenizer.to_str()),
        "seq_len": seq_len,
    })
    folder = root / "packed" / key
    if folder.is_dir() and not cfg.reset:
        try:
            data = _open(folder, tokenizer, reused=True)
            log(f"reusing packed data from {folder}")
            return data
        except Exception as error:  # datasets and pyarrow raise many kinds; a cache is rebuilt, never trusted
            warnings.warn(f"the packed data cached in {folder} cannot be read ({error_summary(error)}); "
                          "building it again.", stacklevel=2)

    log(f"{'packing' if shards else 'tokenizing and packing'} {train.origin} into blocks of {seq_len} tokens ...")
    data = _open(_build_cache(folder, train, valid, tokenizer.pad_token_id, cfg.valid_fraction, seq_len), tokenizer,
                 reused=False)
    log(f"packed {data.summary()}")
    if given_for_text:
        _warn_of_unknown_tokens(data)
    return data


def _build_cache(folder: Path, train: Split, valid: Split | None, pad_id: int, valid_fraction: float,
                 seq_len: int) -> Path:
    """Pack into a work folder beside `folder` and publish it as `folder`, replacing a cache being rebuilt."""
    refuse_linked_cache(folder, "packed data")
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        facts = build(work, train, valid, pad_id, valid_fraction, seq_len)
        (work / "out" / "facts.json").write_text(json.dumps(facts))
        remove_made(folder, _PACKED)  # --reset, or a damaged cache
        publish(work / "out", folder)  # if another process was first: identical inputs, identical blocks
    finally:
        remove_made(work, _WORK, ignore_errors=True)
    return folder


def _warn_of_unknown_tokens(data: PreparedData) -> None:
    """A forked or continued run's tokenizer maps what it never saw to unk; say how much of the text that is."""
    unk = data.tokenizer.unk_token_id
    if unk is None or not data.train_tokens:
        return
    ids = pc.list_flatten(data.train.data.column("input_ids"))
    unknown = pc.sum(pc.equal(ids, unk)).as_py() or 0
    if unknown > data.train_tokens / 1000:
        warnings.warn(
            f"{unknown:,} of the {data.train_tokens:,} training tokens ({unknown / data.train_tokens:.1%}) are "
            f"{data.tokenizer.unk_token}: the text holds characters that the given tokenizer (of the run or model "
            "it starts from) never saw, so the model can neither learn nor write them. Train a new run with its "
            "own tokenizer if they matter.", stacklevel=2)


def _text_splits(cfg: DataSection, root: Path, tokenizer: PreTrainedTokenizerFast | None,
                 log: Callable[[str], None]) -> tuple[PreTrainedTokenizerFast, Split, Split | None]:
    """The tokenizer (given, or trained on the training text) and the text splits, tokenized when read."""
    train_src, valid_src = find_sources(cfg)

    @cache
    def load(src: Source) -> Dataset:
        return load_source(src, cfg.text_column, root / "datasets")

    train_fp = fingerprint(train_src, load, cfg.text_column)
    if tokenizer is None:
        tokenizer = load_or_train_tokenizer(
            cfg.tokenizer, lambda: texts(load(train_src)), fingerprint=train_fp,
            cache_dir=root / "tokenizers", vocab_size=cfg.vocab_size, reset=cfg.reset, log=log,
        )

    def split(src: Source, fp: str) -> Split:
        def read(work: Path, name: str) -> Iterator[np.ndarray]:
            return documents(tokenize(load(src), tokenizer, work, name, cfg.num_proc), src.origin)
        return Split(src.origin, fp, read)

    valid = split(valid_src, fingerprint(valid_src, load, cfg.text_column)) if valid_src else None
    return tokenizer, split(train_src, train_fp), valid


def _shard_splits(shards: Shards) -> tuple[Split, Split | None]:
    """The shards as splits: their ids are the stream, read in place."""
    def split(path: Path) -> Split:
        return Split(f"the shard {path}", shard_fingerprint(path, shards.meta),
                      lambda work, name: shard_ids(path, shards))

    return split(shards.train), split(shards.valid) if shards.valid else None


def _open(folder: Path, tokenizer: PreTrainedTokenizerFast, reused: bool) -> PreparedData:
    splits = load_from_disk(str(folder))
    facts = json.loads((folder / "facts.json").read_text())
    return PreparedData(
        tokenizer=tokenizer,
        train=splits["train"].with_format("numpy"),
        valid=splits["valid"].with_format("numpy"),
        cache_dir=folder,
        reused=reused,
        **facts,
    )


