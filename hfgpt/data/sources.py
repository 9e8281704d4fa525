"""Where the raw text comes from: finding, checking and loading it, and fingerprinting it cheaply.

The `train`, `valid`, `datadir` and `dataset` flags of a `DataSection` name local files and
folders (.txt, .jsonl, .parquet), a `load_dataset` dataset (Hub id or local folder), or nothing,
which means the default corpus. `find_sources` turns them into one `Source` per split,
`load_source` reads a source with `datasets` as a single `text` column, one row per document, and
`fingerprint` identifies the text without reading it, for cache keys. Bad input (a missing, empty,
binary or non-UTF-8 file, a missing text column, contradictory flags) is an `HfGptError` that
names the culprit and the fix, raised before `datasets` can fail on it with an opaque error.
Binary shards of token ids (nanoGPT's .bin files) are not text: `hfgpt.shards` finds and reads
them, and `hfgpt.data` asks it first.
"""

from __future__ import annotations

import codecs
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset, Value, concatenate_datasets, load_dataset

from ..config import DataSection
from ..console import datasets_bars_off
from ..errors import HfGptError
from ..files import short_hash
from .corpus import default_corpus_files

_READ_BATCH = 1000  # documents read per step of `texts`; bounds memory
_BUILDERS = {".txt": "text", ".jsonl": "json", ".parquet": "parquet"}  # suffix -> datasets builder


@dataclass(frozen=True)
class Source:
    """Where one split's raw text comes from: local files, or a split of a `load_dataset` dataset."""

    origin: str  # the flag that named it, for messages
    files: tuple[Path, ...] = ()
    dataset: str = ""
    dataset_config: str = ""
    split: str = ""


def _builder(path: Path) -> str:
    """The `datasets` builder of a file; the default corpus's `.py` files are plain text."""
    return _BUILDERS.get(path.suffix.lower(), "text")


# ----------------------------------------------------------------------------- finding the text


def find_sources(cfg: DataSection) -> tuple[Source, Source | None]:
    """Resolve the train and (optional) validation sources, failing early on contradictions."""
    datadir = Path(cfg.datadir).expanduser()
    if cfg.train and cfg.dataset:
        raise HfGptError(
            f"Both --train ({cfg.train!r}) and --dataset ({cfg.dataset!r}) are set; they are alternative "
            "sources of training text. Keep one of them."
        )
    if cfg.valid_split and not cfg.dataset:
        raise HfGptError(
            f"--valid-split {cfg.valid_split!r} names a split of --dataset, but no --dataset is set. "
            "Use --valid for local validation files, or leave both empty to hold out --valid-fraction."
        )
    if cfg.valid and cfg.valid_split:
        raise HfGptError(
            f"Both --valid ({cfg.valid!r}) and --valid-split ({cfg.valid_split!r}) are set; keep one of them."
        )

    if cfg.dataset:
        name = _dataset_name(cfg.dataset, datadir)
        train = Source(f"--dataset {cfg.dataset}", dataset=name, dataset_config=cfg.dataset_config,
                       split=cfg.train_split)
    elif cfg.train:
        train = Source(f"--train {cfg.train}", files=_local_files(cfg.train, datadir, "--train"))
    else:
        files = default_corpus_files()
        if not files:
            raise HfGptError(
                "No training text: --train and --dataset are empty and the default corpus (the top-level "
                "*.py files of this Python's standard library) has no files here. Pass --train."
            )
        train = Source("the default corpus (Python standard library)", files=tuple(files))

    if cfg.valid:
        return train, Source(f"--valid {cfg.valid}", files=_local_files(cfg.valid, datadir, "--valid"))
    if cfg.valid_split:
        return train, Source(f"--dataset {cfg.dataset} --valid-split {cfg.valid_split}",
                             dataset=train.dataset, dataset_config=cfg.dataset_config, split=cfg.valid_split)
    return train, None


def _dataset_name(dataset: str, datadir: Path) -> str:
    """A local dataset folder (relative to --datadir) as an absolute path, else the Hub id as given."""
    local = datadir / Path(dataset).expanduser()
    if local.exists():
        return str(local.resolve())
    if dataset.startswith((".", "/", "~")):
        raise HfGptError(
            f"--dataset {dataset!r} looks like a local folder but {local} does not exist. Fix the path "
            "(relative paths start at --datadir), or give a Hub dataset id such as 'owner/name'."
        )
    return dataset


def _local_files(spec: str, datadir: Path, flag: str) -> tuple[Path, ...]:
    """Expand a comma-separated list of files and folders into the data files, in a stable order."""
    files: list[Path] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        path = datadir / Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _BUILDERS)
            if not found:
                raise HfGptError(
                    f"The folder {path} (from {flag}) holds no .txt, .jsonl or .parquet file. "
                    "Put the text files in it, or point " + flag + " at the files themselves."
                )
            files.extend(found)
        elif path.is_file():
            if path.suffix.lower() not in _BUILDERS:
                raise HfGptError(
                    f"{path} (from {flag}) has an unsupported extension {path.suffix!r}. hfgpt reads .txt "
                    "(one document per file), .jsonl and .parquet (text in --text-column) files and "
                    "folders of them; convert the file or rename it if it is plain UTF-8 text."
                )
            files.append(path)
        else:
            raise HfGptError(
                f"{path} (from {flag} {item!r}, relative to --datadir {str(datadir)!r}) does not exist. "
                "Check the spelling, or set --datadir to the folder that holds it."
            )
    if not files:
        raise HfGptError(f"{flag} {spec!r} names no file; give comma-separated files or folders.")
    return tuple(p.resolve() for p in files)


