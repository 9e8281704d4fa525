"""The optimizer steps of one launch. `train` reads top to bottom: the step, then what to do after it (the
rules in `hfgpt.training.stopping`); `_step` is one optimizer step over this process's micro-batches.

Whether a step counts (finite) and whether a stop signal came is agreed by all processes and read on the host
when `StepFlags` says (`hfgpt.training.step_flags`): at once, or a step later so that a GPU never waits.

The loop advances the `TrainerState` it is given (the trainer holds the same object, so it knows how far the
run got however the loop ends) and writes it into every checkpoint.
"""

from __future__ import annotations

import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from accelerate.utils import gather_object

from ..collectives import agree_step_flags
from ..data.feed import train_batches
from ..runs.checkpoint import intact_checkpoint, prune_checkpoints, save_checkpoint, save_failure
from ..runs.logbook import Logbook
from ..runs.model_folders import export_model
from ..runs.rundir import drop_replaced_run
from ..runs.runinfo import COMPLETED
from ..runs.state import TrainerState
from ..tasks.scoring import score_tasks
from .criterion import next_token_loss
from .evaluation import evaluate
from .metrics import TokenMetrics
from .mfu import flops_per_token, mfu, peak_tflops
from .setup import Run
from .step_flags import StepFlags
from .stopping import Stop, StopSignals, check_bad_steps, due, early_stop, launch_stop


@dataclass
class StepResult:
    """What one optimizer step leaves for the rules after it."""

    sums: torch.Tensor  # this process's metric sums (loss x tokens, correct, tokens)
    grad_norm: torch.Tensor | None
    flags: torch.Tensor  # agreed by every process, on the device: [non-finite, stop signal number]
    blocks: list[int | str]  # the training blocks this process read (for --log-samples; source:number in a stream)


