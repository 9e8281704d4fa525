"""nanoGPT-style binary shards: token ids made by someone else, read in place and never re-tokenized.

nanoGPT's prepare scripts write `train.bin` and `val.bin`, flat arrays of token ids (numpy
uint16, no header), and a meta file with the vocabulary. hfgpt reads a JSON one, `meta.json`:

    {"vocab_size": 65, "dtype": "uint16", "itos": {"0": "\\n", "1": " ", ...}}

(`stoi` instead of `itos` works too), or `{"tokenizer": "tokenizer.json"}` naming the tokenizer
file or folder that made the ids, relative to the meta file. The shards' ids become the model's
ids, so the tokenizer is built from the meta file and must give each meta id its meta token: a
char vocabulary gets hfgpt's special tokens appended after it, so no id moves. `--train` names a
.bin file, or a folder of .bin files whose `train.bin` is read (a nanoGPT data folder also holds
the text it came from; the shard wins); `--valid` names another, else `val.bin` beside the train
shard is used if present.
Shards are read through `np.memmap` in chunks, so a multi-GB file never has to fit in memory.
Bad input (a missing shard or meta file, a meta file that does not describe the shards) is an
`HfGptError` naming the file and the fix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers import PreTrainedTokenizerFast

from ..config import DataSection
from ..errors import HfGptError
from ..files import short_hash
from .shard_meta import Meta, parse_meta, read_meta
from .tokenization import char_tokenizer, ensure_special_tokens

TRAIN_SHARD, VALID_SHARD, META_FILE = "train.bin", "val.bin", "meta.json"
_CHUNK = 1 << 22  # ids read per step (8 MB of uint16); bounds memory
_SAMPLE = 4096  # ids of each shard decoded and re-encoded to check the tokenizer
_PROBE = 1 << 16  # bytes hashed at each of a few places of a shard for its fingerprint


@dataclass(frozen=True)
class Shards:
    """The train (and optional validation) shard of a run, the meta.json that describes both, and its tokenizer."""

    train: Path
    valid: Path | None
    meta: Meta
    tokenizer: PreTrainedTokenizerFast  # ids below `limit` are the meta vocabulary's; hfgpt's specials follow
    limit: int  # every shard id must be below this


# ----------------------------------------------------------------------------- finding the shards


def find_shards(cfg: DataSection) -> Shards | None:
    """The shards `--train` names (a .bin file or a folder holding train.bin), checked; None for text."""
    datadir = Path(cfg.datadir).expanduser()
    train = _shard_path(cfg.train, datadir, "--train", TRAIN_SHARD)
    valid = _shard_path(cfg.valid, datadir, "--valid", VALID_SHARD)
    if train is None:
        if valid is not None:
            raise HfGptError(
                f"--valid {cfg.valid!r} names a binary shard but --train {cfg.train!r} does not; token ids "
                "and text cannot be mixed. Point --train at the matching train.bin, or --valid at text files."
            )
        if cfg.meta:
            raise HfGptError(
                f"--meta {cfg.meta!r} describes binary shards, but --train {cfg.train!r} names none. Point "
                "--train at a .bin shard (or a folder holding train.bin), or leave --meta empty."
            )
        return None
    if cfg.dataset or cfg.valid_split:
        raise HfGptError(
            f"--train {cfg.train!r} names a binary shard, so --dataset and --valid-split do not apply; "
            "leave them empty (a validation shard is given with --valid)."
        )
    if cfg.valid and valid is None:
        raise HfGptError(
            f"--train names a binary shard but --valid {cfg.valid!r} names text; token ids and text cannot "
            f"be mixed. Point --valid at a {VALID_SHARD} written with the same vocabulary, or leave it empty."
        )
    if valid is None and (train.parent / VALID_SHARD).is_file():
        valid = train.parent / VALID_SHARD
    meta = read_meta((datadir / Path(cfg.meta).expanduser() if cfg.meta else train.parent / META_FILE).resolve(),
                      train)
    _check_shard(train, meta, validation=False)
    if valid is not None:
        _check_shard(valid, meta, validation=True)
    if meta.chars:
        tokenizer, limit = char_tokenizer(meta.chars), len(meta.chars)
    else:
        tokenizer, limit = _named_tokenizer(meta)
    return Shards(train.resolve(), valid.resolve() if valid else None, meta, tokenizer, limit)


def _shard_path(spec: str, datadir: Path, flag: str, name: str) -> Path | None:
    """The shard a flag names: a .bin file, or `name` in a folder holding .bin files; None for text."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    paths = [datadir / Path(item).expanduser() for item in items]
    is_shard = [p.suffix.lower() == ".bin" or (p.is_dir() and any(p.glob("*.bin"))) for p in paths]
    if not any(is_shard):
        return None
    if len(paths) > 1:
        raise HfGptError(
            f"{flag} {spec!r} lists a binary shard with other files; hfgpt reads one shard per split. Give "
            f"one .bin file (or one folder holding {name}), joining shards first with `cat a.bin b.bin > {name}`."
        )
    path = paths[0] / name if paths[0].is_dir() else paths[0]
    if not path.is_file():
        folder = path.parent
        held = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        holds = (f"the folder holds: {', '.join(held[:20])}{' ...' if len(held) > 20 else ''}" if held
                 else "the folder is empty" if folder.is_dir() else "the folder does not exist either")
        raise HfGptError(
            f"Binary shards not found: {flag} {items[0]!r} (relative to --datadir {str(datadir)!r}) made hfgpt "
            f"look for {path}, but {holds}. Point {flag} at a .bin file of token ids (as nanoGPT's prepare.py "
            f"writes), or at the folder that holds {name}."
        )
    return path


