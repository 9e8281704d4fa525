"""The optimizer steps of one launch: micro-batches, the step, logging, evaluation, best/, checkpoints,
and the rules that stop a run early (a signal, early stopping, too many non-finite steps).

`hfgpt.trainer` sets everything up and hands it to `TrainingLoop`; the loop reads top to bottom.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object

from .batches import BatchLayout, BlockOrder, eval_blocks, fetch_blocks
from .checkpoint import prune_checkpoints, save_checkpoint
from .config import TrainConfig
from .criterion import next_token_loss
from .data import PreparedData
from .errors import HfGptError
from .export import export_model
from .logbook import Logbook
from .metrics import TokenMetrics
from .rundir import drop_replaced_run
from .runinfo import COMPLETED, INTERRUPTED, STOPPED_EARLY
from .stopping import Progress, StopSignals, step_flags


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Copy a batch to `device`; from pinned memory on CUDA, so the copy does not wait for the GPU."""
    if device.type == "cuda":
        batch = {k: v.pin_memory() for k, v in batch.items()}
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: PreparedData, cfg: TrainConfig, layout: BatchLayout,
             accelerator: Accelerator) -> dict[str, float]:
    """Loss, perplexity and accuracy on the first `eval_batches` global batches of validation blocks."""
    model.eval()
    metrics = TokenMetrics(accelerator.device)
    for block_ids, counted in eval_blocks(len(data.valid), cfg.training.eval_batches, layout,
                                          accelerator.process_index):
        batch = to_device(fetch_blocks(data.valid, block_ids, data.tokenizer.pad_token_id), accelerator.device)
        logits = model(input_ids=batch["input_ids"], use_cache=False).logits
        if counted:
            metrics.add(metrics.measure(logits, batch["labels"], next_token_loss(logits, batch["labels"])[0]))
    model.train()
    return metrics.read(accelerator)


