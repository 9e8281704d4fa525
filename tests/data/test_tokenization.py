"""Tokenizer training, lossless round trips, save/load through AutoTokenizer, and the cache."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from hfgpt.data.tokenization import (
    EOS_TOKEN,
    PAD_TOKEN,
    SPECIAL_TOKENS,
    UNK_TOKEN,
    char_tokenizer,
    ensure_pad_token,
    ensure_special_tokens,
    load_or_train_tokenizer,
    train_tokenizer,
)
from hfgpt.errors import HfGptError

TRAIN = ["def f(x):\n    return x + 1\n", "The quick brown fox jumps over the lazy dog. " * 20]
# Accents (composed and combining), CJK, emoji with a skin-tone modifier, CRLF, tab, NUL, runs of spaces.
HARD = "héllo wörld e\u0301 日本語 😀👍🏽 a\r\nb\tc\x00d   e\n\n"


@pytest.fixture(scope="module", params=["char", "bpe"])
def trained(request: pytest.FixtureRequest):
    texts = [*TRAIN, HARD] if request.param == "char" else TRAIN
    return train_tokenizer(request.param, texts, vocab_size=300)


def test_special_tokens_come_first_and_are_never_added(trained) -> None:
    assert SPECIAL_TOKENS == [EOS_TOKEN, PAD_TOKEN, UNK_TOKEN]
    assert [trained.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2]
    special_ids = (trained.eos_token_id, trained.bos_token_id, trained.pad_token_id, trained.unk_token_id)
    assert special_ids == (0, 0, 1, 2)
    ids = trained("return x")["input_ids"]
    assert 0 not in ids and 1 not in ids
    assert trained.decode(ids) == "return x"


def test_round_trip_is_lossless(trained) -> None:
    for text in [HARD, *TRAIN, " leading and trailing spaces ", ""]:
        assert trained.decode(trained.encode(text)) == text




@pytest.fixture(scope="module")
def bpe() -> PreTrainedTokenizerFast:
    tokenizer = train_tokenizer("bpe", TRAIN, vocab_size=300)
    assert len(tokenizer) == 300
    return tokenizer


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.just(HARD), st.text()))  # any code point but a lone surrogate, which UTF-8 cannot encode
def test_bpe_is_lossless_on_any_utf8_it_never_saw(bpe, text) -> None:
    ids = bpe.encode(text)
    # No byte is unknown: <|unk|> comes only from that text itself, which, like every special token's text,
    # the tokenizers library turns into the special token.
    assert ids.count(bpe.unk_token_id) == text.count(UNK_TOKEN)
    assert bpe.decode(ids) == text


def test_char_vocabulary_is_sorted_distinct_characters() -> None:
    tokenizer = train_tokenizer("char", ["cab\n", "bca"])
    vocab = tokenizer.get_vocab()
    assert sorted(vocab, key=vocab.get) == [*SPECIAL_TOKENS, "\n", "a", "b", "c"]
    assert tokenizer.encode("abc") == [4, 5, 6]


def test_char_unknown_character_becomes_unk_not_dropped() -> None:
    tokenizer = train_tokenizer("char", ["abc"])
    assert tokenizer.encode("aZ😀b") == [3, 2, 2, 4]  # a=3, b=4 after the three specials


def test_char_tokenizer_keeps_given_ids_and_appends_the_special_tokens(tmp_path) -> None:
    chars = ["\n", " ", "z", "a", "日"]  # any order: the ids are the positions
    tokenizer = char_tokenizer(chars)
    assert tokenizer.encode("a z\n日", add_special_tokens=False) == [3, 1, 2, 0, 4]
    assert [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [5, 6, 7]
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id, len(tokenizer)) == (5, 6, 7, 8)
    assert tokenizer.decode([3, 1, 2, 0, 4]) == "a z\n日"
    tokenizer.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path).backend_tokenizer.to_str() == tokenizer.backend_tokenizer.to_str()


def test_ensure_special_tokens_appends_what_is_missing(tmp_path) -> None:
    bpe = train_tokenizer("bpe", TRAIN, vocab_size=300)
    bpe.backend_tokenizer.save(str(tmp_path / "tokenizer.json"))  # a bare file: EOS in the vocabulary, no roles
    bare = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    assert bare.eos_token is None and bare.pad_token is None
    ensure_special_tokens(bare)
    assert (bare.eos_token_id, bare.bos_token_id, bare.pad_token_id, len(bare)) == (0, 0, 1, 300)
    bare.add_special_tokens({"pad_token": EOS_TOKEN})  # pad = EOS, as many published tokenizers have it
    ensure_special_tokens(bare)
    assert bare.pad_token_id == 1 and bare.eos_token_id == 0


def test_ensure_pad_token_says_whether_it_added_one() -> None:
    tokenizer = train_tokenizer("char", TRAIN)
    assert not ensure_pad_token(tokenizer)  # its own pad token differs from EOS
    tokenizer.add_special_tokens({"pad_token": EOS_TOKEN})
    assert ensure_pad_token(tokenizer) and tokenizer.pad_token == PAD_TOKEN != tokenizer.eos_token


def test_save_and_load_through_autotokenizer(trained, tmp_path) -> None:
    trained.model_max_length = 64
    trained.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.encode(HARD) == trained.encode(HARD)
    assert loaded.decode(loaded.encode(HARD)) == HARD
    assert loaded.model_max_length == 64
    assert (loaded.eos_token, loaded.pad_token, loaded.unk_token) == (EOS_TOKEN, PAD_TOKEN, UNK_TOKEN)
    assert loaded.get_vocab() == trained.get_vocab()


def test_bad_kind_and_vocab_size_are_user_errors() -> None:
    with pytest.raises(HfGptError, match="--tokenizer"):
        train_tokenizer("wordpiece", TRAIN)
    with pytest.raises(HfGptError, match="--vocab-size"):
        train_tokenizer("bpe", TRAIN, vocab_size=100)


def test_cache_trains_once_then_reuses_and_reset_retrains(tmp_path) -> None:
    calls, logs = [], []

    def texts():
        calls.append(1)
        return TRAIN

    def get(**overrides):
        options = dict(fingerprint="abc", cache_dir=tmp_path, vocab_size=300, log=logs.append)
        return load_or_train_tokenizer("bpe", texts, **{**options, **overrides})

    first = get()
    second = get()
    assert len(calls) == 1
    assert "reusing bpe tokenizer" in logs[-1]
    assert second.get_vocab() == first.get_vocab()
    folders = [p.name for p in tmp_path.iterdir()]
    assert len(folders) == 1 and folders[0].startswith("bpe-300-")  # no staging folder left behind

    get(reset=True)
    assert len(calls) == 2
    get(fingerprint="other text")
    get(vocab_size=280)
    assert len(calls) == 4
    assert len(list(tmp_path.iterdir())) == 3


def test_a_retrain_never_deletes_through_a_linked_cache_entry(tmp_path) -> None:
    options = dict(fingerprint="abc", cache_dir=tmp_path / "tokenizers", vocab_size=300, log=lambda line: None)
    folder = load_or_train_tokenizer("bpe", lambda: TRAIN, **options).name_or_path
    shared = tmp_path / "shared"
    os.rename(folder, shared)
    os.symlink(shared, folder, target_is_directory=True)
    before = sorted(os.listdir(shared))
    with pytest.raises(HfGptError, match=r"is a symlink.*--cache-dir"):
        load_or_train_tokenizer("bpe", lambda: TRAIN, reset=True, **options)
    assert sorted(os.listdir(shared)) == before and os.path.islink(folder)
    assert os.listdir(tmp_path / "tokenizers") == [os.path.basename(folder)]
