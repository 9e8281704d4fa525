"""The packed training feed: each micro-batch is the one `BlockOrder` names, whether it was read ahead while the
previous one ran or on demand (a resumed run's first), across accumulation steps and step boundaries."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from datasets import Dataset

from hfgpt.data.batches import BatchLayout, BlockOrder, fetch_blocks
from hfgpt.data.feed import PackedBatches

PAD = 0


def packed(num_blocks: int = 10, seq_len: int = 4) -> SimpleNamespace:
    """Blocks whose tokens say which block they are (block i holds i + 1), the last one padded."""
    rows = [[i + 1] * seq_len for i in range(num_blocks)]
    rows[-1][-1] = PAD
    return SimpleNamespace(train=Dataset.from_dict({"input_ids": rows}),
                           tokenizer=SimpleNamespace(pad_token_id=PAD))


def test_read_ahead_batches_are_the_ones_the_order_names(monkeypatch):
    data, layout = packed(), BatchLayout(micro_batch=2, grad_accum_steps=3, world_size=2)
    order = BlockOrder(10, layout, seed=7)
    batches = PackedBatches(data, order, rank=1, device=torch.device("cpu"))
    fetched = []
    real_fetch = batches._fetch
    monkeypatch.setattr(batches, "_fetch", lambda *key: fetched.append(key) or real_fetch(*key))
    for step in range(3, 6):  # from step 3, as a continued run starts
        for micro_step in range(3):
            batch, block_ids = batches.micro_batch(step, micro_step)
            expected = order.micro_blocks(step, micro_step, rank=1)
            assert block_ids == expected.tolist()
            reference = fetch_blocks(data.train, expected, PAD)
            assert all(torch.equal(batch[key], reference[key]) for key in reference)
            batches.prepare_next()
    assert fetched[:3] == [(3, 0), (3, 1), (3, 2)], "the first is fetched on demand, the next one ahead"
    assert fetched[3:5] == [(4, 0), (4, 1)] and fetched[-1] == (6, 0), "each is fetched once, across steps"
    assert len(fetched) == 10


def test_a_micro_batch_asked_for_out_of_turn_is_fetched_on_demand():
    data, layout = packed(), BatchLayout(micro_batch=3, grad_accum_steps=1, world_size=1)
    batches = PackedBatches(data, BlockOrder(10, layout, seed=1), rank=0, device=torch.device("cpu"))
    batches.micro_batch(0, 0)
    batches.prepare_next()  # step 1 is read ahead; a restart asks for step 4
    _, block_ids = batches.micro_batch(4, 0)
    assert block_ids == BlockOrder(10, layout, seed=1).micro_blocks(4, 0, 0).tolist()
