"""Where a text may be cut so that its pieces tokenize to exactly the ids of the whole, and reading a .txt file
of any size in such pieces.

The safe cut: between a character that is not whitespace and a space, tab, line feed or carriage return.
Why it is exact for hfgpt's byte-level BPE (`ByteLevel(add_prefix_space=False)`, no normalizer): its ids are
those of the pieces the GPT-2 pattern
`'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+` matches, one after the
other, each piece encoded alone. Let text[p-1] be non-whitespace and text[p] whitespace.
- A piece boundary lies at p: the piece holding text[p-1] is a contraction or a run of letters, digits or
  other symbols (the optional space of ` ?` only ever starts a piece), none of which takes whitespace after it.
- The pieces before p are the same in text[:p]: an alternative tried from a start before p reads no further
  than p, where the whole text's whitespace and the prefix's end both stop it alike (a run of letters, digits
  or symbols ends at its first character of another class, a contraction fails on either); whitespace runs
  before p end before text[p-1], so `(?!\\S)` is only ever tried where both texts hold the same characters.
- The pieces from p on are the same in text[p:]: the pattern has no look-behind, and matching resumes at p.
This is why the rule is "before a whitespace run" and not "before what follows a line break": cut "a\\n\\nb"
before the b and the prefix's last piece becomes "\\n\\n" (`\\s+(?!\\S)` at the end of the text) where the
whole text has "\\n", "\\n" (which BPE merges differently); "a\\r\\nb" likewise.
hfgpt's char tokenizer splits every code point, so any cut between characters is exact; this rule serves it
too. Special tokens hold no whitespace, so no cut falls inside one (the library matches them first). For any
other tokenizer (a forked model's, with a normalizer, another pattern, or added tokens that strip spaces),
`cuttable` says no and a document is tokenized whole, as before.

`\\s` is Unicode White_Space; Python's `str.isspace` adds U+001C..U+001F, so `not isspace()` is surely
non-whitespace, and the four ASCII characters above are surely whitespace (tests/data/test_chunking.py checks
both against the tokenizers library over the Basic Multilingual Plane, which holds all of White_Space).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from tokenizers import Tokenizer

SPAN_BYTES = 1 << 20  # bytes of a .txt file per tokenizing task
PIECE_CHARS = 1 << 12  # characters per string handed to the tokenizer: small ones encode fastest
_WINDOW = 1 << 16  # bytes read at a time while looking for a cut
_CANDIDATE = re.compile("[ \t\n\r]")
_CANDIDATE_BYTES = re.compile(b"[ \t\n\r]")
_CHAR_SPLIT = {"type": "Split", "pattern": {"Regex": "[\\s\\S]"}, "behavior": "Isolated", "invert": False}
# One or more blank lines (nothing but whitespace), each right after a line break: they end a document.
BLANK_LINES = re.compile(r"(?<=\n)(?:[^\S\n]*\n)+")
SPLIT_DOCUMENTS = ("file", "blank-line")


def cuttable(tokenizer: Tokenizer) -> bool:
    """Whether texts cut at `safe cuts` tokenize to the ids of the whole text with this tokenizer."""
    spec = json.loads(tokenizer.to_str())
    pre = spec.get("pre_tokenizer") or {}
    byte_level = pre.get("type") == "ByteLevel" and not pre.get("add_prefix_space") and pre.get("use_regex", True)
    model = spec.get("model") or {}
    plain_model = model.get("type") == "WordLevel" or (model.get("type") == "BPE" and model.get("dropout") is None)
    plain_added = all(not (token.get("lstrip") or token.get("rstrip") or token.get("single_word"))
                      and not any(char.isspace() for char in token.get("content", ""))
                      for token in spec.get("added_tokens") or [])
    return spec.get("normalizer") is None and (byte_level or pre == _CHAR_SPLIT) and plain_model and plain_added


def is_cut(text: str, position: int) -> bool:
    """Whether `position` is a safe cut of `text` (see the module docstring)."""
    return 0 < position < len(text) and text[position] in " \t\n\r" and not text[position - 1].isspace()


def pieces(text: str, size: int = PIECE_CHARS) -> list[str]:
    """`text` cut at the first safe cut after every `size` characters (whole, where there is none)."""
    cuts, start = [], 0
    while start + size < len(text):
        found = _CANDIDATE.search(text, start + size)
        while found and text[found.start() - 1].isspace():
            found = _CANDIDATE.search(text, found.start() + 1)
        if found is None:
            break
        cuts.append(text[start:found.start()])
        start = found.start()
    cuts.append(text[start:])
    return cuts


def documents(text: str, at_file_start: bool) -> list[str]:
    """The parts of `text` between blank lines (`--split-documents blank-line`); a part followed by blank lines
    ends its document. `at_file_start`: the text starts a line (a file's first line), so leading blank lines
    count as such."""
    if not at_file_start:
        return BLANK_LINES.split(text)
    parts = BLANK_LINES.split("\n" + text)
    parts[0] = parts[0][1:]
    return parts


# ----------------------------------------------------------------------------- reading a file in spans


def file_spans(path: Path, span_bytes: int = SPAN_BYTES) -> Iterator[tuple[int, int]]:
    """Byte ranges `[start, end)` that tile the file, each ending at a safe cut (or the file's end) at least
    `span_bytes` after its start. Only a window around each cut is read."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        start = 0
        while start < size:
            end = cut_at_or_after(file, start + span_bytes, size)
            yield start, end
            start = end


def cut_at_or_after(file: BinaryIO, target: int, size: int) -> int:
    """The byte offset of the first safe cut at or after `target`, or `size` when there is none."""
    position = target
    while position < size:
        file.seek(max(0, position - 4))  # the character before the candidate: at most 4 bytes of UTF-8
        window = file.read(_WINDOW + 4)
        lead = min(4, position)
        for found in _CANDIDATE_BYTES.finditer(window, lead):
            before = _char_before(window, found.start())
            if before is not None and not before.isspace():
                return position - lead + found.start()
        position += _WINDOW
    return size


def _char_before(window: bytes, index: int) -> str | None:
    """The UTF-8 character that ends just before `index`, or None when the window does not hold it whole."""
    for length in range(1, 5):
        start = index - length
        if start < 0:
            return None
        try:
            return window[start:index].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


def read_span(path: Path, start: int, end: int) -> str:
    """The text of a byte range that `file_spans` gave (it starts and ends between characters)."""
    with open(path, "rb") as file:
        file.seek(start)
        return file.read(end - start).decode("utf-8")


def text_chunks(path: Path, chunk_bytes: int = SPAN_BYTES) -> Iterator[str]:
    """The text of a file in chunks cut at safe cuts, read sequentially with an incremental decoder."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    held = ""
    with open(path, "rb") as file:
        while block := file.read(chunk_bytes):
            held += decoder.decode(block)
            cut = _last_cut(held)
            if cut > 0:
                yield held[:cut]
                held = held[cut:]
    held += decoder.decode(b"", final=True)
    if held:
        yield held


def _last_cut(text: str) -> int:
    """The last safe cut of `text`, or 0 when it has none."""
    position = len(text)
    while (position := max(text.rfind(char, 0, position) for char in " \t\n\r")) > 0:
        if not text[position - 1].isspace():
            return position
    return 0
