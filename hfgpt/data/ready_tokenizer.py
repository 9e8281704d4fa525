"""A ready tokenizer instead of one trained on the run's text: `--tokenizer` given a `tokenizer.json`, a folder
that `AutoTokenizer` loads (both relative to `--tokensdir`), or a Hub id such as `gpt2`.

hfgpt puts an end-of-text token between documents and pads with a token that is not it (padding is masked out
of the loss; end-of-text must stay a target), so the tokenizer must have an end-of-text token, and gets a pad
token, with a warning, when it has none of its own.
"""

from __future__ import annotations

import difflib
import warnings
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerFast

from ..errors import HfGptError, error_summary
from .tokenization import TOKENIZER_KINDS, ensure_special_tokens

# End-of-text tokens by the names tokenizer families give them, for a bare tokenizer.json that does not say.
_EOS_NAMES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "<|eot_id|>")


def load_ready_tokenizer(name: str, tokensdir: str = "") -> PreTrainedTokenizerFast:
    """The tokenizer `name` names (see the module docstring), with hfgpt's end-of-text and pad tokens."""
    path = Path(tokensdir).expanduser() / name if tokensdir and not Path(name).is_absolute() else Path(name)
    where = f"--tokenizer {name}" + (f" (--tokensdir {tokensdir})" if tokensdir else "")
    if path.is_file():
        tokenizer = _from_json(path, where)
    elif path.is_dir() or tokensdir or name.endswith((".json", "/")) or name.startswith((".", "/", "~")):
        tokenizer = _from_pretrained(path, where, "folder")
    else:
        tokenizer = _from_pretrained(name, where, "Hub id")
    if not hasattr(tokenizer, "backend_tokenizer"):
        raise HfGptError(f"{where} is a slow (Python) tokenizer; hfgpt needs a fast one with a tokenizer.json.")
    if tokenizer.eos_token is None:
        eos = next((token for token in _EOS_NAMES if token in tokenizer.get_vocab()), None)
        if eos is None:
            raise HfGptError(f"{where} has no end-of-text token, which hfgpt puts between documents; give a folder "
                             "whose tokenizer_config.json names its eos_token.")
        tokenizer.eos_token = eos
    if ensure_special_tokens(tokenizer):
        warnings.warn(f"{where} has no pad token of its own; hfgpt added {tokenizer.pad_token} (id "
                      f"{tokenizer.pad_token_id}), so the model's vocabulary is {len(tokenizer):,}.", stacklevel=2)
    return tokenizer


def _from_json(path: Path, where: str) -> PreTrainedTokenizerFast:
    try:
        return PreTrainedTokenizerFast(tokenizer_file=str(path), clean_up_tokenization_spaces=False)
    except Exception as error:  # tokenizers raises a bare Exception for a malformed file
        raise HfGptError(f"{where}: {path} is not a tokenizer.json that the tokenizers library reads "
                         f"({error_summary(error)}).") from None


def _from_pretrained(source: Path | str, where: str, kind: str) -> PreTrainedTokenizerFast:
    try:
        return AutoTokenizer.from_pretrained(str(source))
    except (OSError, ValueError) as error:
        close = difflib.get_close_matches(str(source), TOKENIZER_KINDS, n=1, cutoff=0.6)
        hint = (f"did you mean {close[0]}?" if close else "a Hub id needs the internet once (then it is cached)"
                if kind == "Hub id" else f"{source} is not a folder with a tokenizer")
        raise HfGptError(f"{where}: cannot load this tokenizer ({error_summary(error)}); {hint}. --tokenizer takes "
                         "char, bpe, a tokenizer.json, a tokenizer folder or a Hub id.") from None
