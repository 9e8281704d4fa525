"""Raw text in, fixed-length token blocks out: memory-mapped Arrow data, built once and cached.

`prepare_data` finds the text (local files, a `load_dataset` dataset, or the default corpus),
loads it with `datasets`, trains or reuses a tokenizer on the training text, tokenizes every
document with EOS appended, and packs the token stream into blocks of `seq_len` tokens:

    doc1 EOS doc2 EOS doc3 ... EOS PAD PAD      ->  [b0][b1][b2]...[b(n-1)]

Blocks are cut from one continuous stream, so no token is lost or repeated whatever the map
batch size or `num_proc`; only the very last block is padded (the trainer masks pad labels).
Without a validation set, the last blocks of the stream are held out, so the two sets never
share a block. The result lives under `<cache>/packed/<key>/`, where the key hashes everything
that shapes it, so a later run (or another rank after `main_process_first`) reuses it without
reading any text.
"""

from __future__ import annotations

import codecs
import hashlib
import itertools
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets import (
    Dataset,
    DatasetDict,
    Features,
    List,
    Value,
    concatenate_datasets,
    load_dataset,
    load_from_disk,
)
from transformers import PreTrainedTokenizerFast

from .config import DataSection
from .corpus import default_corpus_files
from .errors import HfGptError
from .tokenization import check_tokenizer_kind, load_or_train_tokenizer

FORMAT_VERSION = 1  # bump when the packed layout changes, so old caches are rebuilt
TOKENIZE_BATCH_SIZE = 1000  # documents per `map` batch
_READ_BATCH = 1000  # tokenized documents read per packing step; bounds memory
_BUILDERS = {".txt": "text", ".jsonl": "json", ".parquet": "parquet"}  # suffix -> datasets builder


def _builder(path: Path) -> str:
    """The `datasets` builder of a file; the default corpus's `.py` files are plain text."""
    return _BUILDERS.get(path.suffix.lower(), "text")


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


@dataclass(frozen=True)
class _Source:
    """Where one split's raw text comes from: local files, or a split of a `load_dataset` dataset."""

    origin: str  # the flag that named it, for messages
    files: tuple[Path, ...] = ()
    dataset: str = ""
    dataset_config: str = ""
    split: str = ""


def cache_root(cache_dir: str = "") -> Path:
    """`cache_dir`, else `$HFGPT_CACHE`, else `~/.cache/hfgpt`."""
    return Path(cache_dir or os.environ.get("HFGPT_CACHE") or "~/.cache/hfgpt").expanduser()


def prepare_data(cfg: DataSection, seq_len: int, log: Callable[[str], None] = print) -> PreparedData:
    """Return the tokenizer and packed train/valid blocks for `cfg`, building what is not cached."""
    check_tokenizer_kind(cfg.tokenizer)
    if seq_len < 1:
        raise HfGptError(f"--seq-len must be at least 1 token, got {seq_len}.")
    root = cache_root(cfg.cache_dir)
    train_src, valid_src = _sources(cfg)

    @cache
    def load(src: _Source) -> Dataset:
        return _load(src, cfg.text_column, root / "datasets")

    train_fp = _fingerprint(train_src, load, cfg.text_column)
    tokenizer = load_or_train_tokenizer(
        cfg.tokenizer, lambda: _texts(load(train_src)), fingerprint=train_fp,
        cache_dir=root / "tokenizers", vocab_size=cfg.vocab_size, reset=cfg.reset, log=log,
    )
    key = _hash({
        "format": FORMAT_VERSION,
        "train": train_fp,
        "valid": _fingerprint(valid_src, load, cfg.text_column) if valid_src else None,
        "valid_fraction": None if valid_src else cfg.valid_fraction,
        "tokenizer": _hash(tokenizer.backend_tokenizer.to_str()),
        "seq_len": seq_len,
    })
    folder = root / "packed" / key
    if folder.is_dir() and not cfg.reset:
        log(f"reusing packed data from {folder}")
        return _open(folder, tokenizer, reused=True)

    log(f"tokenizing and packing {train_src.origin} into blocks of {seq_len} tokens ...")
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=folder.parent))
    try:
        facts = _build(work, train_src, valid_src, load, tokenizer, cfg, seq_len)
        (work / "out" / "facts.json").write_text(json.dumps(facts))
        if cfg.reset and folder.is_dir():
            shutil.rmtree(folder)
        try:
            os.rename(work / "out", folder)  # atomic: a crash never leaves a folder that looks complete
        except OSError:
            if not folder.is_dir():
                raise
            # Another process built the same key first; identical inputs give identical blocks.
    finally:
        shutil.rmtree(work, ignore_errors=True)
    data = _open(folder, tokenizer, reused=False)
    log(f"packed {data.summary()}")
    return data


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


