"""Checking the text before `datasets` reads it: every way a local file or a loaded column can be wrong is an
`HfGptError` that names the culprit and the fix, raised before `datasets` fails on it with an opaque error."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset, Value

from ..errors import HfGptError

BUILDERS = {".txt": "text", ".jsonl": "json", ".parquet": "parquet"}  # suffix -> datasets builder


def builder_of(path: Path) -> str:
    """The `datasets` builder of a file; the default corpus's `.py` files are plain text."""
    return BUILDERS.get(path.suffix.lower(), "text")


def text_column_of(dataset: Dataset, column: str, origin: str) -> Dataset:
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


def check_file(path: Path, text_column: str) -> None:
    """Name the culprit file before `datasets` fails on it with an opaque error."""
    if path.stat().st_size == 0:
        raise HfGptError(f"{path} is empty. Put text in it or leave it out of --train/--valid.")
    if builder_of(path) == "parquet":
        try:
            columns = pq.read_schema(path).names
        except pa.ArrowInvalid as error:
            raise HfGptError(f"{path} is not a readable Parquet file ({error}). Re-export it.") from error
        check_column(path, text_column, columns)
        return
    problem = _utf8_problem(path)
    if problem:
        raise HfGptError(
            f"{path} is not UTF-8 text: {problem}. It looks binary or uses another encoding; convert it "
            "to UTF-8 (e.g. `iconv -t utf-8`) or leave it out of --train/--valid."
        )
    if builder_of(path) == "json":
        with open(path, encoding="utf-8") as file:
            first = next((line for line in file if line.strip()), "")
        try:
            record = json.loads(first)
        except json.JSONDecodeError as error:
            raise HfGptError(f"{path} is not JSON Lines: its first record is invalid ({error}).") from error
        check_column(path, text_column, list(record) if isinstance(record, dict) else [])


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


def check_column(path: Path, column: str, found: list[str]) -> None:
    if column not in found:
        raise HfGptError(
            f"{path} has no column {column!r}; its columns are {found}. "
            "Set --text-column to the one that holds the text."
        )
