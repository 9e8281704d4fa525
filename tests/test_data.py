"""Finding, loading, tokenizing, packing and caching the training text (and the default corpus)."""

from __future__ import annotations

import json
import math
import sysconfig
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hfgpt.data
import hfgpt.tokenization
from hfgpt.config import DataSection
from hfgpt.corpus import default_corpus_files
from hfgpt.data import PreparedData, prepare_data
from hfgpt.errors import HfGptError


def make_docs(n: int, seed: int = 0) -> list[str]:
    """Documents of very different lengths (1 to ~200 characters), some with unicode and newlines."""
    rng = np.random.default_rng(seed)
    words = ["alpha", "beta", "γάμμα", "日本", "😀", "\n", "\t", "x"]
    return [" ".join(rng.choice(words, size=int(rng.integers(1, 40)))) for _ in range(n)]


def write_jsonl(path: Path, docs: list[str], column: str = "text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({column: doc, "id": i}) + "\n" for i, doc in enumerate(docs)]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def write_parquet(path: Path, docs: list[str], column: str = "text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({column: docs, "id": list(range(len(docs)))}), path)
    return path


def write_txt(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def section(tmp_path: Path, **overrides) -> DataSection:
    return DataSection(datadir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"), **overrides)


def run(cfg: DataSection, seq_len: int = 16) -> tuple[PreparedData, list[str]]:
    logs: list[str] = []
    return prepare_data(cfg, seq_len, log=logs.append), logs


def stream(data: PreparedData) -> list[int]:
    """Every block of train then valid, concatenated, with the final padding stripped."""
    blocks = [data.train[list(range(len(data.train)))]["input_ids"]]
    if len(data.valid):
        blocks.append(data.valid[list(range(len(data.valid)))]["input_ids"])
    tokens = np.concatenate(blocks).reshape(-1).tolist()
    padded = len(tokens) - len(np.trim_zeros(np.array(tokens) != data.tokenizer.pad_token_id, "b"))
    assert padded == data.padded_tokens < data.seq_len
    return tokens[: len(tokens) - padded]


def expected(data: PreparedData, docs: list[str]) -> list[int]:
    eos = data.tokenizer.eos_token_id
    return [t for doc in docs for t in [*data.tokenizer.encode(doc, add_special_tokens=False), eos]]


@pytest.mark.parametrize("num_proc", [1, 2])
def test_packing_loses_and_repeats_no_token_across_map_batches(tmp_path, monkeypatch, num_proc) -> None:
    monkeypatch.setattr(hfgpt.data, "TOKENIZE_BATCH_SIZE", 3)  # 40 documents: many map batches
    monkeypatch.setattr(hfgpt.data, "_READ_BATCH", 7)  # and packing reads cut across them differently
    docs = make_docs(40)
    write_jsonl(tmp_path / "data" / "docs.jsonl", docs)
    data, _ = run(section(tmp_path, train="docs.jsonl", num_proc=num_proc), seq_len=16)
    assert data.train[[0, 1]]["input_ids"].shape == (2, 16)
    assert stream(data) == expected(data, docs)
    assert data.train_tokens + data.valid_tokens == len(expected(data, docs))
    assert len(data.train) + len(data.valid) == math.ceil(len(expected(data, docs)) / 16)


def test_second_run_reuses_the_cache_without_tokenizing(tmp_path, monkeypatch) -> None:
    docs = make_docs(30)
    write_jsonl(tmp_path / "data" / "docs.jsonl", docs)
    cfg = section(tmp_path, train="docs.jsonl", tokenizer="bpe", vocab_size=300)
    first, _ = run(cfg)
    assert not first.reused

    def forbidden(*args, **kwargs):
        raise AssertionError("a cached run must not load, train or tokenize")

    monkeypatch.setattr(hfgpt.data, "load_dataset", forbidden)
    monkeypatch.setattr(hfgpt.data, "_tokenize", forbidden)
    monkeypatch.setattr(hfgpt.tokenization, "train_tokenizer", forbidden)
    second, logs = run(cfg)
    assert second.reused and second.cache_dir == first.cache_dir
    assert f"reusing packed data from {first.cache_dir}" in logs
    assert stream(second) == stream(first)
    assert (second.train_tokens, second.valid_tokens, second.padded_tokens) == (
        first.train_tokens, first.valid_tokens, first.padded_tokens)
    assert [p.name for p in first.cache_dir.parent.iterdir()] == [first.cache_dir.name]  # no temp left


def test_reset_and_changed_inputs_rebuild(tmp_path) -> None:
    path = write_jsonl(tmp_path / "data" / "docs.jsonl", make_docs(30))
    cfg = section(tmp_path, train="docs.jsonl")
    first, _ = run(cfg)
    again, logs = run(section(tmp_path, train="docs.jsonl", reset=True))
    assert not again.reused and again.cache_dir == first.cache_dir
    assert any(line.startswith("training char tokenizer") for line in logs)
    assert not run(cfg, seq_len=8)[0].reused
    write_jsonl(path, make_docs(30, seed=1))
    changed, _ = run(cfg)
    assert not changed.reused and changed.cache_dir != first.cache_dir


def test_holdout_is_the_contiguous_tail_of_the_stream(tmp_path) -> None:
    text = "".join(make_docs(50))
    write_txt(tmp_path / "data" / "book.txt", text)
    data, _ = run(section(tmp_path, train="book.txt", valid_fraction=0.25), seq_len=16)
    n_blocks = len(data.train) + len(data.valid)
    assert len(data.valid) == math.ceil(0.25 * n_blocks)
    train = data.train[list(range(len(data.train)))]["input_ids"]
    assert data.train_tokens == train.size and (train != data.tokenizer.pad_token_id).all()
    assert stream(data) == expected(data, [text])  # train blocks, then valid blocks, are the stream in order


def test_too_little_text_to_hold_out_names_the_data_and_the_fix(tmp_path) -> None:
    write_txt(tmp_path / "data" / "tiny.txt", "hello")
    with pytest.raises(HfGptError, match=r"tiny\.txt.*--seq-len"):
        run(section(tmp_path, train="tiny.txt"), seq_len=64)


def test_explicit_validation_files_are_packed_separately(tmp_path) -> None:
    train_docs, valid_docs = make_docs(20), make_docs(5, seed=7)
    write_jsonl(tmp_path / "data" / "train.jsonl", train_docs)
    write_jsonl(tmp_path / "data" / "valid.jsonl", valid_docs)
    data, _ = run(section(tmp_path, train="train.jsonl", valid="valid.jsonl"))
    valid = data.valid[list(range(len(data.valid)))]["input_ids"].reshape(-1).tolist()
    assert valid[: data.valid_tokens] == expected(data, valid_docs)
    assert data.train_tokens == len(expected(data, train_docs))


def test_files_folders_comma_lists_and_datadir(tmp_path) -> None:
    root = tmp_path / "data"
    a, b, c, d = make_docs(4, seed=3)
    write_txt(root / "one.txt", a)
    write_parquet(root / "corpus" / "z" / "deep.parquet", [b])
    write_jsonl(root / "corpus" / "a.jsonl", [c])
    write_txt(root / "corpus" / "notes.md", "not read: unsupported extensions inside folders are skipped")
    write_txt(root / "two.txt", d)
    data, _ = run(section(tmp_path, train=" two.txt, corpus ,one.txt", valid_fraction=0.1), seq_len=4)
    # The list order is kept; a folder's files are taken recursively in sorted path order.
    assert stream(data) == expected(data, [d, c, b, a])


def test_text_column_of_jsonl_and_parquet(tmp_path) -> None:
    docs = make_docs(6)
    write_jsonl(tmp_path / "data" / "a.jsonl", docs[:3], column="body")
    write_parquet(tmp_path / "data" / "b.parquet", docs[3:], column="body")
    data, _ = run(section(tmp_path, train="a.jsonl,b.parquet", text_column="body"), seq_len=8)
    assert stream(data) == expected(data, docs)


def test_local_dataset_folder_with_a_validation_split(tmp_path) -> None:
    train_docs, valid_docs = make_docs(12), make_docs(4, seed=5)
    write_jsonl(tmp_path / "data" / "mydata" / "train.jsonl", train_docs)
    write_jsonl(tmp_path / "data" / "mydata" / "validation.jsonl", valid_docs)
    cfg = section(tmp_path, dataset="mydata", valid_split="validation")
    data, _ = run(cfg)
    assert data.train_tokens == len(expected(data, train_docs))
    assert data.valid_tokens == len(expected(data, valid_docs))
    assert run(cfg)[0].reused


def test_default_corpus_is_used_when_no_text_is_given(tmp_path, monkeypatch) -> None:
    files = [write_txt(tmp_path / "stdlib" / f"{name}.py", f"import {name}\n") for name in ["abc", "os"]]
    monkeypatch.setattr(hfgpt.data, "default_corpus_files", lambda: files)
    data, logs = run(section(tmp_path), seq_len=4)
    assert stream(data) == expected(data, ["import abc\n", "import os\n"])
    assert any("default corpus" in line for line in logs)


def test_default_corpus_is_the_top_level_stdlib_sources() -> None:
    files = default_corpus_files()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    assert len(files) > 100
    assert [f.name for f in files] == sorted(f.name for f in files)
    assert all(f.parent == stdlib and f.suffix == ".py" for f in files)
    assert stdlib / "os.py" in files


@pytest.mark.parametrize(
    ("setup", "overrides", "pattern"),
    [
        (None, {"train": "missing.txt"}, r"missing\.txt.*does not exist"),
        (lambda root: write_txt(root / "empty.txt", ""), {"train": "empty.txt"}, r"empty\.txt is empty"),
        (lambda root: (root / "bin.txt").write_bytes(b"text\x00\x01\x02"), {"train": "bin.txt"},
         r"bin\.txt is not UTF-8 text: it has a NUL byte at byte 4"),
        (lambda root: (root / "latin.txt").write_bytes("café".encode("latin-1")), {"train": "latin.txt"},
         r"latin\.txt is not UTF-8 text: byte 3 is invalid"),
        (lambda root: write_txt(root / "data.csv", "a,b"), {"train": "data.csv"}, r"data\.csv.*unsupported"),
        (lambda root: write_txt(root / "sub" / "x.md", "x"), {"train": "sub"}, r"sub.*no \.txt, \.jsonl"),
        (lambda root: write_jsonl(root / "a.jsonl", ["x"], column="content"), {"train": "a.jsonl"},
         r"a\.jsonl has no column 'text'; its columns are \['content', 'id'\]"),
        (lambda root: write_parquet(root / "a.parquet", ["x"], column="body"), {"train": "a.parquet"},
         r"a\.parquet has no column 'text'; its columns are \['body', 'id'\]"),
        (lambda root: write_jsonl(root / "a.jsonl", ["", ""]), {"train": "a.jsonl"}, r"a\.jsonl.*no text"),
        (lambda root: write_txt(root / "a.txt", "x"), {"train": "a.txt", "tokenizer": "sentencepiece"},
         r"--tokenizer"),
        (None, {"train": "a.txt", "dataset": "owner/name"}, r"--train.*--dataset"),
        (None, {"valid_split": "test"}, r"--valid-split.*no --dataset"),
        (None, {"dataset": "./nowhere"}, r"nowhere.*does not exist"),
    ],
)
def test_bad_input_is_a_user_error_naming_the_culprit(tmp_path, setup, overrides, pattern) -> None:
    root = tmp_path / "data"
    root.mkdir()
    if setup:
        setup(root)
    with pytest.raises(HfGptError, match=pattern):
        run(section(tmp_path, **overrides), seq_len=2)
