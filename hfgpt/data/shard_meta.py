"""meta.json, which describes nanoGPT-style shards: how they store token ids (`dtype`), and the vocabulary that
decodes them, either a character per id (`itos` or `stoi`, as nanoGPT's meta.pkl has it; `itos` may also list the
characters in id order) or the `tokenizer` file or folder that made them, relative to the meta file. Every way it
can be wrong is an `HfGptError` that names the file and the fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HfGptError
from .checks import json_kind

SHARD_DTYPES = ("uint8", "uint16", "uint32")  # what token ids are stored as; nanoGPT writes uint16
_META_EXAMPLE = ('{"vocab_size": 65, "dtype": "uint16", "itos": {"0": "\\n", "1": " ", ...}} for a character '
                 'vocabulary, or {"dtype": "uint16", "tokenizer": "tokenizer.json"} naming the tokenizer file '
                 "or folder that made the ids (relative to meta.json)")
_MAPPINGS = ('"itos" maps each id to its character, as in {"0": "\\n", "1": " ", ...}, or lists the characters in '
             'id order; "stoi" maps each character to its id')
_PKL_TO_JSON = ("python -c \"import json, pickle; m = pickle.load(open('meta.pkl', 'rb')); json.dump({'vocab_size': "
                "m['vocab_size'], 'dtype': 'uint16', 'itos': m['itos']}, open('meta.json', 'w'))\"")


@dataclass(frozen=True)
class Meta:
    """What a meta.json says: how the shards store ids, and the vocabulary that decodes them."""

    path: Path
    content: dict[str, Any]  # the parsed file, for comparisons and cache keys
    dtype: str
    vocab_size: int  # 0 when the file gives none (a named tokenizer then sets the limit)
    chars: tuple[str, ...]  # the character of each id, for a char vocabulary; empty with `tokenizer`
    tokenizer: Path | None


def read_meta(path: Path, train: Path) -> Meta:
    if not path.is_file():
        pickled = path.parent / "meta.pkl"
        hint = (f" nanoGPT's {pickled} is there: convert it in that folder with {_PKL_TO_JSON}." if pickled.is_file()
                else "")
        raise HfGptError(
            f"Meta file missing: {path} does not exist, and hfgpt needs it to read and decode {train}. Write a "
            f"meta.json beside the shards, e.g. {_META_EXAMPLE}, or point --meta at one.{hint}"
        )
    content = parse_meta(path)
    dtype = content.get("dtype", "uint16")
    if dtype not in SHARD_DTYPES:
        raise HfGptError(
            f"Meta path mismatch: {path} gives dtype {dtype!r}, which is not a token id type hfgpt reads "
            f"({', '.join(SHARD_DTYPES)}). Set \"dtype\" to the type the shards were written with (nanoGPT: uint16)."
        )
    vocab_size = content.get("vocab_size", 0)  # 0: not given
    if "vocab_size" in content and (type(vocab_size) is not int or vocab_size < 1):
        raise HfGptError(f"{path} gives vocab_size {vocab_size!r}; it must be a positive whole number of ids.")
    if "tokenizer" in content:
        tokenizer = path.parent / str(content["tokenizer"])
        if not tokenizer.exists():
            raise HfGptError(
                f"{path} names the tokenizer {content['tokenizer']!r}, but {tokenizer} does not exist. The path "
                "is relative to meta.json; give the tokenizer.json (or tokenizer folder) that made the ids."
            )
        return Meta(path, content, dtype, vocab_size, (), tokenizer)
    chars = _char_vocabulary(path, content)
    if vocab_size and vocab_size != len(chars):
        raise HfGptError(
            f"Meta path mismatch: {path} gives vocab_size {vocab_size} but characters for {len(chars)} ids; "
            "they must agree (nanoGPT's vocab_size is the number of characters). Fix either one."
        )
    return Meta(path, content, dtype, len(chars), chars, None)


def parse_meta(path: Path) -> dict[str, Any]:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise HfGptError(f"{path} is not valid JSON ({error}). A meta.json looks like {_META_EXAMPLE}.") from error
    if not isinstance(content, dict):
        raise HfGptError(f"{path} holds a JSON {json_kind(content)}, not an object like {_META_EXAMPLE}.")
    return content


def _char_vocabulary(path: Path, content: dict[str, Any]) -> tuple[str, ...]:
    """The character of each id 0..n-1 from `itos` (id -> char) or `stoi` (char -> id), checked."""
    if "itos" not in content and "stoi" not in content:
        raise HfGptError(
            f"Char vocabulary missing: {path} has neither \"itos\" nor \"stoi\" (nor \"tokenizer\"), so the ids "
            f"in the shards cannot be decoded. Add the vocabulary, e.g. {_META_EXAMPLE}."
        )
    itos, stoi = content.get("itos", {}), content.get("stoi", {})
    if isinstance(itos, list):  # the characters in id order
        itos = dict(enumerate(itos))
    for name, value in (("itos", itos), ("stoi", stoi)):
        if not isinstance(value, dict):
            raise HfGptError(f"{path} gives \"{name}\" as a JSON {json_kind(value)}, not a mapping: {_MAPPINGS}.")
    try:
        from_itos = [(int(i), char) for i, char in itos.items()]
        from_stoi = [(int(i), char) for char, i in stoi.items()]
    except (TypeError, ValueError) as error:
        raise HfGptError(f"{path} has an id that is not a whole number ({error}): {_MAPPINGS}.") from None
    if from_itos and from_stoi and dict(from_itos) != dict(from_stoi):
        raise HfGptError(f"Meta path mismatch: {path} has \"itos\" and \"stoi\" that disagree; keep one of them.")
    pairs = from_itos or from_stoi
    if not pairs:
        raise HfGptError(f"Char vocabulary missing: the vocabulary in {path} is empty. Add one character per id.")
    by_id = dict(pairs)
    chars = tuple(by_id.get(i) for i in range(len(pairs)))
    if len(by_id) != len(pairs) or None in chars or len(set(chars)) != len(chars):
        raise HfGptError(
            f"{path} does not give one distinct character to each id 0..{len(pairs) - 1}: ids are missing or "
            "repeated, or characters are. Write the vocabulary as nanoGPT does (itos of the sorted characters)."
        )
    odd = [char for char in chars if not isinstance(char, str) or len(char) != 1]
    if odd:
        raise HfGptError(
            f"{path} has vocabulary entries that are not single characters ({odd[:3]!r}); a char vocabulary "
            "maps each id to one character. For multi-character tokens name the tokenizer with \"tokenizer\"."
        )
    return chars
