"""Trains, caches and loads the tokenizers hfgpt models read and write.

There is no Python tokenizer class: a `tokenizers.Tokenizer` wrapped in `PreTrainedTokenizerFast`
saves a `tokenizer.json` that `AutoTokenizer.from_pretrained` loads anywhere, without hfgpt.
Two kinds are trained from the training text:

- `char`: one token per Unicode code point seen in the training text; unseen ones map to unk.
- `bpe`: byte-level BPE (GPT-2 style), lossless on any UTF-8 text.

In a trained tokenizer the special tokens come first (ids 0, 1, 2); they are never added
automatically on encode: the data pipeline appends EOS after every document itself. Token ids
made elsewhere (nanoGPT's binary shards) keep their ids: `char_tokenizer` appends the special
tokens after a given character vocabulary, and `ensure_special_tokens` adds the missing ones
to a loaded tokenizer after its own.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ..config.data_section import MIN_BPE_VOCAB
from ..errors import HfGptError, error_summary
from ..files import publish, refuse_linked_cache, remove_made

EOS_TOKEN = "<|endoftext|>"
BOS_TOKEN = EOS_TOKEN  # GPT-2 convention: one token both starts and separates documents
PAD_TOKEN = "<|pad|>"
UNK_TOKEN = "<|unk|>"
SPECIAL_TOKENS = [EOS_TOKEN, PAD_TOKEN, UNK_TOKEN]  # ids 0, 1, 2 in every vocabulary
assert 256 + len(SPECIAL_TOKENS) == MIN_BPE_VOCAB, "the config's least --vocab-size counts these tokens"
TOKENIZER_KINDS = ("char", "bpe")
# <cache>/tokenizers/<kind>-<size>-<key>, and the tempfile.mkdtemp(prefix=".<that name>-") it is saved in first
_CACHED = re.compile(rf"({'|'.join(TOKENIZER_KINDS)})-(auto|\d+)-[0-9a-f]{{16}}")
_STAGING = re.compile(rf"\.{_CACHED.pattern}-\w+")

# Bumped when training changes, so cached tokenizers of an older recipe are not reused.
_RECIPE_VERSION = 1


def train_tokenizer(kind: str, texts: Iterable[str], vocab_size: int = 8192) -> PreTrainedTokenizerFast:
    """Train a `char` or `bpe` tokenizer on `texts` (`vocab_size` applies to bpe only)."""
    check_tokenizer_kind(kind)
    if kind == "char":
        return wrap_tokenizer(_train_char(texts))
    return wrap_tokenizer(_train_bpe(texts, vocab_size))


def wrap_tokenizer(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """Give a raw `tokenizers.Tokenizer` the transformers interface and hfgpt's special tokens."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        # Clean-up would rewrite " ." into "." on decode and break the lossless round trip.
        clean_up_tokenization_spaces=False,
    )


def char_tokenizer(chars: Sequence[str]) -> PreTrainedTokenizerFast:
    """A char tokenizer giving `chars[i]` the id i, with the special tokens appended after them."""
    return wrap_tokenizer(_char_model([*chars, *SPECIAL_TOKENS]))


def ensure_special_tokens(tokenizer: PreTrainedTokenizerFast) -> bool:
    """Give a tokenizer made elsewhere the EOS (also BOS) and pad tokens hfgpt needs, after its own ids; True if
    a pad token was added.

    The pad token must differ from EOS: padding is masked out of the loss, and EOS must stay a target.
    """
    if tokenizer.eos_token is None:
        tokenizer.add_special_tokens({"eos_token": EOS_TOKEN})
    if tokenizer.bos_token is None:
        tokenizer.add_special_tokens({"bos_token": tokenizer.eos_token})
    return ensure_pad_token(tokenizer)


def ensure_pad_token(tokenizer: PreTrainedTokenizerFast) -> bool:
    """Add a pad token distinct from EOS (padding is masked, EOS must stay a target); True if one was added."""
    if tokenizer.pad_token is not None and tokenizer.pad_token_id != tokenizer.eos_token_id:
        return False
    tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    return True