def _hash(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- finding the text


def _sources(cfg: DataSection) -> tuple[_Source, _Source | None]:
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
        train = _Source(f"--dataset {cfg.dataset}", dataset=name, dataset_config=cfg.dataset_config,
                        split=cfg.train_split)
    elif cfg.train:
        train = _Source(f"--train {cfg.train}", files=_local_files(cfg.train, datadir, "--train"))
    else:
        files = default_corpus_files()
        if not files:
            raise HfGptError(
                "No training text: --train and --dataset are empty and the default corpus (the top-level "
                "*.py files of this Python's standard library) has no files here. Pass --train."
            )
        train = _Source("the default corpus (Python standard library)", files=tuple(files))

    if cfg.valid:
        return train, _Source(f"--valid {cfg.valid}", files=_local_files(cfg.valid, datadir, "--valid"))
    if cfg.valid_split:
        return train, _Source(f"--dataset {cfg.dataset} --valid-split {cfg.valid_split}",
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


def _fingerprint(src: _Source, load: Callable[[_Source], Dataset], text_column: str) -> str:
    """Identify the raw text cheaply: file paths, sizes and mtimes, or datasets' own fingerprint."""
    if src.dataset:
        return _hash(["dataset", load(src)._fingerprint])  # follows Hub revisions and local file changes
    column = text_column if any(_builder(p) != "text" for p in src.files) else ""
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in src.files]
    return _hash(["files", column, stats])


# ----------------------------------------------------------------------------- loading the text


def _load(src: _Source, text_column: str, cache_dir: Path) -> Dataset:
    """Load a source with `datasets` as a single `text` column, one row per document."""
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


def _texts(dataset: Dataset) -> Iterator[str]:
    for batch in dataset.iter(batch_size=_READ_BATCH):
        yield from (text or "" for text in batch["text"])


# ----------------------------------------------------------------------------- tokenizing and packing


def _build(work: Path, train_src: _Source, valid_src: _Source | None, load: Callable[[_Source], Dataset],
           tokenizer: PreTrainedTokenizerFast, cfg: DataSection, seq_len: int) -> dict[str, int]:
    """Write the packed splits to `work/out` (a `DatasetDict`) and return the facts to keep with them."""
    pad_id = tokenizer.pad_token_id
    train, train_tokens, padded = _pack(_tokenize(load(train_src), tokenizer, work, "train", cfg.num_proc),
                                        seq_len, pad_id, work / "train-blocks.arrow", train_src.origin)
    if valid_src is not None:
        valid, valid_tokens, valid_padded = _pack(
            _tokenize(load(valid_src), tokenizer, work, "valid", cfg.num_proc),
            seq_len, pad_id, work / "valid-blocks.arrow", valid_src.origin,
        )
        padded += valid_padded
    else:
        n_blocks = len(train)
        if n_blocks < 2:
            raise HfGptError(
                f"{train_src.origin} gives only {train_tokens} tokens, fewer than 2 blocks of --seq-len "
                f"{seq_len}, so no block can be held out for validation. Use a shorter --seq-len, more "
                "text, or a separate --valid set."
            )
        n_valid = min(n_blocks - 1, max(1, math.ceil(cfg.valid_fraction * n_blocks)))
        n_train = n_blocks - n_valid
        # The held-out blocks are the tail of the stream: contiguous, and sharing no block with train.
        train, valid = train.select(range(n_train)), train.select(range(n_train, n_blocks))
        train_tokens, valid_tokens = n_train * seq_len, train_tokens - n_train * seq_len
    DatasetDict(train=train, valid=valid).save_to_disk(str(work / "out"))  # single process: see PITFALLS
    return {"seq_len": seq_len, "train_tokens": train_tokens, "valid_tokens": valid_tokens,
            "padded_tokens": padded}


def _tokenize(raw: Dataset, tokenizer: PreTrainedTokenizerFast, work: Path, name: str,
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
        new_fingerprint=_hash([work.name, name]),
        desc=f"tokenizing {name}",
    )


def _pack(tokens: Dataset, seq_len: int, pad_id: int, path: Path, origin: str) -> tuple[Dataset, int, int]:
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

        for batch in tokens.with_format("arrow").iter(batch_size=_READ_BATCH):
            stream = np.concatenate([carry, pc.list_flatten(batch["input_ids"]).to_numpy()])
            n_tokens += len(stream) - len(carry)
            cut = len(stream) // seq_len * seq_len
            if cut:
                write(stream[:cut])
            carry = stream[cut:]
        n_padded = (seq_len - len(carry)) % seq_len
        if len(carry):
            write(np.concatenate([carry, np.full(n_padded, pad_id, dtype=np.int32)]))
    if n_tokens == len(tokens):  # nothing but the EOS appended to each document
        raise HfGptError(f"{origin} holds no text at all: every document is empty. Give it some text.")
    return Dataset.from_file(str(path)), n_tokens, n_padded
