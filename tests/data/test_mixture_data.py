"""A mixture's data: each source packed alone under its own key (a new weight tokenizes nothing, a new source only
itself), one tokenizer for all, each source's held-out part or each --valid set a validation part of its own; and
the mistakes a user makes refused in one paragraph before any text is read."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from helpers import play, run, section, write_char_shards, write_txt

from hfgpt.cli import main
from hfgpt.data.prepare import prepare_data
from hfgpt.errors import HfGptError

TEXTS = {"books": play(1, lines=300), "digits": "\n\n".join(" ".join(str(i * j % 97) for j in range(30))
                                                         for i in range(60)), "chat": play(2, lines=120).lower()}


def write_sources(tmp_path: Path) -> dict[str, Path]:
    return {name: write_txt(tmp_path / "data" / f"{name}.txt", text) for name, text in TEXTS.items()}


def tokenized(logs: list[str]) -> list[str]:
    """The files that a preparation tokenized, in order, from its log lines."""
    return [Path(line.split(" into blocks")[0].split()[-1]).stem for line in logs if line.startswith("tokenizing")]


def decoded(data, part) -> str:
    ids = np.asarray(data.train[list(range(part.start, part.stop))]["input_ids"]).reshape(-1)
    return data.tokenizer.decode(ids, skip_special_tokens=True)


def test_each_source_is_its_own_part_and_holds_out_its_own_validation_blocks(tmp_path):
    write_sources(tmp_path)
    data, _ = run(section(tmp_path, train="books.txt:3,digits.txt:1", valid_fraction=0.1), seq_len=32)
    assert [(p.name, p.start) for p in data.train_parts] == [("books", 0), ("digits", data.train_parts[0].stop)]
    assert data.train_parts[-1].stop == len(data.train) and data.valid_parts[-1].stop == len(data.valid)
    assert [p.name for p in data.valid_parts] == ["books", "digits"]
    for train, valid in zip(data.train_parts, data.valid_parts, strict=True):
        assert valid.blocks == int(np.ceil(0.1 * (train.blocks + valid.blocks)))
    books, digits = (decoded(data, part) for part in data.train_parts)
    assert set(digits) <= set("0123456789 \n") and "MENENIUS" in books and not set(books) & set("0123456789")
    assert data.train_tokens == sum(p.tokens for p in data.train_parts)
    assert [str(s.describe()) for s in data.schedules] == ["3", "1"]


def test_the_mixtures_tokenizer_is_the_one_of_its_files_without_weights(tmp_path):
    write_sources(tmp_path)
    mixed, _ = run(section(tmp_path, train="books.txt:3,digits.txt:1"), seq_len=32)
    plain, logs = run(section(tmp_path, train="books.txt,digits.txt"), seq_len=32)
    assert plain.tokenizer.backend_tokenizer.to_str() == mixed.tokenizer.backend_tokenizer.to_str()
    assert not any(line.startswith("training") for line in logs), "trained once, for both"


def test_a_new_weight_tokenizes_nothing_and_a_new_source_only_itself(tmp_path):
    write_sources(tmp_path)
    tokenizer = run(section(tmp_path, train="books.txt,digits.txt,chat.txt"), seq_len=32)[0].tokenizer  # a given one
    cfg = section(tmp_path, train="books.txt:3,digits.txt:1")
    first = prepare_data(cfg, 32, log=(logs := []).append, tokenizer=tokenizer)
    assert tokenized(logs) == ["books", "digits"]
    reweighted = prepare_data(dataclasses.replace(cfg, train="books.txt:1@0/5@0.5,digits.txt:2"), 32,
                              log=(logs := []).append, tokenizer=tokenizer)
    assert tokenized(logs) == [] and reweighted.reused
    assert reweighted.identity == first.identity, "the data are the same; the weights are the run's own identity"
    added = prepare_data(dataclasses.replace(cfg, train="books.txt:3,digits.txt:1,chat.txt:1"), 32,
                         log=(logs := []).append, tokenizer=tokenizer)
    assert tokenized(logs) == ["chat"]
    assert added.identity != first.identity and len(added.train_parts) == 3


def test_validation_sets_are_each_a_part_and_the_sources_keep_every_block(tmp_path):
    files = write_sources(tmp_path)
    data, _ = run(section(tmp_path, train="books.txt:1,digits.txt:1", valid="chat.txt,numbers=digits.txt"),
                  seq_len=32)
    assert [p.name for p in data.valid_parts] == ["chat", "numbers"]
    whole_digits = -(-(len(files["digits"].read_text()) + 1) // 32)  # every character and EOS: no block held out
    assert data.train_parts[1].blocks == whole_digits == data.valid_parts[1].blocks
    plain, _ = run(section(tmp_path, train="books.txt", valid="chat.txt,digits.txt"), seq_len=32)
    assert plain.train_parts == () and [p.name for p in plain.valid_parts] == ["chat", "digits"]


def test_a_bin_source_gives_its_tokenizer_and_one_of_another_vocabulary_is_refused(tmp_path):
    write_sources(tmp_path)
    write_char_shards(tmp_path / "data" / "shards", "abc def " * 400)
    data, logs = run(section(tmp_path, train="shards/train.bin:1,other=shards/train.bin:1"), seq_len=16)
    assert [part.name for part in data.train_parts] == ["shards", "other"]
    assert any("uses the tokenizer of" in line for line in logs) and len(data.tokenizer) < 20
    write_char_shards(tmp_path / "data" / "wide", "xyz uvw 123 " * 400)
    packed = sorted((tmp_path / "cache" / "packed").glob("*/facts.json"))
    with pytest.raises(HfGptError, match=r"meta\.json"):
        run(section(tmp_path, train="shards/train.bin:1,books.txt:1,wide/train.bin:1"), seq_len=16)
    assert sorted((tmp_path / "cache" / "packed").glob("*/facts.json")) == packed, "books.txt was not tokenized"


BASE = ["--layers", "1", "--dim", "32", "--heads", "2", "--seq", "32", "--max-steps", "20", "--trackers", "none"]


@pytest.mark.parametrize(("flags", "words"), [
    (["--train", "books.txt:3,digits.txt"], ["not to 'digits.txt'"]),
    (["--train", "books.txt:3,missing.txt:1"], ["missing.txt", "--train", "does not exist"]),
    (["--train", "books.txt:-3,digits.txt:1"], ["weight -3"]),
    (["--train", "books.txt:1@0.5/2@0.1,digits.txt:1"], ["goes backwards", "steps [10, 2]"]),
    (["--train", "books.txt:1", "--valid", "chat.txt:2"], ["not mixed"]),
    (["--train", "books.txt:1,digits.txt:1", "--best-metric", "valid/chat"], ["valid/books, valid/digits"]),
    (["--train", "books.txt:1,digits.txt:1", "--streaming", "--max-epochs-per-source", "2"],
     ["--max-epochs-per-source 2", "a stream does not know"]),
])
def test_a_mistake_in_a_mixture_is_one_paragraph_before_any_text_is_read(tmp_path, monkeypatch, capsys, flags, words):
    write_sources(tmp_path)
    monkeypatch.chdir(tmp_path / "data")
    assert main(["train", *BASE, *flags, "--cache-dir", str(tmp_path / "cache"), "--rundir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hfgpt: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    assert all(word in err for word in words), err
    assert not (tmp_path / "cache" / "packed").exists(), "refused before anything was tokenized"

