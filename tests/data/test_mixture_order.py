"""The mixed order: every step's blocks are a pure function of (seed, step); each source gets its share of every
step, exactly when the share is a whole number of sequences; the sources' streams neither skip nor repeat a block
within an epoch; and the blocks of a step do not depend on how processes and accumulation split it."""

from __future__ import annotations

import numpy as np
import pytest

from hfgpt.data.batches import BatchLayout
from hfgpt.data.mixture import mixture_sources
from hfgpt.data.mixture_order import CHUNK, MixedOrder, mixture_table
from hfgpt.data.prepared import Part
from hfgpt.errors import HfGptError

LAYOUT = BatchLayout(4, 2, 2)  # 16 sequences a step


def order(spec: str, sizes: list[int], layout: BatchLayout = LAYOUT, seed: int = 0, max_steps: int = 1000,
          max_epochs: float = 0.0) -> MixedOrder:
    schedules = [source.schedule for source in mixture_sources(spec)]
    offsets = np.cumsum([0, *sizes[:-1]]).tolist()
    return MixedOrder(sizes, offsets, schedules, layout, seed, max_steps, max_epochs)


def source_of(blocks: np.ndarray, sizes: list[int]) -> np.ndarray:
    return np.searchsorted(np.cumsum(sizes), blocks, side="right")


def test_a_whole_share_is_read_at_every_step():
    mixed = order("a:3,b:1", [100, 37])  # 16 sequences a step: 12 + 4
    assert (mixed.counts(np.arange(1000)) == [12, 4]).all()
    for step in (0, 5, 999):
        assert np.bincount(source_of(mixed.step_blocks(step), [100, 37]), minlength=2).tolist() == [12, 4]


def test_a_fractional_share_stays_within_about_a_sequence_of_its_target_at_every_step():
    sizes = [100, 37, 50]
    mixed = order("a:1,b:1,c:5", sizes, BatchLayout(5, 1, 1))  # 5 sequences a step: 5/7, 5/7 and 25/7 on average
    counts = mixed.counts(np.arange(1000))
    assert (counts.sum(axis=1) == 5).all()
    assert set(np.unique(counts[:, 2])) <= {3, 4}, "floor or ceil of 25/7"
    target = np.arange(1, 1001)[:, None] * 5 * np.array([1, 1, 5]) / 7
    assert np.abs(np.cumsum(counts, axis=0) - target).max() <= 3.5, "the Weyl offsets spread evenly"


@pytest.mark.parametrize(("spec", "sequences"), [("a:1,b:1,c:5", 5), ("a:1,b:2,c:3,d:7", 24), ("a:0.37,b:1", 8)])
def test_over_a_long_run_the_running_counts_stay_within_a_few_sequences(spec, sequences):
    """The figure mixture_order's docstring gives: at most 3.3 sequences off over 100,000 steps (seeds 0 to 2)."""
    weights = np.array([source.schedule.points[0][1] for source in mixture_sources(spec)])
    for seed in range(3):
        mixed = order(spec, [100] * len(weights), BatchLayout(sequences, 1, 1), seed, max_steps=100_000)
        target = np.arange(1, 100_001)[:, None] * sequences * weights / weights.sum()
        assert np.abs(np.cumsum(mixed.counts(np.arange(100_000)), axis=0) - target).max() < 3.3