class TrainingLoop:
    """The optimizer steps from `resumed_from`, with evaluation, checkpoints, best/ and the stop rules."""

    def __init__(self, cfg: TrainConfig, accelerator: Accelerator, model: torch.nn.Module,
                 optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR,
                 data: PreparedData, layout: BatchLayout, run_dir: Path, progress: Progress,
                 metrics: TokenMetrics, identity: dict[str, Any], resumed_from: int):
        self.cfg, self.accelerator, self.model, self.optimizer = cfg, accelerator, model, optimizer
        self.scheduler, self.data, self.layout, self.run_dir = scheduler, data, layout, run_dir
        self.progress, self.metrics, self.identity, self.resumed_from = progress, metrics, identity, resumed_from
        self.order = BlockOrder(len(data.train), layout, cfg.training.seed)
        self.tokens_per_step = layout.global_batch * cfg.seq_len
        self.done = resumed_from
        self.last_saved = resumed_from  # the newest checkpoint on disk

    def train(self, signals: StopSignals) -> tuple[str, int, str]:
        """Run until max_steps or a stop; returns (status, steps done, why it stopped)."""
        cfg, accelerator, model, optimizer = self.cfg, self.accelerator, self.model, self.optimizer
        t, max_steps = cfg.training, cfg.training.max_steps
        logbook = Logbook(accelerator, self.run_dir, max_steps, self.resumed_from, cfg.logging.progress_bar)
        pad_id = self.data.tokenizer.pad_token_id
        grad_norm: torch.Tensor | None = torch.zeros((), device=accelerator.device)
        window_start, window_steps = time.perf_counter(), 0
        status, reason, nonfinite, stop = COMPLETED, "", False, ""
        model.train()
        for step in range(self.resumed_from, max_steps):
            loss_sum = torch.zeros((), device=accelerator.device)
            step_sums = torch.zeros(3, dtype=torch.float64, device=accelerator.device)
            read: list[int] = []
            for micro_step in range(self.layout.grad_accum_steps):
                block_ids = self.order.micro_blocks(step, micro_step, accelerator.process_index)
                if cfg.logging.log_samples:
                    read += block_ids.tolist()
                batch = to_device(fetch_blocks(self.data.train, block_ids, pad_id), accelerator.device)
                with accelerator.accumulate(model):
                    logits = model(input_ids=batch["input_ids"], use_cache=False).logits
                    loss, _ = next_token_loss(logits, batch["labels"])
                    accelerator.backward(loss)
                    loss_sum += loss.detach()
                    step_sums += TokenMetrics.measure(logits, batch["labels"], loss)
                    if accelerator.sync_gradients:
                        grad_norm = accelerator.clip_grad_norm_(model.parameters(), t.max_grad_norm or float("inf"))
                        nonfinite, stop = step_flags(accelerator, loss_sum, grad_norm, signals.received)
                        if not nonfinite:
                            optimizer.step()
                        optimizer.zero_grad(set_to_none=True)
            self.progress.observe_step(nonfinite)
            if nonfinite:
                self._bad_step(step + 1, logbook)
            else:
                self.metrics.add(step_sums)
                if not optimizer.step_was_skipped:  # an fp16 overflow skips the update, and so the schedule
                    self.scheduler.step()
            done = self.done = step + 1
            window_steps += 1
            logbook.advance()
            if cfg.logging.log_samples:
                logbook.samples(done, gather_object([read]))

            if done % cfg.logging.log_every == 0 or done == max_steps:
                seconds = time.perf_counter() - window_start
                window = self.metrics.read(accelerator)
                if window:  # a window of skipped steps only has nothing to report
                    logbook.record({
                        "step": done, "split": "train", **window,
                        "lr": self.scheduler.get_last_lr()[0], "grad_norm": _norm_value(grad_norm, model),
                        "tokens_per_s": window_steps * self.tokens_per_step / seconds,
                        "ms_per_step": 1000 * seconds / window_steps, "tokens": done * self.tokens_per_step,
                        "epoch": self.order.epoch_at(done), "skipped_steps": self.progress.skipped_steps,
                    })
                window_start, window_steps = time.perf_counter(), 0
            evaluating = (t.eval_every and done % t.eval_every == 0) or done == max_steps
            if evaluating and self._evaluate(done, logbook):
                status, reason = STOPPED_EARLY, (
                    f"early stopping: no improvement of the validation loss for {t.patience} evaluations; "
                    f"best {self.progress.best_loss:.4f} at step {self.progress.best_step}")
            if stop:
                status, reason = INTERRUPTED, f"{stop} received"
            elif t.stop_at_step and done == t.stop_at_step and done < max_steps:
                status, reason = INTERRUPTED, f"--stop-at-step {t.stop_at_step}"
            periodic = cfg.checkpoint.ckpt_every and done % cfg.checkpoint.ckpt_every == 0
            if periodic or done == max_steps or status != COMPLETED:
                self._save(done)
            if status != COMPLETED:
                break
        logbook.close()
        if status != COMPLETED:
            accelerator.print(reason)
        return status, self.done, reason

    def _bad_step(self, done: int, logbook: Logbook) -> None:
        """Count and log a skipped step; too many in a row end the run with a diagnostic."""
        p, limit = self.progress, self.cfg.training.max_bad_steps
        logbook.record({"step": done, "split": "skipped", "skipped_steps": p.skipped_steps,
                        "bad_steps_in_a_row": p.bad_steps_in_a_row},
                       line=f"step {done}: non-finite loss or gradient; update skipped "
                            f"({p.bad_steps_in_a_row} in a row, {p.skipped_steps} in all)")
        if p.bad_steps_in_a_row >= limit:
            raise HfGptError(
                f"{limit} steps in a row (up to step {done}) had a non-finite loss or gradient, so training "
                f"stopped (--max-bad-steps {limit}); the model was not updated by them. {self.newest_checkpoint()} "
                "Usual causes: a learning rate too high for this model "
                "(lower --lr or raise --warmup-steps), fp16 overflow (use --precision bf16), or no gradient "
                "clipping (--max-grad-norm 1). Then resume with `hfgpt continue`.")

    def _evaluate(self, done: int, logbook: Logbook) -> bool:
        """Evaluate, keep best/, and say whether early stopping ends the run."""
        t = self.cfg.training
        result = evaluate(self.model, self.data, self.cfg, self.layout, self.accelerator)
        improved = self.progress.observe_eval(result["loss"], done, t.early_stopping_min_delta)
        logbook.record({"step": done, "split": "valid", **result, "best_loss": self.progress.best_loss})
        if improved and self.cfg.checkpoint.save_best:
            try:
                export_model(self.accelerator, self.model, self.data.tokenizer, self.run_dir / "best",
                             metrics={"step": done, **result})
            except OSError as error:
                raise self.write_failure(error) from None
        return t.early_stopping and self.progress.evals_without_improvement >= t.patience

    def write_failure(self, error: OSError) -> HfGptError:
        """A failed save (a full disk, permissions) as one paragraph: what is still intact, and what to do."""
        return HfGptError(f"{error}. {self.newest_checkpoint()} Free some space (or fix the folder's permissions) "
                          f"and resume with `hfgpt continue {self.run_dir}`.")

    def newest_checkpoint(self) -> str:
        """Which checkpoint a failure leaves to resume from, in words."""
        if not self.last_saved:
            return "No checkpoint had been saved yet."
        return f"The newest checkpoint, from step {self.last_saved}, is intact."

    def _save(self, done: int) -> None:
        schedule = {k: v for k, v in self.scheduler.state_dict().items() if k != "lr_lambdas"}
        state = {"epoch": self.order.epoch_at(done), "tokens": done * self.tokens_per_step, "scheduler": schedule,
                 "progress": self.progress.to_dict(), "metric_sums": self.metrics.snapshot(self.accelerator),
                 **self.identity}
        try:
            save_checkpoint(self.accelerator, self.run_dir, done, state)
        except OSError as error:
            raise self.write_failure(error) from None
        self.last_saved = done
        if self.accelerator.is_main_process:
            prune_checkpoints(self.run_dir, self.cfg.checkpoint.keep_last,
                              protected=(self.resumed_from, self.progress.best_step))
            drop_replaced_run(self.run_dir)  # the run this one replaces (--overwrite) is no longer needed


def _norm_value(grad_norm: torch.Tensor | None, model: torch.nn.Module) -> float:
    """The last clipped gradient norm; DeepSpeed clips inside its engine and reports it there."""
    if grad_norm is None:
        grad_norm = getattr(model, "get_global_grad_norm", lambda: None)()
    return float("nan") if grad_norm is None else float(grad_norm)
