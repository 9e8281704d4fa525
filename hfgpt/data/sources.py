"""Where the raw text comes from: finding, checking and loading it, and fingerprinting it cheaply.

The `train`, `valid`, `datadir` and `dataset` flags of a `DataSection` name local files and
folders (.txt, .jsonl, .parquet), a `load_dataset` dataset (Hub id or local folder), or nothing,
which means the default corpus. `find_sources` turns them into one `Source` per split,
`load_parts` opens a source's text (.txt files stay on disk, to be read in chunks; other files and
datasets are loaded with `datasets` as a single `text` column, one row per document), and
`fingerprint` identifies the text without reading it, for cache keys. Bad input (a missing, empty,
binary or non-UTF-8 file, a missing text column, contradictory flags) is an `HfGptError` that
names the culprit and the fix (`hfgpt.data.checks`), raised before `datasets` can fail on it.
Binary shards of token ids (nanoGPT's .bin files) are not text: `hfgpt.shards` finds and reads
them, and `hfgpt.data` asks it first.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, load_dataset

from ..config import DataSection
from ..console import datasets_bars_off
from ..errors import HfGptError
from ..files import short_hash
from .checks import BUILDERS, builder_of, check_file, failures_named, text_column_of
from .corpus import default_corpus_files


@dataclass(frozen=True)
class Source:
    """Where one split's raw text comes from: local files, or a split of a `load_dataset` dataset."""

    origin: str  # the flag that named it, for messages
    files: tuple[Path, ...] = ()
    dataset: str = ""
    dataset_config: str = ""
    split: str = ""


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
        train = Source(f"--train {cfg.train}", files=listed_files(cfg.train, datadir, "--train"))
    else:
        files = default_corpus_files()
        if not files:
            raise HfGptError(
                "No training text: --train and --dataset are empty and the default corpus (the top-level "
                "*.py files of this Python's standard library) has no files here. Pass --train."
            )
        train = Source("the default corpus (Python standard library)", files=tuple(files))

    if cfg.valid:
        return train, Source(f"--valid {cfg.valid}", files=listed_files(cfg.valid, datadir, "--valid"))
    if cfg.valid_split:
        return train, Source(f"--dataset {cfg.dataset} --valid-split {cfg.valid_split}",
                             dataset=train.dataset, dataset_config=cfg.dataset_config, split=cfg.valid_split)
    return train, None


def find_evaluated(cfg: DataSection, flag: str = "--data") -> Source:
    """The text that is only evaluated, which the config names as the validation set: local files (`valid`) or a
    split of a dataset (`valid_split`). `flag` names it in messages: `hfgpt eval`'s --data, whose paths start at the
    current directory, or one of a run's --valid sets, whose paths start at --datadir."""
    if cfg.dataset:
        return Source(f"--dataset {cfg.dataset} --split {cfg.valid_split}", dataset=_dataset_name(cfg.dataset, Path()),
                      dataset_config=cfg.dataset_config, split=cfg.valid_split)
    datadir = Path(cfg.datadir).expanduser() if flag == "--valid" else None
    return Source(f"{flag} {cfg.valid}", files=listed_files(cfg.valid, datadir, flag))


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


def listed_files(spec: str, datadir: Path | None, flag: str) -> tuple[Path, ...]:
    """Expand a comma-separated list of files and folders into the data files, in a stable order; relative paths
    start at --datadir (None: a command without one, from the current directory)."""
    files: list[Path] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        path = (datadir or Path()) / Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in BUILDERS)
            if not found:
                raise HfGptError(
                    f"The folder {path} (from {flag}) holds no .txt, .jsonl or .parquet file. "
                    "Put the text files in it, or point " + flag + " at the files themselves."
                )
            files.extend(found)
        elif path.is_file():
            if path.suffix.lower() not in BUILDERS:
                raise HfGptError(
                    f"{path} (from {flag}) has an unsupported extension {path.suffix!r}. hfgpt reads .txt "
                    "(one document per file), .jsonl and .parquet (text in --text-column) files and "
                    "folders of them; convert the file or rename it if it is plain UTF-8 text."
                )
            files.append(path)
        elif datadir is None:
            raise HfGptError(f"{path} (from {flag} {item!r}) does not exist. Check the spelling; a relative path "
                             "starts at the current directory.")
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
    column = text_column if any(builder_of(p) != "text" for p in src.files) else ""
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in src.files]
    return short_hash(["files", column, stats])


# ----------------------------------------------------------------------------- loading the text


@dataclass(frozen=True)
class Part:
    """A stretch of a source's text in one form: .txt files, each one document read as it is on disk, or the
    rows of a dataset (one document each, in a `text` column, memory-mapped by `datasets`)."""

    files: tuple[Path, ...] = ()
    rows: Dataset | None = None


def load_parts(src: Source, text_column: str, cache_dir: Path) -> list[Part]:
    """A source's text, in order: runs of .txt files as they are, everything else loaded with `datasets`.

    Every local file is checked first, so bad input is an `HfGptError` naming the file, not a
    `datasets` traceback; `cache_dir` is where `datasets` keeps its own cache.
    """
    if src.dataset:
        return [Part(rows=load_dataset_rows(src, text_column, cache_dir))]
    for path in src.files:
        check_file(path, text_column)
    parts = []
    for builder, group in itertools.groupby(src.files, key=builder_of):
        files = tuple(group)
        if builder == "text":  # read in chunks by hfgpt.data.chunking, never whole
            parts.append(Part(files=files))
            continue
        with datasets_bars_off(), failures_named(files, text_column):  # local files: no download to show
            dataset = load_dataset(builder, data_files=[str(p) for p in files], split="train",
                                   cache_dir=str(cache_dir))
        parts.append(Part(rows=text_column_of(dataset, text_column, src.origin)))
    if all(part.rows is not None and len(part.rows) == 0 for part in parts):
        raise HfGptError(f"{src.origin} holds no documents. Give it some text.")
    return parts


def load_dataset_rows(src: Source, text_column: str, cache_dir: Path) -> Dataset:
    """The `text` column of a `load_dataset` dataset (a Hub id or a local folder)."""
    try:
        with failures_named(local_files(src), text_column):
            dataset = load_dataset(src.dataset, src.dataset_config or None, split=src.split, cache_dir=str(cache_dir))
    except (FileNotFoundError, ConnectionError, ValueError) as error:
        raise HfGptError(
            f"Could not load {src.origin} (config {src.dataset_config or 'default'!r}, split "
            f"{src.split!r}): {error} Check the Hub id or local folder, --dataset-config and the "
            "split names (--train-split, --valid-split); a Hub dataset needs internet the first time."
        ) from error
    dataset = text_column_of(dataset, text_column, src.origin)
    if len(dataset) == 0:
        raise HfGptError(f"{src.origin} holds no documents. Give it some text.")
    return dataset


def local_files(src: Source) -> list[Path]:
    """The local files a source reads: its own, or those of a dataset that is a local folder (none for a Hub id),
    where `failures_named` looks for the cause of a failed read."""
    folder = Path(src.dataset)
    if not src.dataset:
        return list(src.files)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in BUILDERS) \
        if folder.is_dir() else []
