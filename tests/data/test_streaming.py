"""--streaming: each process's blocks from its part of the stream, a position that resumes exactly (across passes,
inside an example), the validation blocks packed once, the refusal of another number of processes; and a streamed
run stopped and continued that ends bitwise equal to an uninterrupted one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from datasets import Dataset
from helpers import make_docs, play, run, run_hfgpt, section, untimed_log, write_jsonl, write_txt
from resume_helpers import MAX_STEPS, assert_same_run, checked, exact_flags

import hfgpt.data.streams
from hfgpt.config import TrainConfig
from hfgpt.data.batches import BatchLayout
from hfgpt.data.feed import StreamBatches
from hfgpt.data.sources import Source
from hfgpt.data.stream_batches import Position, StreamReader
from hfgpt.data.streaming import example_encoder
from hfgpt.data.streams import held_out, text_stream
from hfgpt.data.tokenization import train_tokenizer
from hfgpt.errors import HfGptError

DOCS = [f"doc{i} " + "xy" * (i % 7) for i in range(23)]


def reader(start: Position, micro_batch: int = 3, seq_len: int = 5) -> StreamReader:
    """A stream of 23 documents in 2 shards; an example's ids are its characters' codes, then 0 (EOS)."""
    def make():
        return Dataset.from_dict({"text": DOCS, "end": [True] * len(DOCS)}).to_iterable_dataset(num_shards=2)

    def encode(example):
        return np.array([*map(ord, example["text"]), 0], dtype=np.int32)
    return StreamReader(make, encode, micro_batch, seq_len, start)


def test_a_stream_resumed_from_any_position_reads_what_it_would_have_read() -> None:
    whole = reader(Position())
    batches = [whole.next_micro_batch() for _ in range(40)]  # 600 ids: more than 2 passes over 23 documents
    ids = np.concatenate([blocks.reshape(-1) for blocks, _, _ in batches])
    one_pass = np.array([c for doc in DOCS for c in [*map(ord, doc), 0]])
    assert np.array_equal(ids[: len(one_pass)], one_pass) and np.array_equal(ids[len(one_pass):][:50], one_pass[:50])
    assert batches[-1][2].passes == 2 and [n for _, numbers, _ in batches for n in numbers] == list(range(120))
    for start in range(len(batches) - 1):
        index, position = start, batches[start][2]
        for hop in (1, 3):  # resume, read `hop` micro-batches, resume again from there: as two `continue`s would
            again = reader(Position.from_dict(json.loads(json.dumps(position.to_dict()))))  # as JSON keeps it
            for blocks, numbers, after in batches[index + 1:index + 1 + hop]:
                resumed, resumed_numbers, position = again.next_micro_batch()
                assert np.array_equal(resumed, blocks) and resumed_numbers == numbers
                # datasets may word the same place differently after a resume (a shard read whole or not yet)
                assert (position.passes, position.offset, position.blocks) == (after.passes, after.offset, after.blocks)
            index += hop


def test_a_stream_with_nothing_to_read_says_so() -> None:
    def nothing():
        return Dataset.from_dict({"text": ["x"], "end": [True]}).to_iterable_dataset().filter(lambda example: False)

    empty = StreamReader(nothing, lambda example: np.zeros(1, dtype=np.int32), 1, 4, Position())
    with pytest.raises(HfGptError, match=r"fewer documents .* than processes"):
        empty.next_micro_batch()


def streamed(tmp_path, **overrides):
    if not (tmp_path / "data" / "corpus").is_dir():  # written once: a new mtime is new data
        write_jsonl(tmp_path / "data" / "corpus" / "train.jsonl", make_docs(60))
        write_jsonl(tmp_path / "data" / "corpus" / "validation.jsonl", make_docs(8, seed=9))
    return run(section(tmp_path, dataset="corpus", streaming=True, **overrides), seq_len=8)


def test_the_validation_blocks_are_packed_once_and_the_parts_share_no_document(tmp_path) -> None:
    data, logs = streamed(tmp_path, valid_split="validation")
    assert data.stream is not None and len(data.train) == 0 and len(data.valid) > 0
    assert data.cache_dir.parent.name == "streamed" and "streamed train" in data.summary()
    again, logs = streamed(tmp_path, valid_split="validation")
    assert again.reused and again.cache_dir == data.cache_dir and any(line.startswith("reusing") for line in logs)
    parts = [[example["text"] for example in data.stream.part(rank, 2)] for rank in (0, 1)]
    assert sorted(parts[0] + parts[1]) == sorted(make_docs(60)) and not set(parts[0]) & set(parts[1])


def test_without_validation_text_a_hashed_share_of_the_documents_is_held_out(tmp_path) -> None:
    data, _ = streamed(tmp_path, valid_fraction=0.3)
    trained = [example["text"] for example in data.stream.part(0, 1)]
    kept = [doc for doc in make_docs(60) if held_out(doc, 0.3)]
    assert kept and sorted(trained) == sorted(doc for doc in make_docs(60) if not held_out(doc, 0.3))
    eos = data.tokenizer.eos_token_id
    valid = data.valid[list(range(len(data.valid)))]["input_ids"].reshape(-1)[: data.valid_tokens].tolist()
    assert valid == [t for doc in kept for t in [*data.tokenizer.encode(doc), eos]]


def test_a_stream_continues_only_on_as_many_processes(tmp_path) -> None:
    data, _ = streamed(tmp_path, valid_split="validation")
    saved = [Position(0, None, 3, 2).to_dict()] * 2
    with pytest.raises(HfGptError, match=r"each of its 2 processes saved its own position .* only on 2 processes, "
                                         r"not 1\. Launch it with --num_processes 2"):
        StreamBatches(data, BatchLayout(2, 1, 1), TrainConfig(), 0, saved, torch.device("cpu"))
    batches = StreamBatches(data, BatchLayout(2, 1, 1), TrainConfig(), 0, [], torch.device("cpu"))
    batch, numbers = batches.micro_batch(0, 0)
    assert batch["input_ids"].shape == (2, 8) and numbers == [0, 1] and batches.position()["blocks"] == 2
    batches.close()


@pytest.mark.slow
def test_a_streamed_run_stopped_and_continued_ends_as_an_uninterrupted_one(tmp_path) -> None:
    """A local dataset folder read as a stream (`load_dataset(..., streaming=True)`), with dropout and every
    step's sample ids logged: stopped at step 5 (inside an epoch of its stream and inside a document) and
    continued in a new process, it ends bitwise equal to the run that never stopped."""
    corpus = tmp_path / "data" / "stream"
    write_jsonl(corpus / "train.jsonl", make_docs(120, seed=1))
    write_jsonl(corpus / "validation.jsonl", make_docs(20, seed=2))

    def flags(name: str) -> list[str]:
        flags = exact_flags(tmp_path, name)
        for flag in ("--train", "--valid"):
            index = flags.index(flag)
            del flags[index:index + 2]
        return [*flags, "--dataset", str(corpus), "--valid-split", "validation", "--streaming"]

    checked(run_hfgpt(flags("whole"), cwd=tmp_path))
    first = checked(run_hfgpt([*flags("resumed"), "--stop-at-step", "5"], cwd=tmp_path))
    assert "streamed train and" in first.stdout
    checked(run_hfgpt(["continue", str(tmp_path / "runs" / "resumed"), "--cpu-threads", "1"], cwd=tmp_path))
    assert_same_run(tmp_path / "runs" / "resumed", tmp_path / "runs" / "whole")
    state = json.loads((tmp_path / "runs" / "resumed" / "checkpoints" / f"step_{MAX_STEPS:08d}" /
                        "trainer_state.json").read_text())
    assert state["data_stream"][0]["blocks"] == MAX_STEPS * 8 and untimed_log(tmp_path / "runs" / "whole")


def test_a_txt_streams_in_safe_cut_spans_with_one_eos_per_document(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(hfgpt.data.streams, "STREAM_SPAN", 200)
    docs = [play(seed, lines=30).replace("\n\n", "\n") for seed in range(4)]
    write_txt(tmp_path / "a.txt", "\n\n".join(docs))
    source = Source("a.txt", files=(tmp_path / "a.txt",))
    tokenizer = train_tokenizer("bpe", docs, vocab_size=300)
    encode = example_encoder(tokenizer.backend_tokenizer, tokenizer.eos_token_id)
    for split, texts in (("file", ["\n\n".join(docs)]), ("blank-line", docs)):
        examples = list(text_stream(source, "text", split, tmp_path / "datasets"))
        assert len(examples) > 10 and sum(example["end"] for example in examples) == len(texts)
        ids = [i for example in examples for i in encode(example).tolist()]
        assert ids == [i for text in texts for i in [*tokenizer.encode(text), tokenizer.eos_token_id]]
