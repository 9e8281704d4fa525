"""A launch from start to end, for the three modes: `run(setup)` starts the processes, checks a Hub push can
work, claims the run directory, prepares the data, builds the `Run` (hfgpt.training.setup), restores a
`continue`, starts the trackers, hands the steps to `TrainingLoop`, then saves final/, prints a sample, records
how the run ended in run.json, draws loss.png, writes the model cards of final/ and best/, and pushes.

The data order is a pure function of (seed, step) (`hfgpt.data.batches`), so a resumed run reads exactly what
the uninterrupted one would have, with no skipping through data.
"""

from __future__ import annotations

import dataclasses
import platform
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from accelerate import PartialState

from ..collectives import broadcast_value
from ..config import TrainConfig, config_to_toml, depth_table, describe_settings
from ..console import quiet_libraries
from ..data.batches import BatchLayout, resolve_layout
from ..data.feed import block_order
from ..data.mixture import check_mixture
from ..data.mixture_order import mixture_table
from ..data.prepare import PreparedData, prepare_data
from ..errors import HfGptError, error_summary
from ..files import replace_text
from ..inference.generation import generate_text
from ..launch.memory import estimate_for
from ..launch.orphans import lost_process
from ..launch.processes import (
    attention_kernel,
    available_cores,
    choose_device_and_precision,
    finish_processes,
    launched_engine,
    start_processes,
    whole_parameters,
)
from ..launch.torch_settings import run_torch_settings, uses_deterministic_algorithms
from ..runs.checkpoint import save_failure
from ..runs.model_folders import export_model
from ..runs.rundir import CONFIG, LOGS, claim_run_dir
from ..runs.runinfo import FAILED, INTERRUPTED, begin_session, end_session, new_run_info, read_run_info, write_run_info
from ..runs.state import TrainerState
from ..sharing.artifacts import snapshot_describer, write_run_artifacts
from ..sharing.pusher import HubPusher, preflight
from ..tasks.loading import load_tasks, names_of, resolved
from .elastic import continued_layout, describe_change, saved_layout
from .loop import TrainingLoop
from .muon import check_optimizer_launch, describe_optimizer
from .optim import optimizer_kernel
from .setup import Run, RunSetup, build_run, starting_state
from .step_flags import LAGGED, step_sync
from .stopping import Stop, StopSignals, check_best_metric
from .trackers import check_trackers, flat_hparams, with_projects


def train(cfg: TrainConfig) -> Path:
    """Train a new model as `cfg` says; returns the run directory."""
    return run(RunSetup("train", cfg))


def run(setup: RunSetup) -> Path:
    """Train as `setup` says (a new run, a continued one, or a fork); returns the run directory. torch's
    process-wide settings (threads, deterministic algorithms, matmul precision) are the caller's again after."""
    cfg = setup.cfg
    quiet_libraries(cfg.logging.progress_bar)
    check_trackers(cfg.logging.trackers)  # before any data is read: a typo costs nothing
    lines = check_mixture(cfg.data, cfg.training.max_steps)
    check_best_metric(cfg.training.best_metric, lines + [f"task/{name}" for name in names_of(cfg.training.eval_tasks)])
    cfg.training.eval_tasks = resolved(cfg.training.eval_tasks)  # a continue from elsewhere finds the files
    # every item read and checked before anything starts (an lm-eval task's documents: datasets' cache and lock)
    tasks = load_tasks(cfg.training.eval_tasks, cfg.training.eval_task_items, cfg.training.task_dir)
    # `auto` resolved for this machine and saved as chosen, so that a continued run keeps it
    use_cpu, cfg.training.precision = choose_device_and_precision(cfg)
    # saved as an absolute path: a continue from another working directory (a requeue, a notebook) finds the data
    cfg.data.datadir = str(Path(cfg.data.datadir).expanduser().absolute())
    cfg.model.attn_implementation = attention_kernel(cfg.model.attn_implementation, use_cpu, cfg.training.precision)
    device_type, engine = "cpu" if use_cpu else "cuda", launched_engine()
    check_optimizer_launch(cfg.training.optimizer, engine)
    cfg.training.optimizer_kernel = optimizer_kernel(cfg.training.optimizer_kernel, device_type, engine == "deepspeed")
    cfg.training.step_sync = step_sync(cfg.training.step_sync, device_type, cfg.training.optimizer_kernel,
                                       cfg.training.precision, engine, cfg.training.optimizer)
    state = start_processes(use_cpu)
    repo_id = preflight(cfg.hub, state.is_main_process)  # before any data is read: no hours of training lost
    # The run directory first: a launch that cannot have it is refused before minutes of tokenizing.
    with (run_torch_settings(cfg.training, use_cpu, state.num_processes),
          claim_run_dir(cfg.run, setup.run_dir, state) as run_dir):
        layout, resized_from = _layout(setup, run_dir, state, engine)  # a continue elsewhere: refused before the data
        data = _prepare_in_turn(state, setup)
        _train(build_run(setup, data, run_dir, layout, use_cpu, tasks, resized_from), repo_id)
        return run_dir


