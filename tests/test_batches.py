import numpy as np
from datasets import Dataset, Features, Sequence, Value

from hfgpt.batches import BatchLayout, BlockOrder, eval_blocks, fetch_blocks


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


def test_eval_blocks_cover_the_set_once_split_over_ranks():
    layout = BatchLayout(micro_batch=2, grad_accum_steps=1, world_size=2)
    seen = [b for rank in range(2) for batch in eval_blocks(8, 100, layout, rank) for b in batch]
    assert sorted(seen) == list(range(8))
    assert len(list(eval_blocks(1000, 3, layout, rank=1))) == 3
