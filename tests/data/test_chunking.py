"""The safe cut (hfgpt.data.chunking): text cut at it tokenizes to exactly the ids of the whole, for both of hfgpt's
tokenizers, wherever the reads of a file end (inside multi-byte characters, between CR and LF), on random text and
on a play generated here; and the reasons the rule is what it is."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import play
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

from hfgpt.data.chunking import cuttable, file_spans, is_cut, pieces, read_span, text_chunks
from hfgpt.data.tokenization import train_tokenizer

# Whitespace of every kind the rule must get right, letters of 1 to 4 UTF-8 bytes, digits, punctuation.
ALPHABET = [*" \t\n\r\x0b\x0c\x1c\x85\xa0\u2003\u3000", "\r\n", "\n\n", "  ", *"aZ9'.,!é日😀ß"]


@pytest.fixture(scope="module", params=["char", "bpe"])
def tokenizer(request) -> Tokenizer:
    corpus = [play(0), play(1, crlf=True), "".join(ALPHABET) * 3]
    return train_tokenizer(request.param, corpus, vocab_size=600).backend_tokenizer


def ids_of(tokenizer: Tokenizer, texts: list[str]) -> list[int]:
    return [i for encoding in tokenizer.encode_batch(texts, add_special_tokens=False) for i in encoding.ids]


def test_hfgpts_tokenizers_are_cuttable_and_others_are_not(tokenizer) -> None:
    assert cuttable(tokenizer)
    gpt2_like = Tokenizer(models.BPE())
    gpt2_like.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    assert cuttable(gpt2_like)
    for change in ("prefix space", "normalizer", "other pattern", "stripping added token"):
        other = Tokenizer.from_str(tokenizer.to_str())
        if change == "prefix space":
            other.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        elif change == "normalizer":
            other.normalizer = normalizers.NFC()
        elif change == "other pattern":
            other.pre_tokenizer = pre_tokenizers.Split(Regex(r"\s*\S+"), "isolated")
        else:
            from tokenizers import AddedToken
            other.add_tokens([AddedToken("<sep>", rstrip=True)])
        assert not cuttable(other), change


def test_the_whitespace_classes_agree_with_the_tokenizers_library() -> None:
    """`\\s` of the byte-level pattern is what `not isspace()` and the four cut characters assume. Every Unicode
    White_Space character lies below U+3001; the Basic Multilingual Plane is checked whole."""
    pre = pre_tokenizers.ByteLevel(add_prefix_space=False)
    for code in range(0x10000):
        char = chr(code)
        if 0xD800 <= code < 0xE000 or char == " ":
            continue
        pattern_space = len(pre.pre_tokenize_str(f"a{char}{char}a")) == 4  # a, c, c, a only for whitespace
        assert not pattern_space or char.isspace(), hex(code)  # isspace() is a superset of the pattern's \s
        if char in "\t\n\r":
            assert pattern_space


def test_a_cut_after_a_line_break_is_not_safe_but_before_a_whitespace_run_is() -> None:
    """Why the rule is not "after a newline": the whole text has "\\n", "\\n" where the prefix ends in "\\n\\n"."""
    bpe = train_tokenizer("bpe", ["a\n\n" * 50], vocab_size=300).backend_tokenizer
    whole = ids_of(bpe, ["a\n\nb"])
    assert ids_of(bpe, ["a\n\n", "b"]) != whole  # after the line breaks: wrong
    assert ids_of(bpe, ["a", "\n\nb"]) == whole and is_cut("a\n\nb", 1)  # before the whitespace run: right
    assert not is_cut("a\n\nb", 2) and not is_cut("a\n\nb", 3) and not is_cut("a\r\nb", 2)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(ALPHABET), max_size=300), size=st.integers(1, 40))
def test_pieces_tokenize_to_the_ids_of_the_whole(tokenizer, parts, size) -> None:
    text = "".join(parts)
    cut = pieces(text, size)
    assert "".join(cut) == text and all(is_cut(text, len("".join(cut[:i]))) for i in range(1, len(cut)))
    assert ids_of(tokenizer, cut) == ids_of(tokenizer, [text])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=300), read=st.integers(1, 9))
def test_a_file_read_in_any_size_of_block_tokenizes_as_a_whole(tokenizer, tmp_path_factory, parts, read) -> None:
    """Reads of 1 to 9 bytes end inside 2-, 3- and 4-byte characters and between CR and LF."""
    text = "".join(parts)
    path = tmp_path_factory.mktemp("file") / "text.txt"
    path.write_bytes(text.encode("utf-8"))
    chunks = list(text_chunks(path, read))
    spans = [read_span(path, start, end) for start, end in file_spans(path, read)]
    assert "".join(chunks) == text == "".join(spans)
    whole = ids_of(tokenizer, [text])
    assert ids_of(tokenizer, chunks) == whole and ids_of(tokenizer, spans) == whole


@pytest.mark.parametrize("crlf", [False, True])
def test_a_generated_play_in_small_spans_tokenizes_as_a_whole(tokenizer, tmp_path: Path, crlf) -> None:
    text = play(7, lines=2000, crlf=crlf)
    path = tmp_path / "play.txt"
    path.write_bytes(text.encode("utf-8"))
    spans = list(file_spans(path, 997))
    assert len(spans) > 30 and all(end > start for start, end in spans)
    texts = [read_span(path, start, end) for start, end in spans]
    assert ids_of(tokenizer, [piece for chunk in texts for piece in pieces(chunk, 61)]) == ids_of(tokenizer, [text])


def test_a_text_without_a_cut_is_one_piece() -> None:
    assert pieces("x" * 100, 10) == ["x" * 100]
    assert pieces("ab cd", 1) == ["ab", " cd"]