class TrainingLoop:
    """The optimizer steps from `state.step` to `max_steps` or a stop."""

    after_save = staticmethod(lambda step: None)  # told of each checkpoint (the trainer's Hub uploads)

    def __init__(self, run: Run, state: TrainerState) -> None:
        self.run, self.state, self.cfg = run, state, run.cfg
        self.batches = train_batches(run.data, run.layout, self.cfg, run.accelerator.process_index,
                                     state.data_stream, run.accelerator.device)
        self.flags = StepFlags(self.cfg.training.step_sync)
        self.tokens_per_step = run.layout.global_batch * self.cfg.seq_len
        self.metrics = TokenMetrics(run.accelerator.device)
        self.metrics.restore(state.metric_sums, run.accelerator)
        self.resumed_from = self.last_saved = state.step  # the newest checkpoint on disk
        self.logbook = Logbook(run.accelerator, run.run_dir, self.cfg.training.max_steps, state.step,
                               self.cfg.logging.progress_bar)
        self.window_start, self.window_steps, self.compile_seconds = time.perf_counter(), 0, 0.0
        self.flops_per_token = flops_per_token(run.accelerator.unwrap_model(run.model), self.cfg.seq_len)
        self.peak = peak_tflops(run.accelerator.device, self.cfg.training.precision, self.cfg.training.peak_tflops) \
            if run.accelerator.is_main_process else 0.0  # only the main process reports, and probes a CPU
        run.accelerator.print(f"mfu counts {self.flops_per_token:,.0f} FLOPs per token (6N + 12LTd) against "
                              f"{self.peak:.3g} TFLOPS per device" if self.peak else
                              "mfu: no peak known for this device (give --peak-tflops)")

    def train(self, signals: StopSignals) -> Stop:
        """Run until max_steps or a stop; returns how the run ends (completed, or why it stopped)."""
        training, max_steps = self.cfg.training, self.cfg.training.max_steps
        stop = None
        self.run.model.train()
        for step in range(self.state.step, max_steps):
            result = self._step(step, signals.received)
            if step == self.resumed_from:
                self._report_first_step()
            done = step + 1
            self._count(done, result)
            log, evaluation, checkpoint = (due(every, done, max_steps) for every in (
                self.cfg.logging.log_every, training.eval_every, self.cfg.checkpoint.ckpt_every))
            stop_at_step = launch_stop(training, done, "")
            signal_name = self._settle(done, now=log or evaluation or checkpoint or bool(stop_at_step))
            if signal_name:  # the run stops after this step: its flags are needed before the checkpoint
                self._settle(done, now=True)
            if log:
                self._log_window(result.grad_norm)
            if evaluation:
                self._off_the_clock(self._evaluate)
                stop = early_stop(training, self.state.progress)
            stop = launch_stop(training, done, signal_name) or stop
            if stop or checkpoint:
                self._off_the_clock(self._save)
            if stop:
                break
        self.logbook.close()
        self.batches.close()
        if stop:
            self.run.accelerator.print(stop.reason)
        return stop or Stop(COMPLETED, "")

    def _step(self, step: int, signalled: int) -> StepResult:
        """One optimizer step: this process's micro-batches, accumulated; then clip, agree, update."""
        accelerator, model, optimizer = self.run.accelerator, self.run.model, self.run.optimizer
        training = self.cfg.training
        loss_sum = torch.zeros((), device=accelerator.device)
        sums = torch.zeros(3, dtype=torch.float64, device=accelerator.device)
        blocks: list[int] = []
        for micro_step in range(self.run.layout.grad_accum_steps):
            batch, block_ids = self.batches.micro_batch(step, micro_step)
            blocks += block_ids if self.cfg.logging.log_samples else []
            with accelerator.accumulate(model):  # gradients are synced on the step's last micro-batch only
                logits = model(input_ids=batch["input_ids"], use_cache=False).logits
                loss = next_token_loss(logits, batch["labels"], training.label_smoothing, training.z_loss)
                accelerator.backward(loss.objective)
            self.batches.prepare_next()  # while the device works on this micro-batch
            loss_sum += loss.objective.detach()
            sums += TokenMetrics.measure(logits, batch["labels"], loss.cross_entropy)
        if not accelerator.sync_gradients:
            raise RuntimeError("accelerate's accumulation count disagrees with the step's micro-batches")
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), self.cfg.training.max_grad_norm or float("inf"))
        flags = agree_step_flags(accelerator, loss_sum, grad_norm, signalled)
        self.flags.update(optimizer, step + 1, flags)
        optimizer.zero_grad(set_to_none=True)
        return StepResult(sums, grad_norm, flags, blocks)

    def _report_first_step(self) -> None:
        """With --compile, how long compiling took (the first step), or that it failed and training is eager."""
        if not self.cfg.training.compile:
            return
        seconds = time.perf_counter() - self.window_start
        self.compile_seconds = seconds  # left out of the first window's throughput
        if torch._dynamo.utils.counters["stats"]["unique_graphs"]:
            self.run.accelerator.print(f"compiled the model in {seconds:.1f} s (the first step)")
        else:
            warnings.warn("torch.compile could not compile the model on this platform (see the message above); "
                          "training goes on uncompiled.", stacklevel=2)

    def _count(self, done: int, result: StepResult) -> None:
        """Step `done` has run: its metrics count unless its flags say non-finite (decided on the device)."""
        self.metrics.add(torch.where(result.flags[0] > 0, 0.0, result.sums))
        if self.flags.lagged:  # the schedule follows the step count (see hfgpt.training.step_flags)
            self.run.scheduler.step()
        self.state.step = done
        self.window_steps += 1
        self.logbook.advance()
        if self.cfg.logging.log_samples:
            self.logbook.samples(done, gather_object([result.blocks]))

    def _settle(self, done: int, now: bool) -> str:
        """Account the steps whose flags are read now (`StepFlags.settle`): a skipped one is logged and counted, and
        too many in a row stop the run; a counted one advances the schedule (every-step). Returns the name of a
        stop signal that any of them carried, or ""."""
        progress, signal_name = self.state.progress, ""
        for outcome in self.flags.settle(done, now):
            progress.observe_step(outcome.nonfinite)
            if outcome.nonfinite:
                self.logbook.record({"step": outcome.step, "split": "skipped", "skipped_steps": progress.skipped_steps,
                                     "bad_steps_in_a_row": progress.bad_steps_in_a_row},
                                    line=f"step {outcome.step}: non-finite loss or gradient; update skipped "
                                         f"({progress.bad_steps_in_a_row} in a row, {progress.skipped_steps} in all)")
                check_bad_steps(progress, self.cfg.training.max_bad_steps, outcome.step,
                                intact_checkpoint(self.last_saved))
            elif not self.flags.lagged and not self.run.optimizer.step_was_skipped:  # fp16 overflow: no update
                self.run.scheduler.step()
            signal_name = signal_name or (signal.Signals(outcome.signal).name if outcome.signal else "")
        return signal_name

    def _off_the_clock(self, work: Callable[[], None]) -> None:
        """Do `work` (an evaluation, a checkpoint) without counting its time in the training speed."""
        started = time.perf_counter()
        work()
        self.window_start += time.perf_counter() - started

    def _log_window(self, grad_norm: torch.Tensor | None) -> None:
        """The train record of the steps since the last one (nothing if every one of them was skipped)."""
        done, seconds, steps = self.state.step, time.perf_counter() - self.window_start, self.window_steps
        if self.compile_seconds and steps > 1:  # the first step compiled the model: not a training speed
            seconds, steps = seconds - self.compile_seconds, steps - 1
        self.compile_seconds = 0.0
        tokens_per_s = steps * self.tokens_per_step / seconds
        window = self.metrics.read(self.run.accelerator)
        if window:
            self.logbook.record({
                "step": done, "split": "train", **window, "lr": self.run.scheduler.get_last_lr()[0],
                "grad_norm": _norm_value(grad_norm, self.run.model),
                "tokens_per_s": tokens_per_s,
                "mfu": mfu(tokens_per_s, self.flops_per_token, self.peak, self.run.accelerator.num_processes),
                "ms_per_step": 1000 * seconds / steps, "tokens": done * self.tokens_per_step,
                "epoch": self.batches.epoch_at(done), **self.batches.source_epochs(done),
                "skipped_steps": self.state.progress.skipped_steps,
            })
        self.window_start, self.window_steps = time.perf_counter(), 0

    def _evaluate(self) -> None:
        """Evaluate (each validation set of a mixture, then the mean; then the tasks), log, and keep best/ when what
        --best-metric names improved."""
        run, done, progress, training = self.run, self.state.step, self.state.progress, self.cfg.training
        result = evaluate(run.model, run.data, self.cfg, run.layout, run.accelerator)
        sets = {f"valid/{name}": measures for name, measures in result.pop("sources", {}).items()}
        tasks = {f"task/{name}": measures for name, measures in score_tasks(
            run.model, run.data.tokenizer, run.tasks, run.accelerator, run.layout.micro_batch, self.cfg.seq_len
        ).items()} if run.tasks else {}
        improved = progress.observe_eval(_followed(training.best_metric, result, sets | tasks), done,
                                         training.early_stopping_min_delta)
        for split, measures in sets.items():
            self.logbook.record({"step": done, "split": split, **measures})
        self.logbook.record({"step": done, "split": "valid", **result, "best_loss": progress.best_loss})
        for split, measures in tasks.items():
            self.logbook.record({"step": done, "split": split, **measures})
        if tasks:  # the mean centred score, as nanochat's CORE sums up its tasks
            centred = [measures["centred"] for measures in tasks.values()]
            self.logbook.record({"step": done, "split": "tasks", "centred": sum(centred) / len(centred)})
        if improved and self.cfg.checkpoint.save_best:
            try:
                export_model(run.accelerator, run.model, run.data.tokenizer, run.run_dir / "best",
                             metrics={"step": done, **result})
            except OSError as error:
                raise save_failure(error, self.run.run_dir, self.last_saved) from None

    def _save(self) -> None:
        """Checkpoint the run as it is now; then prune, and drop the run this one replaced."""
        done = self.state.step
        self.state.epoch, self.state.tokens = self.batches.epoch_at(done), done * self.tokens_per_step
        if self.run.data.stream is not None:  # every process's place in its part of the stream
            self.state.data_stream = gather_object([self.batches.position()])
        self.state.scheduler = {k: v for k, v in self.run.scheduler.state_dict().items() if k != "lr_lambdas"}
        self.state.metric_sums = self.metrics.snapshot(self.run.accelerator)
        try:
            save_checkpoint(self.run.accelerator, self.run.run_dir, self.state)
        except OSError as error:
            raise save_failure(error, self.run.run_dir, self.last_saved) from None
        self.last_saved = done
        if self.run.accelerator.is_main_process:
            prune_checkpoints(self.run.run_dir, self.cfg.checkpoint.keep_last,
                              protected=(self.resumed_from, self.state.progress.best_step))
            drop_replaced_run(self.run.run_dir)  # the run this one replaces (--overwrite) is no longer needed
        self.after_save(done)


def _followed(best_metric: str, result: dict[str, float], lines: dict[str, dict[str, float]]) -> float:
    """What --best-metric follows, as a loss (lower is better): a validation loss, or a task's centred score negated."""
    if best_metric == "valid":
        return result["loss"]
    line = lines[best_metric]
    return line["loss"] if best_metric.startswith("valid/") else -line["centred"]


def _norm_value(grad_norm: torch.Tensor | None, model: torch.nn.Module) -> float:
    """The last clipped gradient norm; DeepSpeed clips inside its engine and reports it there."""
    if grad_norm is None:
        grad_norm = getattr(model, "get_global_grad_norm", lambda: None)()
    return float("nan") if grad_norm is None else float(grad_norm)
