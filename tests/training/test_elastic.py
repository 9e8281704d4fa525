"""A continue on another number of processes keeps the global batch and splits it anew, in micro-batches of at most
--batch-size; a global batch that the processes cannot share equally, a checkpoint of another engine and a stream's
positions are refused in a sentence that says what would work."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from hfgpt.config import TrainConfig
from hfgpt.data.batches import BatchLayout
from hfgpt.errors import HfGptError
from hfgpt.training.elastic import continued_layout, describe_change, reseed


def config(**training) -> TrainConfig:
    cfg = TrainConfig()
    cfg.data.seq_len = 32
    for key, value in training.items():
        setattr(cfg.training, key, value)
    return cfg


def test_the_same_number_of_processes_keeps_the_usual_layout():
    assert continued_layout(config(), 2, {"world_size": 2, "global_batch": 16, "engine": ""}, "") is None
    assert continued_layout(config(), 2, {}, "") is None  # no checkpoint to compare with


def test_fewer_or_more_processes_share_the_saved_global_batch():
    saved = {"world_size": 2, "global_batch": 16, "engine": ""}
    assert continued_layout(config(batch_size=8), 1, saved, "") == BatchLayout(8, 2, 1)
    assert continued_layout(config(batch_size=8), 4, saved, "") == BatchLayout(4, 1, 4)
    assert continued_layout(config(batch_size=8, max_sentences_per_device=2), 1, saved, "") == BatchLayout(2, 8, 1)
    sentence = describe_change(2, BatchLayout(8, 2, 1), 32)
    assert "instead of 2" in sentence and "stays 16 sequences" in sentence and "(seed, step, rank)" in sentence


def test_a_global_batch_the_processes_cannot_share_names_the_nearest_that_can():
    with pytest.raises(HfGptError, match=r"7 sequences cannot be split over 2 processes.* are 1 and 7"):
        continued_layout(config(), 2, {"world_size": 1, "global_batch": 7, "engine": ""}, "")
    with pytest.raises(HfGptError, match=r"over 5 processes.* are 4 and 6"):
        continued_layout(config(), 5, {"world_size": 2, "global_batch": 12, "engine": ""}, "")


@pytest.mark.parametrize("engine", ["", "deepspeed", "fsdp"])
def test_a_stream_continues_only_on_as_many_processes(engine):
    cfg = config()
    cfg.data.streaming = True
    with pytest.raises(HfGptError, match=r"saved by 2 processes and .*its own position in its part of the training.*"
                                         r"--num_processes 2"):
        continued_layout(cfg, 1, {"world_size": 2, "global_batch": 16, "engine": engine}, engine)


@pytest.mark.parametrize("engine", ["deepspeed", "fsdp"])
def test_a_sharded_checkpoint_continues_on_another_number_of_processes(engine):
    """ZeRO's through DeepSpeed's universal checkpoint (hfgpt.runs.zero_reshard), FSDP's through
    torch.distributed.checkpoint (the runs: test_distributed.py)."""
    saved = {"world_size": 2, "global_batch": 16, "engine": engine}
    assert continued_layout(config(batch_size=8), 1, saved, engine) == BatchLayout(8, 2, 1)
    assert continued_layout(config(batch_size=8), 4, saved, engine) == BatchLayout(4, 1, 4)


@pytest.mark.parametrize(("saved", "launched", "words"), [
    ("deepspeed", "", "saved under DeepSpeed and this launch runs without DeepSpeed or FSDP"),
    ("", "deepspeed", "saved without DeepSpeed or FSDP and this launch runs under DeepSpeed"),
    ("fsdp", "", "saved under FSDP and this launch runs without DeepSpeed or FSDP"),
    ("", "fsdp", "saved without DeepSpeed or FSDP and this launch runs under FSDP"),
    ("deepspeed", "fsdp", "saved under DeepSpeed and this launch runs under FSDP")])
def test_a_checkpoint_of_another_engine_is_refused_on_any_number_of_processes(saved, launched, words):
    for processes in (1, 2):
        with pytest.raises(HfGptError, match=f"{words}; their files differ.*--config_file"):
            continued_layout(config(), processes, {"world_size": 2, "global_batch": 16, "engine": saved}, launched)


def test_the_random_streams_after_a_change_are_a_function_of_seed_step_and_rank():
    """What a continue on another number of processes draws (dropout, and anything else random) is reproducible:
    the same (seed, step, rank) gives the same streams, another gives others."""
    def draws(seed: int, step: int, rank: int) -> list:
        reseed(seed, step, rank)
        return [torch.rand(4).tolist(), np.random.rand(2).tolist(), random.random()]

    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        assert draws(1337, 5, 0) == draws(1337, 5, 0)
        others = [draws(1337, 5, 1), draws(1337, 6, 0), draws(7, 5, 0)]
        assert all(other != draws(1337, 5, 0) for other in others)
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])
