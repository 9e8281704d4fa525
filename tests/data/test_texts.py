"""A .txt file of any size through `prepare_data`: read in spans, tokenized to the ids of the whole file, one EOS
per file (or per blank-line document), its tokenizer the one the whole text trains, or trained on a uniform
sample of a big corpus; a progress bar with MB/s while it tokenizes."""

from __future__ import annotations

import dataclasses
import re

import pytest
from helpers import expected, make_docs, play, run, section, stream, write_jsonl, write_txt

import hfgpt.data.chunking
import hfgpt.data.prepare
import hfgpt.data.reading
import hfgpt.data.texts
from hfgpt.data.reading import SourceText
from hfgpt.data.sources import Part
from hfgpt.data.tokenization import train_tokenizer


@pytest.fixture
def small_spans(monkeypatch):
    """Spans of ~300 bytes and pieces of ~50 characters: a small play is read in many parts."""
    monkeypatch.setattr(hfgpt.data.chunking, "SPAN_BYTES", 300)
    monkeypatch.setattr(hfgpt.data.chunking, "PIECE_CHARS", 50)


@pytest.mark.parametrize("kind", ["char", "bpe"])
@pytest.mark.parametrize("crlf", [False, True])
def test_a_txt_read_in_spans_packs_to_the_ids_of_the_whole_file(tmp_path, small_spans, kind, crlf) -> None:
    texts = [play(3, lines=300, crlf=crlf), "naïve 日本 😀\r\n\r\n  end  "]
    for index, text in enumerate(texts):
        write_txt(tmp_path / "data" / f"{index}.txt", text)
    data, _ = run(section(tmp_path, train="0.txt,1.txt", tokenizer=kind, vocab_size=400), seq_len=32)
    assert stream(data) == expected(data, texts)  # one EOS per file, after the ids of the whole file


def test_blank_lines_separate_documents_when_asked(tmp_path, small_spans) -> None:
    docs = [play(seed, lines=40).replace("\n\n", "\n") for seed in range(6)]
    text = "\n \n".join(docs) + "\n\n\n"  # a blank line holding a space, and blank lines at the end
    write_txt(tmp_path / "data" / "docs.txt", "\n\n" + text)  # and at the start
    data, _ = run(section(tmp_path, train="docs.txt", split_documents="blank-line"), seq_len=32)
    assert stream(data) == expected(data, docs)  # each with its last line break, without the blank lines
    whole, _ = run(section(tmp_path, train="docs.txt"), seq_len=32)
    assert whole.cache_dir != data.cache_dir and stream(whole) == expected(whole, ["\n\n" + text])


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_a_small_corpus_trains_the_tokenizer_it_always_did(tmp_path, small_spans, kind) -> None:
    """Whole documents before, spans cut at safe cuts now: the same words, so the same tokenizer."""
    texts = [play(5, lines=400), "x\r\ny\u3000z"]
    docs = make_docs(30)
    write_txt(tmp_path / "data" / "a.txt", texts[0])
    write_jsonl(tmp_path / "data" / "b.jsonl", docs)
    write_txt(tmp_path / "data" / "c.txt", texts[1])
    data, _ = run(section(tmp_path, train="a.txt,b.jsonl,c.txt", tokenizer=kind, vocab_size=500))
    before = train_tokenizer(kind, [texts[0], *docs, texts[1]], vocab_size=500)  # what the text trained before
    assert data.tokenizer.backend_tokenizer.to_str() == before.backend_tokenizer.to_str()


def test_a_bigger_corpus_trains_the_tokenizer_on_a_uniform_sample(tmp_path, monkeypatch, small_spans) -> None:
    monkeypatch.setattr(hfgpt.data.texts, "MB", 1000)  # --tokenizer-sample counts thousands of bytes here
    monkeypatch.setattr(hfgpt.data.reading, "SAMPLE_WINDOW", 500)
    write_txt(tmp_path / "data" / "big.txt", play(11, lines=3000))
    size = (tmp_path / "data" / "big.txt").stat().st_size
    seen: list[str] = []
    real_train = hfgpt.data.tokenization.train_tokenizer

    def spy(kind, texts, vocab_size=8192):
        seen.extend(texts)
        return real_train(kind, seen, vocab_size)

    monkeypatch.setattr(hfgpt.data.tokenization, "train_tokenizer", spy)
    cfg = section(tmp_path, train="big.txt", tokenizer="bpe", vocab_size=300, tokenizer_sample=20)
    sampled, logs = run(cfg)
    assert any(f"on a uniform sample of 20 MB of the {size / 1000:,.0f} MB of training text" in line for line in logs)
    assert 15_000 < sum(len(text.encode()) for text in seen) < 25_000  # about 20 "MB", not all of it
    text = (tmp_path / "data" / "big.txt").read_text()
    positions = [text.index(window) for window in seen]
    assert positions == sorted(positions) and positions[-1] > size * 0.9  # spread from start to end
    assert all(window[0].isspace() or start == 0 for window, start in zip(seen, positions, strict=True))
    everything, _ = run(dataclasses.replace(cfg, tokenizer_sample=0))  # 0: all of it, another tokenizer
    assert everything.tokenizer.backend_tokenizer.to_str() != sampled.tokenizer.backend_tokenizer.to_str()


def test_the_sample_of_a_dataset_is_every_kth_row(tmp_path) -> None:
    from datasets import Dataset

    rows = Dataset.from_dict({"text": [f"row {i}" for i in range(100)]})
    assert list(SourceText("rows", (Part(rows=rows),)).sample(0.1)) == [f"row {i}" for i in range(5, 100, 10)]


def test_tokenizing_shows_a_progress_bar_with_mb_per_second_unless_told_not_to(tmp_path, capsys) -> None:
    import datasets

    datasets.enable_progress_bars()  # an in-process run earlier in the session may have turned them off
    write_txt(tmp_path / "data" / "a.txt", play(2, lines=200))
    run(section(tmp_path, train="a.txt"))
    err = capsys.readouterr().err
    assert "tokenizing train: 100%" in err and re.search(r"\[\d\d:\d\d<\d\d:\d\d, [\d.]+[kMG]?B/s\]", err)  # time, ETA
    datasets.disable_progress_bars()  # what --no-progress-bar does (hfgpt.console.quiet_libraries)
    try:
        run(section(tmp_path, train="a.txt", reset=True))
        assert "tokenizing" not in capsys.readouterr().err
    finally:
        datasets.enable_progress_bars()


def test_a_tokenizer_that_cannot_be_cut_tokenizes_each_file_whole(tmp_path, small_spans) -> None:
    """A forked model's tokenizer may normalize or split otherwise: then a file is read whole, as before."""
    from tokenizers import normalizers

    text = play(4, lines=100).replace("e", "e\u0301")  # e + combining acute: NFC joins them into é
    write_txt(tmp_path / "data" / "a.txt", text)
    tokenizer = train_tokenizer("char", [text, "é"])
    tokenizer.backend_tokenizer.normalizer = normalizers.NFC()
    logs: list[str] = []
    data = hfgpt.data.prepare.prepare_data(section(tmp_path, train="a.txt"), 32, log=logs.append,
                                           tokenizer=tokenizer)
    assert any("each .txt file is read and tokenized whole" in line for line in logs)
    assert stream(data) == expected(data, [text])
