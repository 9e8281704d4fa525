"""Token-weighted loss, perplexity and accuracy, and the window that a checkpoint carries over a resume."""

from __future__ import annotations

import math

import pytest
import torch
from accelerate import Accelerator

from hfgpt.training.criterion import next_token_loss
from hfgpt.training.metrics import TokenMetrics


def batch_sums():
    """Two sequences whose labels mask one position: 5 counted targets, 3 predicted right."""
    labels = torch.tensor([[0, 1, 2, 3], [0, 2, 1, -100]])
    logits = torch.full((2, 4, 4), -5.0)
    predictions = torch.tensor([[1, 2, 0, 0], [2, 3, 0, 0]])  # positions 0..2 predict tokens 1..3
    logits.scatter_(2, predictions.unsqueeze(-1), 5.0)
    return TokenMetrics.measure(logits, labels, torch.tensor(0.5))


def test_measure_weights_the_loss_by_counted_tokens_and_counts_right_predictions():
    assert batch_sums().tolist() == [2.5, 3.0, 5.0]


def test_read_averages_over_tokens_then_starts_a_new_window():
    metrics, accelerator = TokenMetrics(torch.device("cpu")), Accelerator(cpu=True)
    metrics.add(batch_sums())
    metrics.add(torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64))
    window = metrics.read(accelerator)
    assert window["loss"] == pytest.approx(5.5 / 7) and window["acc"] == pytest.approx(4 / 7)
    assert window["ppl"] == pytest.approx(math.exp(5.5 / 7))
    assert metrics.read(accelerator) == {}  # a window of skipped steps has nothing to report


def test_a_snapshot_restores_the_window_a_checkpoint_cut():
    accelerator = Accelerator(cpu=True)
    before = TokenMetrics(torch.device("cpu"))
    before.add(batch_sums())
    saved = before.snapshot(accelerator)
    before.add(batch_sums())  # the snapshot does not reset the window
    after = TokenMetrics(torch.device("cpu"))
    after.restore(saved, accelerator)
    after.add(batch_sums())
    assert after.read(accelerator) == before.read(accelerator)


def test_a_huge_loss_gives_a_finite_perplexity():
    metrics = TokenMetrics(torch.device("cpu"))
    metrics.add(torch.tensor([1e6, 0.0, 1.0], dtype=torch.float64))
    assert math.isfinite(metrics.read(Accelerator(cpu=True))["ppl"])


def test_a_batch_without_targets_counts_zero_tokens_not_nan():
    # the last packed block may hold one real token: no position has a next token to predict
    labels = torch.tensor([[7, -100, -100, -100]])
    logits = torch.randn(1, 4, 9)
    loss, count = next_token_loss(logits, labels)[1:]
    assert (loss.item(), count.item()) == (0.0, 0)
    assert TokenMetrics.measure(logits, labels, loss).tolist() == [0.0, 0.0, 0.0]


def test_next_token_loss_is_the_mean_cross_entropy_of_the_shifted_targets():
    labels = torch.tensor([[0, 1, 2, 3], [0, 2, 1, -100]])
    logits = torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(0))
    loss, count = next_token_loss(logits, labels)[1:]
    targets = labels[:, 1:]
    kept = targets != -100
    expected = torch.nn.functional.cross_entropy(logits[:, :-1][kept], targets[kept])
    assert count.item() == 5
    torch.testing.assert_close(loss, expected)


def test_label_smoothing_and_z_loss_change_the_objective_never_the_reported_cross_entropy():
    labels = torch.tensor([[0, 1, 2, 3], [0, 2, 1, -100]])
    logits = torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(0))
    plain = next_token_loss(logits, labels)
    assert plain.objective.equal(plain.cross_entropy)
    smoothed = next_token_loss(logits, labels, label_smoothing=0.1)
    targets, kept = labels[:, 1:], labels[:, 1:] != -100
    expected = torch.nn.functional.cross_entropy(logits[:, :-1][kept], targets[kept], label_smoothing=0.1)
    torch.testing.assert_close(smoothed.objective, expected)
    with_z = next_token_loss(logits, labels, z_loss=1e-2)
    z = torch.logsumexp(logits[:, :-1][kept], dim=-1).square().mean()
    torch.testing.assert_close(with_z.objective, plain.cross_entropy + 1e-2 * z)
    assert smoothed.cross_entropy.equal(plain.cross_entropy) and with_z.cross_entropy.equal(plain.cross_entropy)