def test_each_source_reads_every_block_once_per_epoch():
    sizes = [40, 24]
    mixed = order("a:1,b:1", sizes, BatchLayout(8, 1, 1), max_steps=30)
    read = np.concatenate([mixed.step_blocks(step) for step in range(30)])  # 120 of each: 3 and 5 epochs
    for source, (size, offset) in enumerate(zip(sizes, [0, 40], strict=True)):
        mine = read[source_of(read, sizes) == source] - offset
        assert np.bincount(mine, minlength=size).tolist() == [120 // size] * size


def test_what_a_step_read_before_is_counted_so_any_step_can_start_a_run():
    mixed = order("a:1@0/3@0.5,b:1,c:2@0/0@1.0", [70, 30, 50], max_steps=3 * CHUNK // 2)
    step_counts = mixed.counts(np.arange(mixed.max_steps))
    for step in [0, 1, CHUNK - 1, CHUNK, CHUNK + 7, mixed.max_steps]:
        assert mixed.consumed(step).tolist() == step_counts[:step].sum(axis=0).tolist()
    fresh = order("a:1@0/3@0.5,b:1,c:2@0/0@1.0", [70, 30, 50], max_steps=3 * CHUNK // 2)
    assert np.array_equal(fresh.step_blocks(CHUNK + 7), mixed.step_blocks(CHUNK + 7)), "a pure function of the step"
    assert not np.array_equal(order("a:1,b:1", [70, 30], seed=1).step_blocks(3),
                              order("a:1,b:1", [70, 30], seed=2).step_blocks(3))


def test_the_blocks_of_a_step_do_not_depend_on_processes_and_accumulation():
    layouts = [BatchLayout(8, 1, 2), BatchLayout(4, 2, 2), BatchLayout(2, 8, 1), BatchLayout(16, 1, 1)]
    for step in (0, 9):
        unions = []
        for layout in layouts:
            mixed = order("a:3,b:1", [100, 37], layout)
            unions.append(sorted(np.concatenate([
                mixed.micro_blocks(step, micro, rank) for micro in range(layout.grad_accum_steps)
                for rank in range(layout.world_size)]).tolist()))
        assert all(union == unions[0] for union in unions)
    mixed = order("a:3,b:1", [100, 37], BatchLayout(4, 2, 2))
    micro = [source_of(mixed.micro_blocks(0, m, r), [100, 37]) for m in range(2) for r in range(2)]
    assert sum(len(set(sources)) > 1 for sources in micro) >= 2, "the step is shuffled: micro-batches are mixed"


def test_a_schedule_moves_the_shares_over_the_run():
    mixed = order("a:1,b:1@0/3@0.5", [100, 100], max_steps=1000)
    counts = mixed.counts(np.array([0, 250, 500, 999]))
    assert counts[:, 1].tolist() == [8, 10, 12, 12]


def test_a_capped_source_leaves_and_the_others_share_its_weight():
    mixed = order("a:1,b:1", [1000, 20], BatchLayout(8, 1, 1), max_steps=100, max_epochs=2)
    assert mixed.counts(np.array([9]))[0].tolist() == [4, 4]  # 40 blocks of b read: its 2 epochs
    assert (mixed.counts(np.arange(10, 100)) == [8, 0]).all(), "step 10 would pass the cap: b has left"
    assert mixed.source_epochs(100).tolist() == [(10 * 4 + 90 * 8) / 1000, 2.0]
    with pytest.raises(HfGptError, match="no source of the mixture is left"):
        order("a:1,b:1", [10, 10], BatchLayout(8, 1, 1), max_steps=100, max_epochs=2)


def test_the_start_table_gives_shares_and_expected_epochs():
    mixed = order("books:3,code:1", [120, 40], BatchLayout(8, 1, 1), max_steps=100)
    parts = (Part("books", 0, 120, 120 * 64), Part("code", 120, 160, 40 * 64))
    schedules = tuple(source.schedule for source in mixture_sources("books:3,code:1"))
    table = mixture_table(("books", "code"), schedules, 100, parts, mixed)
    assert "mixture of 2 sources over 100 steps" in table
    rows = [line.split() for line in table.splitlines()[2:]]
    assert rows == [["books", "7,680", "3", "75.0%", "5.00"], ["code", "2,560", "1", "25.0%", "5.00"]]


def test_a_streamed_mixtures_table_gives_the_shares_of_its_weights():
    schedules = tuple(source.schedule for source in mixture_sources("web:1,books:1@0/3@1.0"))
    rows = [line.split() for line in mixture_table(("web", "books"), schedules, 1000).splitlines()[2:]]
    assert rows[0][:2] == ["web", "streamed"] and rows[0][-1] == "?"
    web_share = np.mean(1 / (2 + 2 * np.arange(1000) / 1000))  # books' weight rises from 1 to 3
    assert float(rows[0][-2].rstrip("%")) == pytest.approx(100 * web_share, abs=0.05)