def _layout(setup: RunSetup, run_dir: Path, state: PartialState, engine: str) -> tuple[BatchLayout, int]:
    """The batch layout of this launch, and for a continue on another number of processes than the checkpoint's,
    that number (hfgpt.training.elastic: the same global batch, split anew), else 0."""
    cfg, world = setup.cfg, state.num_processes
    saved = saved_layout(run_dir) if setup.mode == "continue" else {}
    changed = continued_layout(cfg, world, saved, engine)
    if changed is None:
        return resolve_layout(cfg.training, cfg.seq_len, world), 0
    state.print(describe_change(saved["world_size"], changed, cfg.seq_len))
    return changed, saved["world_size"]


def _prepare_in_turn(state: PartialState, setup: RunSetup) -> PreparedData:
    """The data on every process, its caches built once: by the main process first; then by the first process of
    each other machine, which finds them on a shared --cache-dir or builds its own in a node-local one; then by
    the rest, which map the same files. The turns wait on a gloo group that allows a day, not the default
    group's 10 (NCCL) or 30 (gloo) minutes: tokenizing a big corpus may take hours."""
    cfg = setup.cfg
    group = dist.new_group(backend="gloo", timeout=timedelta(days=1)) if state.num_processes > 1 else None
    turn = 0 if state.is_main_process else 1 if state.is_local_main_process else 2
    for phase in range(3):
        if phase == turn:
            data_cfg = dataclasses.replace(cfg.data, reset=cfg.data.reset and state.is_main_process)
            data = prepare_data(data_cfg, cfg.seq_len, log=state.print, tokenizer=setup.tokenizer)
        if group is not None and phase < 2:
            dist.barrier(group=group)
    return data


def _train(run: Run, repo_id: str) -> None:
    """Everything from the first step to final/ and what shares it, in the run directory this launch holds."""
    accelerator = run.accelerator
    accelerator.print(f"config: {describe_settings(run.cfg)}; every setting is in {run.run_dir / CONFIG}")
    state = starting_state(run)
    info = _open_session(run, state.step)
    _start_trackers(run, info, state.step)
    _announce(run)
    pusher = HubPusher(run.run_dir, run.cfg.hub, repo_id, accelerator.is_main_process and bool(repo_id),
                       snapshot_describer(run.run_dir, run.cfg.hub, repo_id))
    final = None  # what the push at the end uploads: final/ of a run that ended well, else nothing more
    try:
        stop = _train_and_save(run, state, info, pusher)
        if stop.status == INTERRUPTED:
            accelerator.print(f"stopped after step {state.step} ({stop.reason}); resume with: hfgpt continue "
                              f"{run.run_dir}")
        else:
            sample = _print_sample(run) if run.cfg.logging.sample_tokens else None
            if accelerator.is_main_process:
                _share(run, sample, repo_id)
            final = run.run_dir / "final"
    finally:
        pusher.finish(final, state.step)  # waits for the uploads under way, the last one included
    finish_processes(accelerator)