def _check_shard(path: Path, meta: Meta, validation: bool) -> None:
    """A shard is non-empty, a whole number of ids, and has no other meta.json beside it than the one read."""
    size, itemsize = path.stat().st_size, np.dtype(meta.dtype).itemsize
    if size == 0:
        remove = " or remove it (without a validation shard the training one's tail is held out)" if validation else ""
        raise HfGptError(f"{path} is empty: a shard needs at least one token id. Re-run the script that wrote "
                         f"it{remove}.")
    if size % itemsize:
        raise HfGptError(
            f"Meta path mismatch: {path} is {size:,} bytes, not a whole number of {meta.dtype} ids "
            f"({itemsize} bytes each) as {meta.path} says. Set \"dtype\" in {meta.path.name} to the type the "
            "shard was written with, or re-write the shard (it may be truncated)."
        )
    beside = path.parent / META_FILE
    if beside.is_file() and beside.resolve() != meta.path.resolve() and parse_meta(beside) != meta.content:
        raise HfGptError(
            f"Meta path mismatch: {path} has its own {beside}, which differs from {meta.path}, the meta file "
            "hfgpt reads for all the shards of this run; the ids of shards written with different vocabularies "
            "mean different tokens. Use shards written with one vocabulary, or point --meta at the right file."
        )


# ----------------------------------------------------------------------------- reading meta.json


def _named_tokenizer(meta: Meta) -> tuple[PreTrainedTokenizerFast, int]:
    """The tokenizer meta.json names, with the special tokens hfgpt needs, and how many ids it knew."""
    path = meta.tokenizer
    try:
        tokenizer = (PreTrainedTokenizerFast.from_pretrained(path) if path.is_dir()
                     else PreTrainedTokenizerFast(tokenizer_file=str(path)))
    except Exception as error:  # `tokenizers` reports a malformed tokenizer.json as a bare Exception
        raise HfGptError(
            f"Could not load the tokenizer {path} named in {meta.path} ({error}). Give a tokenizer.json file or a "
            "folder saved with save_pretrained, relative to meta.json."
        ) from error
    known = len(tokenizer)
    ensure_special_tokens(tokenizer)
    return tokenizer, min(meta.vocab_size or known, known)