def check_tokenizer_kind(kind: str) -> None:
    """Fail fast, before any data is read, on a tokenizer name hfgpt cannot train."""
    if kind not in TOKENIZER_KINDS:
        raise HfGptError(
            f"Unknown tokenizer {kind!r} (--tokenizer / [data] tokenizer). hfgpt trains its own "
            f"tokenizer from the training text; choose one of: {', '.join(TOKENIZER_KINDS)}."
        )


def _train_char(texts: Iterable[str]) -> Tokenizer:
    chars: set[str] = set()
    for text in texts:
        chars.update(text)
    return _char_model([*SPECIAL_TOKENS, *sorted(chars)])


def _char_model(tokens: list[str]) -> Tokenizer:
    """One id per entry of `tokens` (single characters and the special tokens), in that order."""
    tokenizer = Tokenizer(models.WordLevel({token: i for i, token in enumerate(tokens)}, unk_token=UNK_TOKEN))
    # `[\s\S]` is "any code point including newlines": Oniguruma rejects `(?s).`.
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), "isolated")
    tokenizer.decoder = decoders.Fuse()  # without it, decode joins the characters with spaces
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return tokenizer


def _train_bpe(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    minimum = MIN_BPE_VOCAB
    if vocab_size < minimum:
        raise HfGptError(
            f"--vocab-size {vocab_size} is too small for the byte-level bpe tokenizer: it needs at "
            f"least {minimum} (256 bytes plus {len(SPECIAL_TOKENS)} special tokens). Raise --vocab-size."
        )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte, so nothing is ever unknown
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def load_or_train_tokenizer(
    kind: str,
    texts: Callable[[], Iterable[str]],
    *,
    fingerprint: str,
    cache_dir: str | Path,
    vocab_size: int = 8192,
    reset: bool = False,
    log: Callable[[str], None] = print,
    about: str = "",
) -> PreTrainedTokenizerFast:
    """Load the tokenizer trained on the text identified by `fingerprint`, training it on first use.

    `texts` is called only when training is needed, so a cache hit reads no text. The tokenizer
    lives in `cache_dir/<kind>-<size>-<hash>/`; it is saved to a temporary folder and renamed into
    place, so an interrupted run never leaves a half-written tokenizer that a later run would trust.
    `reset=True` retrains and replaces it (never through a symlink: a linked folder is refused). The
    result is always loaded back from the saved folder, so a fresh and a reused tokenizer are
    byte-for-byte the same object state. `about` says what it trains on when that is not all the text.
    """
    check_tokenizer_kind(kind)
    size = "auto" if kind == "char" else str(vocab_size)  # a char vocabulary follows from the text
    key = hashlib.sha256(f"{_RECIPE_VERSION}|{kind}|{size}|{fingerprint}".encode()).hexdigest()[:16]
    folder = Path(cache_dir) / f"{kind}-{size}-{key}"
    if folder.is_dir() and not reset:
        try:
            tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
            log(f"reusing {kind} tokenizer from {folder}")
            return tokenizer
        except Exception as error:  # tokenizers raises a bare Exception for a malformed tokenizer.json
            warnings.warn(f"the tokenizer cached in {folder} cannot be read ({error_summary(error)}); "
                          "training it again.", stacklevel=2)
            reset = True

    refuse_linked_cache(folder, f"{kind} tokenizer")
    log(f"training {kind} tokenizer" + ("" if kind == "char" else f" (vocab {vocab_size})") + about + " ...")
    tokenizer = train_tokenizer(kind, texts(), vocab_size)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        tokenizer.save_pretrained(staging)
        if reset:
            remove_made(folder, _CACHED)
        publish(staging, folder)  # if another process was first: trained on the same text, it is equal
    finally:
        remove_made(staging, _STAGING, ignore_errors=True)
    log(f"saved {kind} tokenizer ({len(tokenizer)} tokens) to {folder}")
    return PreTrainedTokenizerFast.from_pretrained(folder)