def _start_trackers(run: Run, info: dict[str, Any], start_step: int) -> None:
    """The trackers, W&B and Trackio in their project (hfgpt.training.trackers), the run's W&B id resumed."""
    logging, accelerator = run.cfg.logging, run.accelerator
    wandb_id = broadcast_value(logging.wandb_resume_id or info.get("wandb_id", ""))
    if accelerator.is_main_process and logging.wandb_resume_id and info.get("wandb_id") != wandb_id:
        info["wandb_id"] = wandb_id  # later launches resume the W&B run it now logs to
        write_run_info(run.run_dir, info)
    accelerator.log_with = with_projects(accelerator.log_with, logging, run.run_dir.name, wandb_id,
                                         run.run_dir / LOGS)
    accelerator.init_trackers(run.run_dir.name, config=flat_hparams(run.cfg), init_kwargs={
        "tensorboard": {"purge_step": start_step + 1} if start_step else {}})


def _share(run: Run, sample: str | None, repo_id: str) -> None:
    """loss.png and the model cards of final/ and best/ (main process); a failure is a warning, never the run's."""
    try:
        written = write_run_artifacts(run.run_dir, run.cfg.hub, sample, repo_id)
    except Exception as error:  # matplotlib, a full disk: the model is saved, the run is done
        warnings.warn(f"could not draw loss.png or write the model cards ({error_summary(error)}); the run and its "
                      f"model are saved: `hfgpt plot {run.run_dir}` and `hfgpt push` can make them later.",
                      stacklevel=2)
        return
    run.accelerator.print(f"wrote {', '.join(str(path.relative_to(run.run_dir)) for path in written)}")


def _train_and_save(run: Run, state: TrainerState, info: dict[str, Any], pusher: HubPusher) -> Stop:
    """The loop, then final/ (unless the run was interrupted); run.json says how it ended, whatever happens."""
    loop = TrainingLoop(run, state)
    loop.after_save = pusher.after_save
    stop = Stop(FAILED, "")
    try:
        with StopSignals() as signals:
            stop = loop.train(signals)
        if stop.status != INTERRUPTED:  # within the try: a final/ that cannot be written fails the run
            _save_final(run, loop, stop, state.step)
    except BaseException as error:
        lost = lost_process(error, run.accelerator.process_index, run.accelerator.num_processes, state.step)
        reason = lost or (str(error).splitlines()[0] if str(error) else type(error).__name__)
        stop = Stop(INTERRUPTED if lost or isinstance(error, KeyboardInterrupt) else FAILED, reason)
        if lost:
            raise HfGptError(lost) from None
        raise
    finally:
        if run.accelerator.is_main_process:
            end_session(info, stop.status, state.step, stop.reason)
            write_run_info(run.run_dir, info)
    return stop


def _open_session(run: Run, start_step: int) -> dict[str, Any]:
    """Record this launch in run.json and the resolved config in config.toml (main process; others get {}).
    Only now, after a `continue` was found resumable: a refused one changes nothing."""
    if not run.accelerator.is_main_process:
        return {}
    setup, cfg = run.setup, run.cfg
    info = (read_run_info(run.run_dir) if setup.mode == "continue" else None) or \
        new_run_info(setup.mode, cfg.to_dict(), run.accelerator.num_processes, setup.parent)
    begin_session(info, setup.mode, start_step, cfg.to_dict())
    info["sessions"][-1].update(_launch_facts(run))
    write_run_info(run.run_dir, info)
    replace_text(run.run_dir / CONFIG, config_to_toml(cfg))
    return info


def _launch_facts(run: Run) -> dict[str, Any]:
    """What this launch ran on, for the model card: hardware, precision, processes, batch."""
    accelerator = run.accelerator
    if accelerator.device.type == "cuda":
        hardware = f"{accelerator.num_processes} x {torch.cuda.get_device_name(accelerator.device)}"
    else:
        hardware = f"{accelerator.device.type} ({platform.machine()}, {available_cores()} cores)"
    precision = {"no": "fp32"}.get(accelerator.mixed_precision, accelerator.mixed_precision)
    return {"hardware": hardware, "precision": precision, "processes": accelerator.num_processes,
            "batch": run.layout.describe(run.cfg.seq_len).removeprefix("batch: ")}


