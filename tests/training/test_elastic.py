"""A continue on another number of processes keeps the global batch and splits it anew, in micro-batches of at most
--batch-size; a global batch that the processes cannot share equally, a sharded checkpoint (ZeRO, FSDP) and a
stream's positions are refused in a sentence that says what would work."""

from __future__ import annotations

import pytest

from hfgpt.config import TrainConfig
from hfgpt.data.batches import BatchLayout
from hfgpt.errors import HfGptError
from hfgpt.training.elastic import continued_layout, describe_change


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


@pytest.mark.parametrize(("engine", "streaming", "why"), [("fsdp", False, "FSDP shards"),
                                                         ("", True, "its own position in its part of the training")])
def test_sharded_state_continues_only_on_as_many_processes(engine, streaming, why):
    cfg = config()
    cfg.data.streaming = streaming
    with pytest.raises(HfGptError, match=f"saved by 2 processes and .*{why}.*--num_processes 2"):
        continued_layout(cfg, 1, {"world_size": 2, "global_batch": 16, "engine": ""}, engine)


def test_a_zero_checkpoint_continues_on_another_number_of_processes():
    """Loaded through DeepSpeed's universal checkpoint (hfgpt.runs.zero_reshard; the runs: test_distributed.py)."""
    saved = {"world_size": 2, "global_batch": 16, "engine": "deepspeed"}
    assert continued_layout(config(batch_size=8), 1, saved, "deepspeed") == BatchLayout(8, 2, 1)


def test_a_deepspeed_checkpoint_and_a_launch_without_it_are_refused_either_way():
    saved = {"world_size": 2, "global_batch": 16, "engine": "deepspeed"}
    with pytest.raises(HfGptError, match="saved under DeepSpeed and this launch runs without it"):
        continued_layout(config(), 2, saved, "")
    with pytest.raises(HfGptError, match="saved without DeepSpeed and this launch runs under DeepSpeed"):
        continued_layout(config(), 2, {**saved, "engine": ""}, "deepspeed")
