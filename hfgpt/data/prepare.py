"""Raw text or token shards in, fixed-length token blocks out: memory-mapped Arrow shards, built once and cached.

`prepare_data` takes the train (and optional validation) text that `hfgpt.data.sources` finds, checks
and opens (local files, a `load_dataset` dataset, or the default corpus), trains or reuses a
tokenizer on the training text (`--tokenizer-sample` MB of it at most), tokenizes every document with EOS
appended, and packs the token stream into blocks of `seq_len` tokens (hfgpt.data.packing):

    doc1 EOS doc2 EOS doc3 ... EOS PAD PAD      ->  [b0][b1][b2]...[b(n-1)]

A .txt file is read and tokenized in chunks cut where the tokenizer would cut anyway (hfgpt.data.chunking),
in `--num-proc` processes (hfgpt.data.encoding), so memory stays flat whatever the size of the file.
Binary shards (nanoGPT's train.bin/val.bin, see `hfgpt.data.shards`) are token ids already: their
stream is packed as it is, with the tokenizer their meta.json describes, and never re-tokenized.
A caller may supply the tokenizer (a continued run's, a forked model's) instead of a trained one.
The result lives under `<cache>/packed/<key>/`, where the key hashes everything that shapes the blocks (and
nothing of how they are stored, so a run knows its data by the same key across versions), so a later run
(or another process after `prepare_in_turn`) reuses it without reading any text. A rebuild (--reset, or a
cache that cannot be read) deletes only that folder and its own work folder beside it, never through a
symlink: a linked entry is refused, not replaced. `--streaming` packs nothing: see hfgpt.data.streaming.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from datasets import load_from_disk
from transformers import PreTrainedTokenizerFast

from ..config import DataSection
from ..errors import HfGptError, error_summary
from ..files import publish, refuse_linked_cache, remove_made, short_hash
from .mixture_data import is_mixture, prepare_mixture
from .packing import Split, build, open_split
from .prepared import PreparedData
from .shards import Shards, find_shards, shard_fingerprint, shard_ids, shard_tokenizer
from .streaming import prepare_stream
from .texts import text_splits
from .tokenization import check_tokenizer_kind

FORMAT_VERSION = 1  # in the key: bump when the blocks of the same inputs change, so old caches are rebuilt
_PACKED = re.compile(r"[0-9a-f]{16}")  # <cache>/packed/<key>: sources.short_hash of what shapes the blocks
_WORK = re.compile(rf"\.{_PACKED.pattern}-\w+")  # tempfile.mkdtemp(prefix=".<key>-") beside them


def cache_root(cache_dir: str = "") -> Path:
    """`cache_dir`, else `$HFGPT_CACHE`, else `~/.cache/hfgpt`."""
    return Path(cache_dir or os.environ.get("HFGPT_CACHE") or "~/.cache/hfgpt").expanduser()


def prepare_data(cfg: DataSection, seq_len: int, log: Callable[[str], None] = print,
                 tokenizer: PreTrainedTokenizerFast | None = None, evaluate: str = "") -> PreparedData:
    """Return the tokenizer and packed train/valid blocks for `cfg`, building what is not cached.

    A given `tokenizer` (a continued run's, a forked model's, a ready one) is used as it is instead of a trained
    one; with binary shards it must agree with their meta.json. To `evaluate` a text (`hfgpt eval`'s --data, or
    one of a mixture's --valid sets: the flag that names it), only the validation text is read and packed, once
    and whole, and the training split is empty. Weighted sources or several validation sets are a mixture
    (hfgpt.data.mixture_data): each of them is prepared here, on its own.
    """
    if tokenizer is None:
        check_tokenizer_kind(cfg.tokenizer)
    if seq_len < 1:
        raise HfGptError(f"--seq-len must be at least 1 token, got {seq_len}.")
    root = cache_root(cfg.cache_dir)
    if not evaluate and is_mixture(cfg):
        return prepare_mixture(cfg, seq_len, log, tokenizer, root, prepare_data)
    shards = find_shards(cfg)
    if cfg.streaming:
        return prepare_stream(cfg, seq_len, root, log, tokenizer, shards)
    given_for_text = tokenizer is not None and shards is None  # may not know every character of the text
    tokenizer, train, valid, unknown = _splits(cfg, root, tokenizer, log, shards, evaluate)
    folder = root / "packed" / packed_key(cfg, train, valid, tokenizer, seq_len)
    if folder.is_dir() and not cfg.reset:
        try:
            data = _open(folder, tokenizer, reused=True)
            log(f"reusing packed data from {folder}")
            return data
        except Exception as error:  # datasets and pyarrow raise many kinds; a cache is rebuilt, never trusted
            warnings.warn(f"the packed data cached in {folder} cannot be read ({error_summary(error)}); "
                          "building it again.", stacklevel=2)

    log(f"{'packing' if shards else 'tokenizing and packing'} {(train or valid).origin} into blocks of {seq_len} "
        f"tokens{'' if train else ' to evaluate'} ...")
    data = _open(_build_cache(folder, train, valid, tokenizer.pad_token_id, cfg.valid_fraction, seq_len), tokenizer,
                 reused=False)
    log(f"packed {data.summary()}")
    if given_for_text:
        _warn_of_unknown_tokens(data, unknown.get("valid" if evaluate else "train", 0))
    return data


def _splits(cfg: DataSection, root: Path, tokenizer: PreTrainedTokenizerFast | None, log: Callable[[str], None],
            shards: Shards | None, evaluate: str) -> tuple[PreTrainedTokenizerFast, Split | None, Split | None,
                                                            dict[str, int]]:
    """The tokenizer, the splits to pack (to `evaluate`, the validation split alone), and the unknown tokens that
    reading the text counts."""
    if shards is None:
        text = text_splits(cfg, root, tokenizer, log, progress=datasets.is_progress_bar_enabled(), evaluate=evaluate)
        tokenizer, train, valid, unknown = text.tokenizer, text.train, text.valid, text.unknown
    else:
        tokenizer, (train, valid), unknown = shard_tokenizer(shards, tokenizer), _shard_splits(shards), {}
        train = None if evaluate else train
        read = [split.origin.removeprefix("the shard ") for split in (train, valid) if split]
        log(f"reading token ids from {' and '.join(read)} as {shards.meta.path} describes; they are not re-tokenized")
    if evaluate and valid is None:
        raise ValueError("prepare_data(evaluate=...) measures the validation text, and cfg names none")
    return tokenizer, train, valid, unknown


def packed_key(cfg: DataSection, train: Split | None, valid: Split | None, tokenizer: PreTrainedTokenizerFast,
               seq_len: int) -> str:
    """What shapes the blocks, hashed: the same inputs keep the key they had before (a run's data identity).
    Without `train`, the validation text alone, to evaluate."""
    inputs: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "train": train.fingerprint if train else None,
        "valid": valid.fingerprint if valid else None,
        "valid_fraction": None if valid else cfg.valid_fraction,
        "tokenizer": short_hash(tokenizer.backend_tokenizer.to_str()),
        "seq_len": seq_len,
    }
    if cfg.split_documents != "file":  # added later: absent at its default, so that older keys stand
        inputs["split_documents"] = cfg.split_documents
    return short_hash(inputs)


def _build_cache(folder: Path, train: Split | None, valid: Split | None, pad_id: int, valid_fraction: float,
                 seq_len: int) -> Path:
    """Pack into a work folder beside `folder` and publish it as `folder`, replacing a cache being rebuilt."""
    refuse_linked_cache(folder, "packed data")
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        facts = build(work / "out", train, valid, pad_id, valid_fraction, seq_len, work)
        (work / "out" / "facts.json").write_text(json.dumps(facts))
        remove_made(folder, _PACKED)  # --reset, or a damaged cache
        publish(work / "out", folder)  # if another process was first: identical inputs, identical blocks
    finally:
        remove_made(work, _WORK, ignore_errors=True)
    return folder


def _warn_of_unknown_tokens(data: PreparedData, unknown: int) -> None:
    """A forked or continued run's tokenizer (or an evaluated model's) maps what it never saw to unk; say how much
    of the text that is."""
    tokens, what = (data.valid_tokens, "evaluated") if data.evaluated_only else (data.train_tokens, "training")
    if unknown > tokens / 1000:
        warnings.warn(
            f"{unknown:,} of the {tokens:,} {what} tokens ({unknown / tokens:.1%}) are "
            f"{data.tokenizer.unk_token}: the text holds characters that the given tokenizer (of the run or model "
            "it starts from) never saw, so the model can neither learn nor write them. Train a new run with its "
            "own tokenizer if they matter.", stacklevel=2)


def _shard_splits(shards: Shards) -> tuple[Split, Split | None]:
    """The shards as splits: their ids are the stream, read in place."""
    def split(path: Path) -> Split:
        def read(work: Path, name: str) -> Iterator[np.ndarray]:
            return shard_ids(path, shards)
        return Split(f"the shard {path}", shard_fingerprint(path, shards.meta), read)

    return split(shards.train), split(shards.valid) if shards.valid else None


def _open(folder: Path, tokenizer: PreTrainedTokenizerFast, reused: bool) -> PreparedData:
    facts = json.loads((folder / "facts.json").read_text())
    if "layout" in facts:
        train, valid = (open_split(folder, facts["splits"][name]) for name in ("train", "valid"))
    else:  # written by hfgpt before the shards: one DatasetDict
        splits = load_from_disk(str(folder))
        train, valid = splits["train"], splits["valid"]
    counts = {key: facts[key] for key in ("seq_len", "train_tokens", "valid_tokens", "padded_tokens")}
    return PreparedData(tokenizer=tokenizer, train=train.with_format("numpy"), valid=valid.with_format("numpy"),
                        cache_dir=folder, reused=reused, **counts)


__all__ = ["PreparedData", "cache_root", "packed_key", "prepare_data"]
