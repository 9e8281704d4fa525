"""nanoGPT-style binary shards: ids packed exactly, the tokenizer from meta.json, the cache, bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from helpers import make_docs, run, section, stream, write_char_shards, write_txt

import hfgpt.data.packing
import hfgpt.data.prepare
import hfgpt.data.shards
from hfgpt.config import TrainConfig
from hfgpt.data.prepare import prepare_data
from hfgpt.data.tokenization import SPECIAL_TOKENS, train_tokenizer
from hfgpt.errors import HfGptError

TEXT = "".join(make_docs(40))  # unicode, emoji, tabs and newlines
VALID = "".join(make_docs(6, seed=9))


def ids_of(path) -> list[int]:
    meta = json.loads((path.parent / "meta.json").read_text())
    return np.fromfile(path, dtype=meta.get("dtype", "uint16")).tolist()


def blocks(dataset, n_tokens: int) -> list[int]:
    """The real tokens of a packed split, in order (its padding, if any, cut off)."""
    return dataset[list(range(len(dataset)))]["input_ids"].reshape(-1)[:n_tokens].tolist()


@pytest.mark.parametrize("dtype", ["uint16", "uint32"])
def test_blocks_are_the_shard_ids_and_val_bin_is_the_validation_set(tmp_path, dtype) -> None:
    folder = tmp_path / "data" / "shakespeare_char"
    stoi = write_char_shards(folder, TEXT, VALID, dtype=dtype)
    write_txt(folder / "input.txt", TEXT)  # nanoGPT keeps the source text beside the shards: not read
    data, logs = run(section(tmp_path, train="shakespeare_char"), seq_len=16)

    assert blocks(data.train, data.train_tokens) == ids_of(folder / "train.bin")
    assert blocks(data.valid, data.valid_tokens) == ids_of(folder / "val.bin")
    assert (data.train_tokens, data.valid_tokens) == (len(TEXT), len(VALID))
    padding = data.valid[[len(data.valid) - 1]]["input_ids"].reshape(-1)[data.valid_tokens % 16:]
    assert (padding == data.tokenizer.pad_token_id).all()
    # The meta ids are kept; hfgpt's special tokens come after them, and the ids decode to the text.
    assert {c: data.tokenizer.convert_tokens_to_ids(c) for c in stoi} == stoi
    assert [data.tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [len(stoi) + i for i in range(3)]
    assert data.tokenizer.decode(ids_of(folder / "train.bin")) == TEXT
    assert data.tokenizer.encode(VALID, add_special_tokens=False) == ids_of(folder / "val.bin")
    assert any("not re-tokenized" in line for line in logs)


def test_a_shard_file_without_val_bin_holds_out_the_tail(tmp_path) -> None:
    write_char_shards(tmp_path / "data" / "d", TEXT)
    data, _ = run(section(tmp_path, train="d/train.bin", valid_fraction=0.2), seq_len=16)
    assert len(data.valid) == int(np.ceil(0.2 * (len(data.train) + len(data.valid))))
    assert stream(data) == ids_of(tmp_path / "data" / "d" / "train.bin")


def test_valid_flag_and_meta_flag_name_other_files(tmp_path) -> None:
    stoi = write_char_shards(tmp_path / "data" / "a", TEXT, VALID)
    os.rename(tmp_path / "data" / "a" / "val.bin", tmp_path / "data" / "held.bin")
    os.rename(tmp_path / "data" / "a" / "meta.json", tmp_path / "data" / "vocab.json")
    data, _ = run(section(tmp_path, train="a", valid="held.bin", meta="vocab.json"))
    assert blocks(data.valid, data.valid_tokens) == [stoi[c] for c in VALID]


def test_stoi_alone_is_a_vocabulary(tmp_path) -> None:
    stoi = write_char_shards(tmp_path / "data" / "d", TEXT)
    meta = tmp_path / "data" / "d" / "meta.json"
    meta.write_text(json.dumps({"vocab_size": len(stoi), "stoi": stoi}))  # dtype defaults to uint16
    data, _ = run(section(tmp_path, train="d"))
    assert data.tokenizer.decode(stream(data)) == TEXT


def test_itos_may_list_the_characters_in_id_order(tmp_path) -> None:
    """The issue's repro: a list gave Python's "dictionary update sequence element #0 has length 1; 2 is required"."""
    stoi = write_char_shards(tmp_path / "data" / "d", TEXT)
    rewrite_meta(itos=sorted(stoi, key=stoi.get))(tmp_path / "data" / "d")
    data, _ = run(section(tmp_path, train="d"))
    assert data.tokenizer.decode(stream(data)) == TEXT


@pytest.mark.parametrize("saved", ["tokenizer.json", "folder"])
def test_meta_can_name_the_tokenizer_that_wrote_the_ids(tmp_path, saved) -> None:
    bpe = train_tokenizer("bpe", [TEXT], vocab_size=400)
    folder = tmp_path / "data" / "bpe"
    folder.mkdir(parents=True)
    ids = bpe.encode(TEXT, add_special_tokens=False)
    np.array(ids, dtype=np.uint16).tofile(folder / "train.bin")
    if saved == "folder":
        bpe.save_pretrained(folder / "tok")
    else:
        bpe.backend_tokenizer.save(str(folder / "tok.json"))  # a bare tokenizers file: no special token roles
    (folder / "meta.json").write_text(json.dumps({"tokenizer": "tok" if saved == "folder" else "tok.json"}))
    data, _ = run(section(tmp_path, train="bpe"))
    assert stream(data) == ids
    assert max(ids) > 300  # merged tokens, not bytes
    assert data.tokenizer.decode(ids) == TEXT
    assert data.tokenizer.pad_token_id != data.tokenizer.eos_token_id


def test_second_run_reuses_the_cache_and_a_changed_shard_rebuilds(tmp_path, monkeypatch) -> None:
    write_char_shards(tmp_path / "data" / "d", TEXT, VALID)
    cfg = section(tmp_path, train="d")
    first, _ = run(cfg)
    assert not first.reused

    def forbidden(*args, **kwargs):
        raise AssertionError("a cached run must not read or pack the shards")

    with monkeypatch.context() as patch:
        patch.setattr(hfgpt.data.packing, "ShardWriter", forbidden)
        patch.setattr(hfgpt.data.prepare, "shard_ids", forbidden)
        second, logs = run(cfg)
    assert second.reused and second.cache_dir == first.cache_dir
    assert f"reusing packed data from {first.cache_dir}" in logs
    assert blocks(second.train, second.train_tokens) == blocks(first.train, first.train_tokens)
    assert blocks(second.valid, second.valid_tokens) == blocks(first.valid, first.valid_tokens)

    # Same size and mtime, other ids: the sampled hash tells them apart.
    shard = tmp_path / "data" / "d" / "train.bin"
    stat = shard.stat()
    np.array(ids_of(shard)[::-1], dtype=np.uint16).tofile(shard)
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed, _ = run(cfg)
    assert not changed.reused and changed.cache_dir != first.cache_dir


def test_ids_beyond_the_vocabulary_are_found_in_any_chunk(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(hfgpt.data.shards, "_CHUNK", 64)
    monkeypatch.setattr(hfgpt.data.shards, "_SAMPLE", 64)  # the bad id lies past the sample checked up front
    stoi = write_char_shards(tmp_path / "data" / "d", TEXT)
    ids = np.array([stoi[c] for c in TEXT], dtype=np.uint16)
    ids[1000] = len(stoi)
    ids.tofile(tmp_path / "data" / "d" / "train.bin")
    with pytest.raises(HfGptError, match=rf"Meta path mismatch: .*train\.bin holds token id {len(stoi)}, but"):
        run(section(tmp_path, train="d"))
    assert [p.name for p in (tmp_path / "cache" / "packed").iterdir()] == []  # nothing half-built left


def test_a_supplied_tokenizer_must_agree_with_meta(tmp_path) -> None:
    write_char_shards(tmp_path / "data" / "d", TEXT, VALID)
    cfg = section(tmp_path, train="d")
    first, _ = run(cfg)
    first.tokenizer.save_pretrained(tmp_path / "run" / "tokenizer")
    saved = type(first.tokenizer).from_pretrained(tmp_path / "run" / "tokenizer")  # as `continue` loads it
    again = prepare_data(cfg, 16, log=lambda line: None, tokenizer=saved)
    assert again.tokenizer is saved and again.reused and again.cache_dir == first.cache_dir

    trained = train_tokenizer("char", [TEXT, VALID])  # same characters, but the special tokens come first
    with pytest.raises(HfGptError, match=r"given tokenizer .* does not agree with .*meta\.json: token '\\t' is "
                                         r"id 0 there but 3 in the tokenizer"):
        prepare_data(cfg, 16, log=lambda line: None, tokenizer=trained)


def test_meta_must_name_a_json_file() -> None:
    cfg = TrainConfig()
    cfg.data.meta = "data/meta.pkl"
    with pytest.raises(HfGptError, match=r"--meta \(data/meta\.pkl\) must name a \.json file"):
        cfg.validate()


def shards(setup):
    """A setup that writes char shards of TEXT into data/d and then breaks them with `setup(folder)`."""
    def make(root):
        write_char_shards(root / "d", TEXT, VALID)
        write_txt(root / "d" / "input.txt", TEXT)
        setup(root / "d")
    return make


def rewrite_meta(**changes):
    def change(folder):
        meta = json.loads((folder / "meta.json").read_text())
        meta.update(changes)
        (folder / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if v is not None}))
    return change


@pytest.mark.parametrize(
    ("setup", "overrides", "pattern"),
    [
        (None, {"train": "nowhere/train.bin"}, r"Binary shards not found: --train 'nowhere/train\.bin' .* look for "
                                               r".*nowhere/train\.bin, but the folder does not exist either"),
        (lambda root: [write_txt(root / "d" / name, "{}") for name in ["shard0.bin", "meta.json"]], {"train": "d"},
         r"Binary shards not found: .* look for .*d/train\.bin, but the folder holds: meta\.json, shard0\.bin"),
        (shards(lambda d: None), {"train": "d", "valid": "d/valid.bin"},
         r"Binary shards not found: --valid .*d/valid\.bin, but the folder holds: input\.txt, meta\.json, "
         r"train\.bin, val\.bin"),
        (shards(lambda d: (d / "meta.json").unlink()), {"train": "d"},
         r"Meta file missing: .*d/meta\.json does not exist"),
        (shards(lambda d: (d / "meta.json").rename(d / "meta.pkl")), {"train": "d"},
         r"Meta file missing: .*meta\.pkl is there: convert it"),
        (shards(lambda d: write_txt(d / "meta.json", "{'vocab_size': 65}")), {"train": "d"},
         r"meta\.json is not valid JSON \(Expecting property name"),
        (shards(rewrite_meta(itos=None)), {"train": "d"},
         r"Char vocabulary missing: .*meta\.json has neither \"itos\" nor \"stoi\""),
        (shards(rewrite_meta(vocab_size=5)), {"train": "d"},
         r"Meta path mismatch: .*meta\.json gives vocab_size 5 but characters for \d+ ids"),
        (shards(lambda d: rewrite_meta(itos={str(i): "abcde"[i] for i in range(5)}, vocab_size=5)(d)),
         {"train": "d"}, r"Meta path mismatch: .*train\.bin holds token id \d+, but .*only ids 0\.\.4"),
        (shards(lambda d: (d / "train.bin").write_bytes(b"\0\0\0")), {"train": "d"},
         r"Meta path mismatch: .*train\.bin is 3 bytes, not a whole number of uint16 ids"),
        (shards(rewrite_meta(dtype="float32")), {"train": "d"},
         r"Meta path mismatch: .*meta\.json gives dtype 'float32'"),
        (shards(lambda d: write_txt(d.parent / "v" / "meta.json", "{}") and (d / "val.bin").rename(
            d.parent / "v" / "val.bin")), {"train": "d", "valid": "v"},
         r"Meta path mismatch: .*v/val\.bin has its own .*v/meta\.json, which differs from .*d/meta\.json"),
        (shards(lambda d: (d / "val.bin").write_bytes(b"")), {"train": "d"}, r"val\.bin is empty"),
        (shards(rewrite_meta(itos=None, tokenizer="tok.json")), {"train": "d"},
         r"names the tokenizer 'tok\.json', but .*d/tok\.json does not exist"),
        (shards(lambda d: write_txt(d / "tok.json", "{not json") and rewrite_meta(itos=None, tokenizer="tok.json")(d)),
         {"train": "d"}, r"Could not load the tokenizer .*d/tok\.json named in .*meta\.json"),
        (shards(rewrite_meta(itos={"0": "ab"}, vocab_size=1)), {"train": "d"}, r"not single characters \(\['ab'\]\)"),
        (shards(rewrite_meta(itos={}, vocab_size=None)), {"train": "d"}, r"Char vocabulary missing: the vocabulary"),
        (shards(rewrite_meta(stoi={"a": 1})), {"train": "d"}, r"\"itos\" and \"stoi\" that disagree"),
        (shards(rewrite_meta(itos="abc")), {"train": "d"}, r"meta\.json gives \"itos\" as a JSON string, not a "
                                                           r"mapping: \"itos\" maps each id to its character, as in "),
        (shards(rewrite_meta(itos=None, stoi=["a"])), {"train": "d"}, r"gives \"stoi\" as a JSON array, not a mapping"),
        (shards(rewrite_meta(itos={"one": "a"})), {"train": "d"}, r"has an id that is not a whole number \(invalid "
                                                                 r"literal for int\(\) with base 10: 'one'\)"),
        (shards(rewrite_meta(vocab_size="65")), {"train": "d"}, r"vocab_size '65'; it must be a positive"),
        (shards(lambda d: write_txt(d / "meta.json", "[]")), {"train": "d"}, r"holds a JSON array, not an object"),
        (shards(lambda d: None), {"train": "d", "valid": "d/input.txt"}, r"--valid 'd/input\.txt' names text"),
        (shards(lambda d: None), {"train": "d/input.txt", "valid": "d/val.bin"}, r"--valid .* names a binary shard"),
        (lambda root: write_txt(root / "a.txt", "text"), {"train": "a.txt", "meta": "meta.json"},
         r"--meta 'meta\.json' describes binary shards"),
        (shards(lambda d: None), {"train": "d,d/input.txt"}, r"one shard per split"),
        (shards(lambda d: None), {"train": "d", "valid_split": "test"}, r"--dataset and --valid-split do not apply"),
    ],
)
def test_bad_shards_are_user_errors_naming_the_file_and_fix(tmp_path, setup, overrides, pattern) -> None:
    root = tmp_path / "data"
    root.mkdir()
    if setup:
        setup(root)
    with pytest.raises(HfGptError, match=pattern):
        run(section(tmp_path, **overrides))
