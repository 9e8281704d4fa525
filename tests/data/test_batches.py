import re

import numpy as np
import pytest
from datasets import Dataset, Features, Sequence, Value

from hfgpt.config import FIELDS, TrainingSection
from hfgpt.data.batches import BatchLayout, BlockOrder, eval_blocks, fetch_blocks, resolve_layout
from hfgpt.errors import HfGptError


def test_epochs_are_seeded_permutations_and_batches_straddle_them():
    order = BlockOrder(num_blocks=10, layout=BatchLayout(3, 1, 1), seed=7)
    stream = np.concatenate([order.step_blocks(step) for step in range(10)])  # 30 positions = 3 epochs
    for epoch in range(3):
        assert sorted(stream[epoch * 10 : (epoch + 1) * 10]) == list(range(10))
    assert not np.array_equal(stream[:10], stream[10:20]), "each epoch must be reshuffled"
    again = BlockOrder(num_blocks=10, layout=BatchLayout(3, 1, 1), seed=7)
    assert np.array_equal(again.step_blocks(9), order.step_blocks(9))
    assert not np.array_equal(BlockOrder(10, BatchLayout(3, 1, 1), seed=8).step_blocks(0), order.step_blocks(0))


def test_resuming_at_a_step_needs_no_walk_through_earlier_steps():
    fresh = BlockOrder(num_blocks=1000, layout=BatchLayout(4, 2, 2), seed=1)
    walked = BlockOrder(num_blocks=1000, layout=BatchLayout(4, 2, 2), seed=1)
    for step in range(500):
        walked.step_blocks(step)
    assert np.array_equal(fresh.step_blocks(500), walked.step_blocks(500))


def test_processes_and_accumulation_read_the_same_sequences_per_step():
    """2 processes x 1 accumulation step and 1 process x 2 read the same blocks in every step."""
    two_procs = BlockOrder(50, BatchLayout(micro_batch=4, grad_accum_steps=1, world_size=2), seed=3)
    two_accum = BlockOrder(50, BatchLayout(micro_batch=4, grad_accum_steps=2, world_size=1), seed=3)
    for step in range(20):
        by_rank = [two_procs.micro_blocks(step, 0, rank) for rank in range(2)]
        by_micro = [two_accum.micro_blocks(step, micro, 0) for micro in range(2)]
        assert np.array_equal(np.concatenate(by_rank), np.concatenate(by_micro))
        assert np.array_equal(np.concatenate(by_rank), two_procs.step_blocks(step))


def test_fetch_masks_padding_in_labels_only():
    features = Features({"input_ids": Sequence(Value("int32"), length=4)})
    dataset = Dataset.from_dict({"input_ids": [[5, 6, 7, 8], [9, 3, 1, 1]]}, features=features)
    batch = fetch_blocks(dataset.with_format("numpy"), np.array([1, 0]), pad_token_id=1)
    assert batch["input_ids"].tolist() == [[9, 3, 1, 1], [5, 6, 7, 8]]
    assert batch["labels"].tolist() == [[9, 3, -100, -100], [5, 6, 7, 8]]


def evaluated(num_blocks, batches, micro_batch, accum, world):
    layout = BatchLayout(micro_batch=micro_batch, grad_accum_steps=accum, world_size=world)
    per_rank = [list(eval_blocks(num_blocks, batches, layout, rank)) for rank in range(world)]
    assert len({len(batches) for batches in per_rank}) == 1, "every process runs as many forward passes"
    return sorted(int(b) for batches in per_rank for ids, counted in batches if counted for b in ids)


def test_eval_blocks_are_the_same_set_whatever_the_world_size():
    assert evaluated(8, 100, micro_batch=2, accum=1, world=2) == list(range(8))  # all of it, once
    assert evaluated(6, 100, micro_batch=4, accum=1, world=2) == list(range(6))  # a short last batch
    for world, accum in [(1, 4), (2, 2), (4, 1)]:
        assert evaluated(1000, 3, micro_batch=2, accum=accum, world=world) == list(range(24))


def layout_of(world_size: int, seq_len: int = 128, **training) -> tuple[int, int, int]:
    layout = resolve_layout(TrainingSection(**training), seq_len, world_size)
    return layout.micro_batch, layout.grad_accum_steps, layout.global_batch


def test_token_batch_keeps_the_global_batch_on_any_device_count():
    # 64 sequences of 128 tokens per step, at most 8 sequences per micro-batch.
    shapes = {world: layout_of(world, token_batch_size=8192, max_sentences_per_device=8) for world in (1, 2, 8)}
    assert shapes == {1: (8, 8, 64), 2: (8, 4, 64), 8: (8, 1, 64)}
    # Without caps each device takes its whole share in one micro-batch.
    assert layout_of(4, token_batch_size=8192) == (16, 1, 64)
    # The token cap works the same way: 1024 tokens = 8 sequences of 128.
    assert layout_of(2, token_batch_size=8192, max_tokens_per_device=1024) == (8, 4, 64)


def test_batch_size_is_per_device_and_caps_split_it_into_equal_micro_batches():
    assert layout_of(2, batch_size=12) == (12, 1, 24)
    assert layout_of(1, batch_size=12, grad_accum_steps=3) == (12, 3, 36)
    assert layout_of(1, batch_size=12, max_sentences_per_device=5) == (4, 3, 12)  # 12 = 3 x 4, not 5 + 5 + 2
    assert layout_of(1, batch_size=7, max_sentences_per_device=2) == (1, 7, 7)


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("accum", [0, 1, 3])
@pytest.mark.parametrize("cap", [0, 2, 5, 64])
def test_a_step_takes_what_the_batch_help_says(world, accum, cap):
    # --batch-size's documented meaning: batch_size x grad_accum_steps sequences per device per step, in
    # micro-batches of at most the cap
    layout = resolve_layout(TrainingSection(batch_size=12, grad_accum_steps=accum, max_sentences_per_device=cap),
                            seq_len=128, world_size=world)
    assert layout.global_batch == 12 * max(accum, 1) * world
    assert layout.micro_batch <= (cap or 12) and layout.grad_accum_steps >= max(accum, 1)
    assert "batch_size x grad_accum_steps" in FIELDS["batch_size"].help


def test_explicit_accumulation_with_a_token_batch_must_split_evenly():
    assert layout_of(2, token_batch_size=8192, grad_accum_steps=2) == (16, 2, 64)
    with pytest.raises(HfGptError, match="--grad-accum-steps 3 cannot split the 32 sequences"):
        layout_of(2, token_batch_size=8192, grad_accum_steps=3)


@pytest.mark.parametrize(("training", "message"), [
    ({"token_batch_size": 1000}, "must be a multiple of seq_len x processes = 128 x 2 = 256 tokens"),
    ({"token_batch_size": 128}, "for example --token-batch-size 256"),
    ({"max_tokens_per_device": 64}, "--max-tokens-per-device 64 is less than one sequence"),
])
def test_impossible_batch_settings_name_the_flag_and_a_value_that_works(training, message):
    with pytest.raises(HfGptError, match=re.escape(message)):
        layout_of(2, **training)
