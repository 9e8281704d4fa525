"""A mixture's data: each training source and each validation set packed on its own, under its own cache key, with
one tokenizer for all of them; then the sources' blocks side by side as one memory-mapped table (no copy), each
source a `Part` of it.

The tokenizer is the one given (a ready tokenizer, a continued or forked run's), else that of a .bin source's
meta.json, else char or bpe trained on all training sources together: the tokenizer of `--train a,b` without
weights, so weights never change it. A source's blocks depend only on its text, the tokenizer and the block
shape, so a changed weight re-tokenizes nothing and an added source is tokenized alone; with a tokenizer trained on
the sources, though, an added source trains a new tokenizer, and every source is tokenized again with it.
Without `--valid`, each source holds out `--valid-fraction` of its own blocks as its validation set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from datasets import concatenate_datasets
from transformers import PreTrainedTokenizerFast

from ..config import DataSection
from ..errors import HfGptError
from ..files import short_hash
from .mixture import NamedPath, mixture_sources, validation_sets
from .mixture_stream import MixedStream
from .prepared import Part, PreparedData
from .shards import find_shards, shard_tokenizer
from .sources import Source, find_sources, listed_files
from .streaming import stream_tokenizer
from .texts import union_tokenizer


class PrepareOne(Protocol):
    def __call__(self, cfg: DataSection, seq_len: int, log: Callable[[str], None],
                 tokenizer: PreTrainedTokenizerFast | None, evaluate: str = "") -> PreparedData: ...


def is_mixture(cfg: DataSection) -> bool:
    """Whether `cfg` mixes weighted sources or evaluates several validation sets, each on its own."""
    return bool(mixture_sources(cfg.train)) or len(validation_sets(cfg.valid)) > 1


def prepare_mixture(cfg: DataSection, seq_len: int, log: Callable[[str], None],
                    tokenizer: PreTrainedTokenizerFast | None, root: Path, prepare_one: PrepareOne) -> PreparedData:
    """Pack every source and validation set (`prepare_one`, each from its own cache) and put them side by side."""
    sources, sets = mixture_sources(cfg.train), validation_sets(cfg.valid)
    if cfg.streaming and cfg.max_epochs_per_source:
        raise HfGptError(f"--max-epochs-per-source {cfg.max_epochs_per_source:g} caps a source by its size, which a "
                         "stream does not know in advance. Leave it out with --streaming, or drop --streaming.")
    if sources and cfg.dataset:
        raise HfGptError(f"Both weighted --train sources and --dataset ({cfg.dataset!r}) are set; a mixture reads "
                         "local sources. Keep one of them.")
    datadir = Path(cfg.datadir).expanduser()
    for item in [*sources, *sets]:  # every path checked before anything is read (a .bin shard: by its reader)
        if item.path and (item.schedule is None or find_shards(dataclasses.replace(cfg, train=item.path)) is None):
            listed_files(item.path, datadir, "--valid" if item.schedule is None else "--train")
    plain, fraction = dataclasses.replace(cfg, valid=""), 0.0 if sets else cfg.valid_fraction
    if sources:
        tokenizer = tokenizer or _shared_tokenizer(plain, sources, root, log)
        for source in sources:  # a .bin source of another vocabulary is refused before any text is tokenized
            shards = find_shards(dataclasses.replace(plain, train=source.path))
            if shards is not None:
                shard_tokenizer(shards, tokenizer)
    trains = []
    for source in sources or [NamedPath("", cfg.train)]:  # with validation sets, a source trains on all its blocks
        packed = prepare_one(dataclasses.replace(plain, train=source.path, valid_fraction=fraction), seq_len, log,
                             tokenizer)
        tokenizer = packed.tokenizer  # a plain source's, trained by the first call
        trains.append((source.name, packed))
    valids = [(item.name, prepare_one(dataclasses.replace(plain, train="", valid=item.path, streaming=False),
                                      seq_len, log, tokenizer, evaluate="--valid")) for item in sets] or trains
    schedules = tuple(source.schedule for source in sources if source.schedule)
    streams = [d.stream for _, d in trains]
    data = PreparedData(
        tokenizer=tokenizer, train=concatenate_datasets([d.train for _, d in trains]).with_format("numpy"),
        valid=concatenate_datasets([d.valid for _, d in valids]).with_format("numpy"),
        cache_dir=root / ("streamed" if cfg.streaming else "packed"),
        reused=all(d.reused for _, d in trains + valids), seq_len=seq_len,
        train_tokens=sum(d.train_tokens for _, d in trains), valid_tokens=sum(d.valid_tokens for _, d in valids),
        padded_tokens=sum(d.padded_tokens for _, d in trains + valids),
        train_parts=_parts([(name, len(d.train), d.train_tokens) for name, d in trains]) if sources and
        not cfg.streaming else (), valid_parts=_parts([(name, len(d.valid), d.valid_tokens) for name, d in valids]),
        schedules=schedules, key=short_hash([[name, d.cache_dir.name] for name, d in trains + valids]),
        stream=(MixedStream(tuple(s.name for s in sources), tuple(streams), schedules) if sources else streams[0])
        if cfg.streaming else None)
    log(f"mixed {data.summary()}")
    return data


def _shared_tokenizer(cfg: DataSection, sources: list[NamedPath], root: Path,
                      log: Callable[[str], None]) -> PreTrainedTokenizerFast:
    """The tokenizer every source is tokenized with: a .bin source's (the first one's), else trained on them all
    (read only if it is not cached)."""
    for source in sources:
        shards = find_shards(dataclasses.replace(cfg, train=source.path))
        if shards is not None:
            log(f"the mixture uses the tokenizer of {shards.meta.path} (source {source.name!r}, a .bin shard); "
                "every other source is tokenized with it")
            return shard_tokenizer(shards)
    files = [path for source in sources for path in find_sources(dataclasses.replace(cfg, train=source.path))[0].files]
    union = Source("the mixture's sources", files=tuple(files))
    if cfg.streaming:  # as a stream of them all would: on its first --tokenizer-sample MB (bpe), or all of it
        return stream_tokenizer(cfg, union, root, log)
    return union_tokenizer(cfg, union, root, log)


def _parts(sizes: list[tuple[str, int, int]]) -> tuple[Part, ...]:
    """(name, blocks, tokens) of each source, side by side in one table."""
    parts, start = [], 0
    for name, blocks, tokens in sizes:
        if not blocks:
            raise HfGptError(f"The source {name!r} packs into no block at all; give it more text.")
        parts.append(Part(name, start, start + blocks, tokens))
        start += blocks
    return tuple(parts)


__all__ = ["is_mixture", "prepare_mixture"]
