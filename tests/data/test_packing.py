"""Tokenizing, packing into blocks and caching the packed data: no token lost, the cache reused and rebuilt."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil

import pytest
from datasets import DatasetDict
from helpers import PANGRAMS, expected, make_docs, run, section, stream, write_jsonl, write_txt

import hfgpt.data.packing
import hfgpt.data.prepare
import hfgpt.data.reading
import hfgpt.data.sources
import hfgpt.data.texts
import hfgpt.data.tokenization
from hfgpt.data.prepare import packed_key, prepare_data
from hfgpt.data.tokenization import train_tokenizer
from hfgpt.errors import HfGptError
from hfgpt.files import short_hash


@pytest.mark.parametrize("num_proc", [1, pytest.param(2, marks=pytest.mark.slow)])  # 2: spawns processes
def test_packing_loses_and_repeats_no_token_across_tasks_and_shards(tmp_path, monkeypatch, num_proc) -> None:
    monkeypatch.setattr(hfgpt.data.reading, "ROWS_PER_TASK", 3)  # 40 documents: many tokenizing tasks
    monkeypatch.setattr(hfgpt.data.packing, "SHARD_BYTES", 5 * 16 * 4)  # and shard files of 5 blocks
    docs = make_docs(40)
    write_jsonl(tmp_path / "data" / "docs.jsonl", docs)
    data, _ = run(section(tmp_path, train="docs.jsonl", num_proc=num_proc), seq_len=16)
    assert data.train[[0, 1]]["input_ids"].shape == (2, 16)
    assert stream(data) == expected(data, docs)
    assert data.train_tokens + data.valid_tokens == len(expected(data, docs))
    assert len(data.train) + len(data.valid) == math.ceil(len(expected(data, docs)) / 16)
    shards = sorted(p.name for p in data.cache_dir.glob("*.arrow"))
    assert len(shards) == math.ceil((len(data.train) + len(data.valid)) / 5) and shards[0] == "train-00000.arrow"


def test_second_run_reuses_the_cache_without_tokenizing(tmp_path, monkeypatch) -> None:
    docs = make_docs(30)
    write_jsonl(tmp_path / "data" / "docs.jsonl", docs)
    cfg = section(tmp_path, train="docs.jsonl", tokenizer="bpe", vocab_size=300)
    first, _ = run(cfg)
    assert not first.reused

    def forbidden(*args, **kwargs):
        raise AssertionError("a cached run must not load, train or tokenize")

    monkeypatch.setattr(hfgpt.data.sources, "load_dataset", forbidden)
    monkeypatch.setattr(hfgpt.data.texts, "encode_tasks", forbidden)
    monkeypatch.setattr(hfgpt.data.tokenization, "train_tokenizer", forbidden)
    second, logs = run(cfg)
    assert second.reused and second.cache_dir == first.cache_dir
    assert f"reusing packed data from {first.cache_dir}" in logs
    assert stream(second) == stream(first)
    assert (second.train_tokens, second.valid_tokens, second.padded_tokens) == (
        first.train_tokens, first.valid_tokens, first.padded_tokens)
    assert [p.name for p in first.cache_dir.parent.iterdir()] == [first.cache_dir.name]  # no temp left


def test_the_cache_is_in_hfgpt_cache_unless_a_cache_dir_is_given(tmp_path, monkeypatch) -> None:
    write_jsonl(tmp_path / "data" / "docs.jsonl", make_docs(10))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HFGPT_CACHE", str(tmp_path / "from-env"))
    no_cache_dir = dataclasses.replace(section(tmp_path, train="docs.jsonl"), cache_dir="")
    from_env, _ = run(no_cache_dir)
    assert from_env.cache_dir.is_relative_to(tmp_path / "from-env")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "from-env"], "nothing cached anywhere else"
    given, _ = run(section(tmp_path, train="docs.jsonl"))
    assert given.cache_dir.is_relative_to(tmp_path / "cache")
    monkeypatch.delenv("HFGPT_CACHE")
    default, _ = run(no_cache_dir)
    assert default.cache_dir.is_relative_to(tmp_path / "home" / ".cache" / "hfgpt")


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


@pytest.mark.parametrize("damage", ["truncated arrow", "broken tokenizer"])
def test_a_damaged_cache_is_rebuilt_with_a_warning(tmp_path, damage) -> None:
    write_jsonl(tmp_path / "data" / "docs.jsonl", make_docs(30))
    cfg = section(tmp_path, train="docs.jsonl")
    first, _ = run(cfg)
    if damage == "truncated arrow":
        arrow = first.cache_dir / "train-00000.arrow"
        head = arrow.read_bytes()[:200]
        arrow.unlink()  # a new file: `first` keeps reading its memory map of the old one
        arrow.write_bytes(head)
    else:
        next((tmp_path / "cache" / "tokenizers").glob("*/tokenizer.json")).write_text("{")
    with pytest.warns(UserWarning, match="cannot be read .* again"):
        again, _ = run(cfg)
    assert stream(again) == stream(first)
    assert run(cfg)[0].reused  # and the rebuilt cache serves the next run


def test_text_that_a_given_tokenizer_cannot_spell_is_counted_in_a_warning(tmp_path) -> None:
    write_txt(tmp_path / "data" / "new.txt", "abc abc xyz\n" * 20)
    tokenizer = train_tokenizer("char", ["abc "])  # knows a, b, c and the space; not x, y, z or the newline
    # valid_fraction 0 (a mixture source beside --valid sets) holds nothing out: all 240 characters and the EOS
    with pytest.warns(UserWarning, match=r"of the 241 training tokens \(.*\) are <\|unk\|>"):
        prepare_data(section(tmp_path, train="new.txt", valid_fraction=0.0), 16, log=lambda line: None,
                     tokenizer=tokenizer)


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


def test_a_supplied_tokenizer_is_used_as_it_is(tmp_path, monkeypatch) -> None:
    docs = make_docs(20)
    write_jsonl(tmp_path / "data" / "docs.jsonl", docs)
    cfg = section(tmp_path, train="docs.jsonl")
    own, _ = run(cfg)
    supplied = train_tokenizer("bpe", PANGRAMS * 10, vocab_size=320)  # trained on other text

    def forbidden(*args, **kwargs):
        raise AssertionError("a supplied tokenizer must not be trained or loaded")

    monkeypatch.setattr(hfgpt.data.texts, "load_or_train_tokenizer", forbidden)
    data = prepare_data(cfg, 16, log=lambda line: None, tokenizer=supplied)
    assert data.tokenizer is supplied and not data.reused and data.cache_dir != own.cache_dir
    assert stream(data) == expected(data, docs)
    assert max(stream(data)) >= 259  # merges learnt from the pangrams, beyond the bytes and special tokens
    assert prepare_data(cfg, 16, log=lambda line: None, tokenizer=supplied).reused


def test_a_rebuild_never_deletes_through_a_linked_cache_entry(tmp_path) -> None:
    """--reset rebuilds only the packed folders hfgpt made: a link at that name is refused, never followed."""
    write_jsonl(tmp_path / "data" / "docs.jsonl", make_docs(30))
    first, _ = run(section(tmp_path, train="docs.jsonl"))
    shared = tmp_path / "shared"
    first.cache_dir.rename(shared)  # say, packed data someone shares between caches
    first.cache_dir.symlink_to(shared, target_is_directory=True)
    before = sorted(p.name for p in shared.iterdir())
    with pytest.raises(HfGptError, match=r"is a symlink.*--cache-dir"):
        run(section(tmp_path, train="docs.jsonl", reset=True))
    assert sorted(p.name for p in shared.iterdir()) == before and first.cache_dir.is_symlink()
    assert [p.name for p in first.cache_dir.parent.iterdir()] == [first.cache_dir.name]  # no work folder left


def test_the_key_of_existing_inputs_is_the_one_runs_know_their_data_by(tmp_path) -> None:
    """A run records its packed folder's name as its data identity, and `continue` compares it: the key hashes
    what the blocks are, never how they are stored, and a setting added later is absent at its default."""
    write_jsonl(tmp_path / "data" / "docs.jsonl", make_docs(30))
    data, _ = run(section(tmp_path, train="docs.jsonl"))
    train = hfgpt.data.packing.Split("docs", "fingerprint", lambda work, name: iter(()))
    before = short_hash({"format": 1, "train": "fingerprint", "valid": None, "valid_fraction": 0.05,
                         "tokenizer": short_hash(data.tokenizer.backend_tokenizer.to_str()), "seq_len": 16})
    assert packed_key(section(tmp_path), train, None, data.tokenizer, 16) == before
    assert packed_key(section(tmp_path, split_documents="blank-line"), train, None, data.tokenizer, 16) != before


def test_a_cache_written_before_the_shards_is_still_reused(tmp_path) -> None:
    """Earlier versions saved one DatasetDict (save_to_disk) under the same key: it is read as it is."""
    write_jsonl(tmp_path / "data" / "docs.jsonl", make_docs(30))
    cfg = section(tmp_path, train="docs.jsonl")
    new, _ = run(cfg)
    old = tmp_path / "old-layout"
    DatasetDict(train=new.train.with_format(None), valid=new.valid.with_format(None)).save_to_disk(str(old))
    facts = {key: getattr(new, key) for key in ("seq_len", "train_tokens", "valid_tokens", "padded_tokens")}
    (old / "facts.json").write_text(json.dumps(facts))
    shutil.rmtree(new.cache_dir)
    old.rename(new.cache_dir)
    reused, logs = run(cfg)
    assert reused.reused and f"reusing packed data from {new.cache_dir}" in logs
    assert stream(reused) == stream(new) and not list(new.cache_dir.glob("train-*.arrow"))
