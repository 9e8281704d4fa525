"""Finding, checking and loading the raw text: files, folders, datasets, the default corpus, bad input."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest
from helpers import expected, make_docs, run, section, stream, write_jsonl, write_parquet, write_txt

import hfgpt.data.sources
from hfgpt.data.corpus import default_corpus_files
from hfgpt.errors import HfGptError


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
    monkeypatch.setattr(hfgpt.data.sources, "default_corpus_files", lambda: files)
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