# ----------------------------------------------------------------------------- tokenizer and ids


def shard_tokenizer(shards: Shards, supplied: PreTrainedTokenizerFast | None = None) -> PreTrainedTokenizerFast:
    """The tokenizer of the shards' ids: the one meta.json describes, or `supplied` once it agrees with it.

    Either way a sample of each shard must decode and re-encode to the same ids (a char vocabulary)
    or the same text (a named tokenizer, whose ids need not be the only encoding of a text).
    """
    meta, tokenizer = shards.meta, supplied or shards.tokenizer
    if supplied is not None:
        given = supplied.get_vocab()
        wrong = sorted((i, token) for token, i in shards.tokenizer.get_vocab().items()
                       if i < shards.limit and given.get(token) != i)
        if wrong:
            i, token = wrong[0]
            raise HfGptError(
                f"The given tokenizer (a continued run's or a forked model's) does not agree with {meta.path}: "
                f"token {token!r} is id {i} there but {given.get(token)} in the tokenizer ({len(wrong)} of "
                f"{shards.limit} ids differ), so the shards' ids would mean other tokens. Fine-tune on shards "
                "written with that tokenizer's vocabulary, or train a new run on these shards."
            )
    for shard in (shards.train, shards.valid):
        if shard is not None:
            _check_sample(shard, shards, tokenizer)
    return tokenizer


def _check_sample(path: Path, shards: Shards, tokenizer: PreTrainedTokenizerFast) -> None:
    ids = np.memmap(path, dtype=shards.meta.dtype, mode="r")[:_SAMPLE].astype(np.int64)
    _check_ids(ids, path, shards)
    backend = tokenizer.backend_tokenizer  # no warning about the sample being longer than the model's context
    text = backend.decode(ids.tolist(), skip_special_tokens=False)
    again = backend.encode(text, add_special_tokens=False).ids
    if shards.meta.chars and again != ids.tolist():
        first = next((i for i, (a, b) in enumerate(zip(again, ids.tolist(), strict=False)) if a != b),
                     min(len(again), len(ids)))
        problem = f"they come back as other ids from position {first} on"
    elif not shards.meta.chars and backend.decode(again, skip_special_tokens=False) != text:
        problem = "the text changes when encoded and decoded again"
    else:
        return
    raise HfGptError(
        f"Meta path mismatch: the first {len(ids)} ids of {path}, decoded with the tokenizer of "
        f"{shards.meta.path} and encoded again, do not round-trip: {problem}. That tokenizer did not write the "
        "shard; fix the vocabulary in meta.json."
    )


def _check_ids(ids: np.ndarray, path: Path, shards: Shards) -> None:
    top = int(ids.max())
    if top >= shards.limit:
        raise HfGptError(
            f"Meta path mismatch: {path} holds token id {top}, but {shards.meta.path} describes only ids "
            f"0..{shards.limit - 1} (its vocab_size, or what its vocabulary or tokenizer holds). The shard was "
            "written with another vocabulary or dtype: point --meta at its own meta file, or fix vocab_size and dtype."
        )


def shard_ids(path: Path, shards: Shards) -> Iterator[np.ndarray]:
    """The ids of a shard as int32 chunks, read through a memory map and checked against the vocabulary."""
    ids = np.memmap(path, dtype=shards.meta.dtype, mode="r")
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK].astype(np.int32)
        _check_ids(chunk, path, shards)
        yield chunk


def shard_fingerprint(path: Path, meta: Meta) -> str:
    """Identify a shard (and its meta file) cheaply: size, mtime and a hash of a few sampled stretches."""
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for offset in sorted({0, max(0, stat.st_size // 2 - _PROBE // 2), max(0, stat.st_size - _PROBE)}):
            file.seek(offset)
            digest.update(file.read(_PROBE))
    return short_hash(["shard", str(path), stat.st_size, stat.st_mtime_ns, digest.hexdigest(), meta.content])