def fingerprint(src: Source, load: Callable[[Source], Dataset], text_column: str) -> str:
    """Identify the raw text cheaply, so a cached tokenizer or packed set is reused without reading it.

    Local files count by path, size and mtime; a dataset by `datasets`' own fingerprint, which
    follows Hub revisions and local file changes (`load` is only called for a dataset).
    """
    if src.dataset:
        return short_hash(["dataset", load(src)._fingerprint])
    column = text_column if any(_builder(p) != "text" for p in src.files) else ""
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in src.files]
    return short_hash(["files", column, stats])


# ----------------------------------------------------------------------------- loading the text


def load_source(src: Source, text_column: str, cache_dir: Path) -> Dataset:
    """Load a source with `datasets` as a single `text` column, one row per document.

    Every local file is checked first, so bad input is an `HfGptError` naming the file, not a
    `datasets` traceback; `cache_dir` is where `datasets` keeps its own cache.
    """
    if src.dataset:
        try:
            dataset = load_dataset(src.dataset, src.dataset_config or None, split=src.split,
                                   cache_dir=str(cache_dir))
        except (FileNotFoundError, ConnectionError, ValueError) as error:
            raise HfGptError(
                f"Could not load {src.origin} (config {src.dataset_config or 'default'!r}, split "
                f"{src.split!r}): {error} Check the Hub id or local folder, --dataset-config and the "
                "split names (--train-split, --valid-split); a Hub dataset needs internet the first time."
            ) from error
        parts = [_text_column(dataset, text_column, src.origin)]
    else:
        for path in src.files:
            _check_file(path, text_column)
        parts = []
        for builder, group in itertools.groupby(src.files, key=_builder):
            options = {"sample_by": "document"} if builder == "text" else {}  # a .txt file is one document
            with datasets_bars_off():  # local files: no download to show
                dataset = load_dataset(builder, data_files=[str(p) for p in group], split="train",
                                       cache_dir=str(cache_dir), **options)
            parts.append(_text_column(dataset, "text" if builder == "text" else text_column, src.origin))
    dataset = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    if len(dataset) == 0:
        raise HfGptError(f"{src.origin} holds no documents. Give it some text.")
    return dataset


def _text_column(dataset: Dataset, column: str, origin: str) -> Dataset:
    if column not in dataset.column_names:
        raise HfGptError(
            f"{origin} has no column {column!r}; its columns are {dataset.column_names}. "
            "Set --text-column to the one that holds the text."
        )
    feature = dataset.features[column]
    if feature not in (Value("string"), Value("large_string")):
        raise HfGptError(f"Column {column!r} of {origin} holds {feature}, not text; set --text-column.")
    dataset = dataset.select_columns([column])
    if column != "text":
        dataset = dataset.rename_column(column, "text")
    return dataset.cast_column("text", Value("string")) if feature != Value("string") else dataset


def _check_file(path: Path, text_column: str) -> None:
    """Name the culprit file before `datasets` fails on it with an opaque error."""
    if path.stat().st_size == 0:
        raise HfGptError(f"{path} is empty. Put text in it or leave it out of --train/--valid.")
    if _builder(path) == "parquet":
        try:
            columns = pq.read_schema(path).names
        except pa.ArrowInvalid as error:
            raise HfGptError(f"{path} is not a readable Parquet file ({error}). Re-export it.") from error
        _check_column(path, text_column, columns)
        return
    problem = _utf8_problem(path)
    if problem:
        raise HfGptError(
            f"{path} is not UTF-8 text: {problem}. It looks binary or uses another encoding; convert it "
            "to UTF-8 (e.g. `iconv -t utf-8`) or leave it out of --train/--valid."
        )
    if _builder(path) == "json":
        with open(path, encoding="utf-8") as file:
            first = next((line for line in file if line.strip()), "")
        try:
            record = json.loads(first)
        except json.JSONDecodeError as error:
            raise HfGptError(f"{path} is not JSON Lines: its first record is invalid ({error}).") from error
        _check_column(path, text_column, list(record) if isinstance(record, dict) else [])


def _utf8_problem(path: Path) -> str:
    """Why the file is not UTF-8 text (NUL bytes, invalid bytes), or "" when it is; reads it in chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes fed to the decoder so far
    with open(path, "rb") as file:
        while True:
            chunk = file.read(1 << 20)
            nul = chunk.find(b"\0")
            if nul >= 0:
                return f"it has a NUL byte at byte {offset + nul}"
            pending = len(decoder.getstate()[0])  # an unfinished multi-byte character from the last chunk
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                return f"byte {offset - pending + error.start} is invalid ({error.reason})"
            if not chunk:
                return ""
            offset += len(chunk)


def _check_column(path: Path, column: str, found: list[str]) -> None:
    if column not in found:
        raise HfGptError(
            f"{path} has no column {column!r}; its columns are {found}. "
            "Set --text-column to the one that holds the text."
        )


def texts(dataset: Dataset) -> Iterator[str]:
    """The documents of a loaded source, batch by batch, so a tokenizer can train on a large corpus."""
    for batch in dataset.iter(batch_size=_READ_BATCH):
        yield from (text or "" for text in batch["text"])
