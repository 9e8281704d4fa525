"""--tokenizer with a ready tokenizer: a tokenizer.json, a folder (relative to --tokensdir) or a Hub id; hfgpt's
end-of-text and pad tokens are checked or added, and a run trains with it."""

from __future__ import annotations

import pytest
from helpers import read_log, tiny_run_flags
from huggingface_hub import constants
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from hfgpt.data.ready_tokenizer import load_ready_tokenizer
from hfgpt.data.tokenization import train_tokenizer
from hfgpt.errors import HfGptError
from hfgpt.training.modes import train_setup
from hfgpt.training.trainer import run


def word_level(tmp_path, vocab: dict[str, int]):
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.save(str(tmp_path / "tokenizer.json"))
    return tmp_path / "tokenizer.json"


def test_a_tokenizer_json_gets_its_eos_by_name_and_a_pad_with_a_warning(tmp_path):
    word_level(tmp_path, {"<unk>": 0, "</s>": 1, "hello": 2, "world": 3})
    with pytest.warns(UserWarning, match=r"has no pad token of its own; hfgpt added <\|pad\|> \(id 4\)"):
        tokenizer = load_ready_tokenizer("tokenizer.json", str(tmp_path))
    assert (tokenizer.eos_token, tokenizer.pad_token, len(tokenizer)) == ("</s>", "<|pad|>", 5)
    assert tokenizer.encode("hello world") == [2, 3]


def test_a_folder_keeps_its_own_special_tokens(tmp_path):
    train_tokenizer("bpe", ["some text to learn from"] * 20, vocab_size=300).save_pretrained(tmp_path / "tok")
    tokenizer = load_ready_tokenizer(str(tmp_path / "tok"))
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|endoftext|>", "<|pad|>")


@pytest.mark.parametrize(("name", "message"), [
    ("bep", r"did you mean bpe\?"),
    ("missing-folder/", r"is not a folder with a tokenizer"),
])
def test_what_cannot_be_loaded_is_named(tmp_path, monkeypatch, name, message):
    # a Hub id must not reach the network in a test: huggingface_hub reads HF_HUB_OFFLINE once, at import
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HfGptError, match=message):
        load_ready_tokenizer(name)


def test_a_tokenizer_without_an_end_of_text_token_is_refused(tmp_path):
    word_level(tmp_path, {"<unk>": 0, "hello": 1})
    with pytest.raises(HfGptError, match="has no end-of-text token"):
        load_ready_tokenizer(str(tmp_path / "tokenizer.json"))


def test_a_run_trains_with_a_ready_tokenizer_and_saves_it(tmp_path):
    flags = tiny_run_flags(tmp_path, "ready", "--tokenizer", "tok", "--tokensdir", str(tmp_path), "--max-steps", "4")
    texts = [path.read_text() for path in sorted((tmp_path / "corpus").rglob("*.txt"))]
    ready = train_tokenizer("bpe", texts, vocab_size=300)
    ready.save_pretrained(tmp_path / "tok")
    run_dir = run(train_setup(flags))
    saved = AutoTokenizer.from_pretrained(run_dir / "final")
    assert isinstance(saved, PreTrainedTokenizerFast) or hasattr(saved, "backend_tokenizer")
    assert saved.get_vocab() == ready.get_vocab()
    assert read_log(run_dir)[-1]["step"] == 4
