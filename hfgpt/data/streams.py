"""A source's text as a `datasets` IterableDataset (for `--streaming`): examples `{"text": str, "end": bool}`,
where `end` says that a document ends with this text (an EOS follows it).

A dataset (a Hub id or a local folder) and .jsonl/.parquet files stream through `load_dataset(...,
streaming=True)`, one document per example; a .txt file streams in spans of about STREAM_SPAN bytes cut at
safe cuts (hfgpt.data.chunking), one shard per file, so that no example is ever a whole big file. Without a
validation set, `held_out` keeps back a `valid_fraction` of the examples, chosen by a hash of their text, so
the choice is the same in every process and for any number of them.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from datasets import Features, IterableDataset, Value, concatenate_datasets, load_dataset

from ..errors import HfGptError
from ..files import short_hash
from .checks import builder_of, check_file
from .chunking import documents, file_spans, read_span
from .sources import Source

STREAM_SPAN = 1 << 16  # bytes of a .txt file per example: a resumed stream re-reads at most this much of one
FEATURES = Features({"text": Value("string"), "end": Value("bool")})


def text_stream(src: Source, text_column: str, split_documents: str, cache_dir: Path,
                keep: Callable[[str], bool] | None = None) -> IterableDataset:
    """The source's text as a stream of `{"text", "end"}` examples, in order; with `keep`, only the examples
    whose text it keeps. (The filter goes before `_documents`' typed map: datasets 4.0 cannot filter after
    one, 'NoneType' object is not a mapping.)"""
    if src.dataset:
        try:
            stream = load_dataset(src.dataset, src.dataset_config or None, split=src.split, streaming=True,
                                  cache_dir=str(cache_dir))
        except (FileNotFoundError, ConnectionError, ValueError) as error:
            raise HfGptError(f"Could not stream {src.origin} (config {src.dataset_config or 'default'!r}, split "
                             f"{src.split!r}): {error} Check the Hub id or local folder, --dataset-config and the "
                             "split names (--train-split, --valid-split).") from error
        return _documents(stream, text_column, src.origin, keep)
    for path in src.files:
        check_file(path, text_column)
    parts = []
    for builder, group in itertools.groupby(src.files, key=builder_of):
        files = [str(path) for path in group]
        if builder == "text":
            part = IterableDataset.from_generator(_txt_examples, features=FEATURES, gen_kwargs={
                "paths": files, "blank_lines": split_documents == "blank-line"})
            parts.append(part.filter(lambda example: keep(example["text"])) if keep else part)
        else:
            stream = load_dataset(builder, data_files=files, split="train", streaming=True, cache_dir=str(cache_dir))
            parts.append(_documents(stream, text_column, src.origin, keep))
    return concatenate_datasets(parts) if len(parts) > 1 else parts[0]


def _documents(stream: IterableDataset, column: str, origin: str, keep: Callable[[str], bool] | None
               ) -> IterableDataset:
    """One document per example: the text column as `text`, and `end` always true."""
    if stream.column_names is not None and column not in stream.column_names:
        raise HfGptError(f"{origin} has no column {column!r}; its columns are {stream.column_names}. "
                         "Set --text-column to the one that holds the text.")
    columns = stream.column_names
    if keep:
        stream = stream.filter(lambda example: keep(example[column] or ""))
    return stream.map(lambda example: {"text": example[column] or "", "end": True},
                      remove_columns=columns, features=FEATURES)


def _txt_examples(paths: list[str], blank_lines: bool) -> Iterator[dict]:
    """The .txt files' text in spans cut at safe cuts; with `blank_lines`, split into its documents too."""
    for name in paths:
        path = Path(name)
        size = path.stat().st_size
        for start, end in file_spans(path, STREAM_SPAN):
            text = read_span(path, start, end)
            if not blank_lines:
                yield {"text": text, "end": end == size}
                continue
            parts = documents(text, start == 0)
            for index, part in enumerate(parts):
                ends = bool(part) and (index < len(parts) - 1 or end == size)
                if part or ends:
                    yield {"text": part, "end": ends}


def held_out(text: str, valid_fraction: float) -> bool:
    """Whether an example belongs to the validation text: its hash picks a `valid_fraction` of them."""
    return zlib.crc32(text.encode("utf-8")) % 1_000_000 < valid_fraction * 1_000_000


def stream_fingerprint(src: Source, text_column: str) -> str:
    """Identify a streamed source without reading it: local files and folders by path, size and mtime, a Hub
    dataset by its id, config and split (a stream follows the Hub's latest revision)."""
    local = Path(src.dataset) if src.dataset else None
    files = src.files if local is None else tuple(sorted(p for p in local.rglob("*") if p.is_file())) \
        if local.exists() else ()
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return short_hash(["stream", src.dataset, src.dataset_config, src.split, text_column, stats])
