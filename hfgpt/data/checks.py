"""Checking the text before `datasets` reads it: every way a local file or a loaded column can be wrong is an
`HfGptError` that names the culprit and the fix, raised before `datasets` fails on it with an opaque error.

What only a whole read finds (a bad line deep in a .jsonl, a damaged page inside a .parquet) is not looked for
up front, which would read every file twice: `failures_named` lets `datasets` read, and when it fails, finds the
file and the line or row group it failed on, and says that instead of pyarrow's chained tracebacks.
"""

from __future__ import annotations

import codecs
import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset, Value, features

from ..errors import HfGptError, error_summary

# datasets 5's feature of a column that holds several JSON types; 4.x has none (and fails on such a file instead).
JSON_FEATURE = getattr(features, "Json", ())

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
    if isinstance(feature, JSON_FEATURE):  # text in some rows, other JSON values in others
        _refuse_a_row_without_text(dataset, column, origin)
    if feature not in (Value("string"), Value("large_string")):
        raise HfGptError(f"Column {column!r} of {origin} holds {feature}, not text; set --text-column.")
    dataset = dataset.select_columns([column])
    if column != "text":
        dataset = dataset.rename_column(column, "text")
    return dataset.cast_column("text", Value("string")) if feature != Value("string") else dataset


def _refuse_a_row_without_text(dataset: Dataset, column: str, origin: str) -> None:
    """Name the first row whose `column` holds a JSON value other than a string (or null)."""
    for start in range(0, len(dataset), 1000):
        values = dataset[start:start + 1000][column]
        row = next((start + i for i, value in enumerate(values) if not isinstance(value, (str, type(None)))), None)
        if row is not None:
            raise HfGptError(f"Column {column!r} of {origin} holds text in some rows and not in others: row {row} "
                             f"(counted from 0) holds a JSON {json_kind(values[row - start])}. A document's text is "
                             "a JSON string: fix that row, or set --text-column to the column that holds the text.")


def json_kind(value: object) -> str:
    """What JSON calls the type of a parsed value (a list is an array), for messages about JSON files."""
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return kinds.get(type(value), "null")


def check_file(path: Path, text_column: str) -> None:
    """Name the culprit file before `datasets` fails on it with an opaque error."""
    if path.stat().st_size == 0:
        raise HfGptError(f"{path} is empty. Put text in it, or leave it out.")
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
            "to UTF-8 (e.g. `iconv -t utf-8`), or leave it out."
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


@contextlib.contextmanager
def failures_named(files: Sequence[Path], text_column: str) -> Iterator[None]:
    """Read `files` (.jsonl, .parquet) with `datasets` in the block; a failure that one of them explains (a line
    that is not a JSON object, a row group that cannot be decoded) becomes an `HfGptError` naming the file and the
    place, and any other failure is raised as it was."""
    try:
        yield
    except HfGptError:
        raise
    except Exception:  # datasets wraps pyarrow's many kinds (ArrowInvalid, OSError) in its own
        for path in files:
            where = _damage_in(path, text_column)
            if where:
                raise HfGptError(f"{path} cannot be read: {where}, or leave the file out.") \
                    from None
        raise


def _damage_in(path: Path, text_column: str) -> str:
    """Where `path` cannot be read as its builder reads it, in words, or "" when nothing is found."""
    builder = builder_of(path)
    if builder == "json":
        return _bad_json_line(path, text_column)
    if builder == "parquet":
        return _bad_row_group(path, text_column)
    return ""


def _bad_json_line(path: Path, text_column: str) -> str:
    """The first line that is not one JSON object, or (what datasets 4 fails on, where 5 reads a Json column) whose
    text is another JSON value than a string."""
    with open(path, "rb") as file:  # lines end at \n only, as pyarrow and editors count them
        for number, raw in enumerate(file, start=1):
            line = raw.decode("utf-8").rstrip("\r\n")  # check_file made sure that it is UTF-8
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                return (f"line {number} is not valid JSON ({error.msg}, column {error.colno}: {line[:80]!r}). "
                        "Each line of a .jsonl file is one JSON object, such as "
                        '{"text": "..."}: fix that line')
            if not isinstance(record, dict):
                return (f"line {number} holds a JSON {json_kind(record)}, not an object. Each line of a .jsonl "
                        'file is one JSON object, such as {"text": "..."}: fix that line')
            if not isinstance(record.get(text_column, ""), (str, type(None))):
                return (f"line {number} holds a JSON {json_kind(record[text_column])} as its {text_column!r}, where "
                        "a document's text is a JSON string: fix that line, or set --text-column to the column "
                        "that holds the text")
    return ""


def _bad_row_group(path: Path, text_column: str) -> str:
    """The first row group of a Parquet file whose text column cannot be decoded."""
    parquet = pq.ParquetFile(path)
    start = 0
    for index in range(parquet.num_row_groups):
        rows = parquet.metadata.row_group(index).num_rows
        try:
            parquet.read_row_group(index, columns=[text_column])
        except (pa.ArrowException, OSError) as error:
            return (f"row group {index} of {parquet.num_row_groups} (rows {start} to {start + rows - 1}) is damaged "
                    f"({error_summary(error)}). Export the file again from its source")
        start += rows
    return ""