def _announce(run: Run) -> None:
    """Print the plan: device and precision, model and data sizes, the batch, the memory, where the run goes."""
    accelerator, cfg, layout = run.accelerator, run.cfg, run.layout
    n_params = sum(getattr(p, "ds_numel", p.numel()) for p in accelerator.unwrap_model(run.model).parameters())
    threads = f", {torch.get_num_threads()} threads each" if accelerator.device.type == "cpu" else ""
    precision = {"no": "fp32"}.get(accelerator.mixed_precision, accelerator.mixed_precision)
    accelerator.print(f"device: {accelerator.device.type}, {accelerator.num_processes} process(es){threads}; "
                      f"precision {precision}; optimizer {describe_optimizer(cfg.training)}; step flags read "
                      f"{'a step late' if cfg.training.step_sync == LAGGED else 'every step'}; {_reproducibility(run)}")
    if run.setup.derived:
        accelerator.print(depth_table(cfg.model.depth, list(run.setup.derived)))
    accelerator.print(f"model: {n_params:,} parameters; data: {run.data.blocks()} of {cfg.seq_len} tokens")
    accelerator.print(layout.describe(cfg.seq_len))
    if run.data.schedules:
        accelerator.print(_mixture_plan(run))
    accelerator.print(estimate_for(accelerator, run.model, n_params, layout, cfg).format())
    if cfg.training.lr_scaling != "none":
        accelerator.print(f"learning rate: {cfg.training.lr} scaled {cfg.training.lr_scaling} from "
                          f"{cfg.training.base_batch_size} to {layout.global_batch} sequences = "
                          f"{run.scheduler.base_lrs[0]:.3g}")
    accelerator.print(f"run directory: {run.run_dir}")


def _mixture_plan(run: Run) -> str:
    """The table of a mixture's sources, packed or streamed."""
    data, max_steps = run.data, run.cfg.training.max_steps
    if data.stream is not None:
        return mixture_table(data.stream.names, data.schedules, max_steps)
    names = tuple(part.name for part in data.train_parts)
    return mixture_table(names, data.schedules, max_steps, data.train_parts, block_order(data, run.layout, run.cfg))


def _reproducibility(run: Run) -> str:
    """What a second run of the same settings, or a continued one, computes: docs/runs.md, "Bitwise"."""
    on_cpu = run.accelerator.device.type == "cpu"
    if not uses_deterministic_algorithms(run.cfg.training, on_cpu):
        return "reproducible to rounding (--deterministic: deterministic algorithms)"
    return "bitwise reproducible" if on_cpu else "deterministic algorithms"


def _save_final(run: Run, loop: TrainingLoop, stop: Stop, done: int) -> None:
    """final/, whose metrics.json names the step, so that `continue` knows whether the run finished."""
    final = run.run_dir / "final"
    reason = {"reason": stop.reason} if stop.reason else {}
    try:
        export_model(run.accelerator, run.model, run.data.tokenizer, final,
                     metrics={"step": done, "status": stop.status, **reason})
    except OSError as error:
        raise save_failure(error, run.run_dir, loop.last_saved) from None
    run.accelerator.print(f"{stop.status}: saved the model and tokenizer to {final}"
                          + (f" ({stop.reason})" if stop.reason else ""))


def _print_sample(run: Run) -> str:
    cfg = run.cfg
    unwrapped = run.accelerator.unwrap_model(run.model).eval()
    # every process samples alike, the main one prints; a compiled model samples eagerly (other shapes)
    with whole_parameters(run.accelerator, unwrapped), torch.compiler.set_stance("force_eager"):
        sample = generate_text(unwrapped, run.data.tokenizer, cfg.logging.sample_prompt,
                               max_new_tokens=cfg.logging.sample_tokens, seed=cfg.training.seed)
    run.accelerator.print(f"sample:\n{sample}")
    return sample
