"""The text splits of a run: its tokenizer (given, or trained on the training text: all of it up to
`--tokenizer-sample` MB, else a uniform sample of that size) and each split's token stream, tokenized in
`--num-proc` processes as the packer reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from transformers import PreTrainedTokenizerFast

from ..config import DataSection
from ..errors import HfGptError
from ..files import short_hash
from .chunking import cuttable
from .encoding import encode_tasks
from .packing import Split
from .reading import SourceText, text_bytes
from .sources import Source, find_evaluated, find_sources, fingerprint, load_parts
from .tokenization import load_or_train_tokenizer

MB = 1_000_000  # what --tokenizer-sample counts in


@dataclass(frozen=True)
class TextSplits:
    tokenizer: PreTrainedTokenizerFast
    train: Split | None  # None when the text is only evaluated
    valid: Split | None
    unknown: dict[str, int]  # unk tokens in each split read so far, counted as the ids go by


def text_splits(cfg: DataSection, root: Path, tokenizer: PreTrainedTokenizerFast | None,
                log: Callable[[str], None], progress: bool, evaluate: str = "") -> TextSplits:
    """The tokenizer (given, or trained on the training text) and the text splits, tokenized when read. To
    `evaluate` a text with a given tokenizer (the flag that names it), only the validation text is found, read and
    tokenized."""
    train_src, valid_src = (None, find_evaluated(cfg, evaluate)) if evaluate else find_sources(cfg)

    @cache
    def load(src: Source) -> SourceText:
        return SourceText(src.origin, tuple(load_parts(src, cfg.text_column, root / "datasets")))

    def rows(src: Source):  # a dataset source: its rows, for its fingerprint
        return load(src).parts[0].rows

    train_fp = fingerprint(train_src, rows, cfg.text_column) if train_src else ""
    if tokenizer is None:
        if train_src is None:
            raise ValueError("a text is evaluated with its model's tokenizer, and none was given")
        tokenizer = _trained_tokenizer(cfg, train_src, lambda: load(train_src), train_fp, root, log)
    cut = cuttable(tokenizer.backend_tokenizer)
    unknown: dict[str, int] = {}

    def split(src: Source, fp: str) -> Split:
        def read(work: Path, name: str) -> Iterator[np.ndarray]:
            text = load(src)
            if not cut and any(part.files for part in text.parts):
                log("this tokenizer may tokenize a text cut in two differently (hfgpt knows the cuts of its own "
                    "char and bpe tokenizers and of GPT-2's): each .txt file is read and tokenized whole")
            args = (tokenizer.backend_tokenizer.to_str(), tokenizer.eos_token_id, cut,
                    cfg.split_documents == "blank-line", text.datasets)
            desc = "tokenizing the text to evaluate" if evaluate else f"tokenizing {name}"
            chunks = encode_tasks(text.tasks(cut), args, cfg.num_proc, text.size, desc, progress)
            return _with_text(chunks, src.origin, tokenizer, unknown, name)
        return Split(src.origin, fp, read)

    valid = split(valid_src, fingerprint(valid_src, rows, cfg.text_column)) if valid_src else None
    return TextSplits(tokenizer, split(train_src, train_fp) if train_src else None, valid, unknown)


def union_tokenizer(cfg: DataSection, src: Source, root: Path, log: Callable[[str], None]) -> PreTrainedTokenizerFast:
    """The tokenizer trained on the files of `src` (a mixture's sources together: the tokenizer of `--train a,b`,
    whose fingerprint is that of the same files), from the cache when it was trained before."""
    text = cache(lambda: SourceText(src.origin, tuple(load_parts(src, cfg.text_column, root / "datasets"))))
    return _trained_tokenizer(cfg, src, text, fingerprint(src, lambda _: text().parts[0].rows, cfg.text_column),
                              root, log)


def _trained_tokenizer(cfg: DataSection, src: Source, text: Callable[[], SourceText], fp: str, root: Path,
                       log: Callable[[str], None]) -> PreTrainedTokenizerFast:
    """The tokenizer trained on the training text, from the cache when it was trained before. A bpe tokenizer
    trains on a uniform sample of `--tokenizer-sample` MB when the text is bigger; char reads all of it."""
    budget = cfg.tokenizer_sample * MB if cfg.tokenizer == "bpe" else 0
    size = text_bytes(text().parts[0].rows) if src.dataset else sum(path.stat().st_size for path in src.files)
    sampled = 0 < budget < size
    about = (f" on a uniform sample of {budget / MB:,.0f} MB of the {size / MB:,.0f} MB of training text "
             f"(--tokenizer-sample {cfg.tokenizer_sample})") if sampled else ""
    return load_or_train_tokenizer(
        cfg.tokenizer, lambda: text().sample(budget / size) if sampled else text().chunks(),
        fingerprint=short_hash([fp, "sample", budget]) if sampled else fp,  # unsampled: the key it always had
        cache_dir=root / "tokenizers", vocab_size=cfg.vocab_size, reset=cfg.reset, log=log, about=about,
    )


def _with_text(chunks: Iterator[np.ndarray], origin: str, tokenizer: PreTrainedTokenizerFast,
               unknown: dict[str, int], name: str) -> Iterator[np.ndarray]:
    """The chunks as they come, counting unk tokens into `unknown[name]`; fails at the end when they held
    nothing but EOS (every document empty)."""
    text, unk = False, tokenizer.unk_token_id
    unknown[name] = 0
    for chunk in chunks:
        text = text or bool((chunk != tokenizer.eos_token_id).any())
        unknown[name] += int(np.count_nonzero(chunk == unk)) if unk is not None else 0
        yield chunk
    if not text:
        raise HfGptError(f"{origin} holds no text at all: every document is empty. Give it some text.")
