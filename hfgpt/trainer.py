"""Setting up a run for the three modes, then handing it to `hfgpt.loop.TrainingLoop`.

`run(setup)` prepares data, model, optimizer and run directory; for `continue` it restores the newest
usable checkpoint (model, optimizer, schedule, scaler, every process's RNG, step, metric window,
early-stopping state). The data order is a pure function of (seed, step) (`hfgpt.batches`), so a
resumed run reads exactly what the uninterrupted one would have, with no skipping through data.
At the end it saves final/, prints a sample, and records how the run ended in run.json.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import ProjectConfiguration, broadcast_object_list, set_seed
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from .batches import BatchLayout, resolve_layout
from .checkpoint import clear_leftovers, load_newest_checkpoint
from .config import TrainConfig
from .config_sources import config_to_toml, format_config
from .configuration_hfgpt import HfGptConfig
from .data import prepare_data
from .errors import HfGptError
from .export import export_model, exported_step, recover_exports
from .generation import generate_text
from .launch_env import adopt_launcher_environment
from .loop import TrainingLoop
from .memory import MemoryEstimate, estimate_memory, strategy_of
from .metrics import TokenMetrics
from .modeling_hfgpt import HfGptForCausalLM
from .modes import ARCHITECTURE, TOKENIZER, RunSetup
from .optim import build_optimizer, build_scheduler, lr_factor
from .rundir import create_run_dir
from .runinfo import (
    FAILED,
    INTERRUPTED,
    begin_session,
    end_session,
    new_run_info,
    read_run_info,
    write_run_info,
)
from .sources import short_hash
from .stopping import Progress, StopSignals


def choose_device_and_precision(cfg: TrainConfig) -> tuple[bool, str]:
    """(use_cpu, accelerate mixed_precision), downgrading what this machine cannot do with a warning."""
    training = cfg.training
    use_cpu = training.device == "cpu" or not torch.cuda.is_available()
    if training.device == "cuda" and not torch.cuda.is_available():
        warnings.warn("--device cuda was asked for but CUDA is not available here: training on the CPU.",
                      stacklevel=2)
    precision = {"fp32": "no", "fp16": "fp16", "bf16": "bf16"}[training.precision]
    if precision == "fp16" and use_cpu:
        warnings.warn("--precision fp16 needs CUDA (accelerate would silently ignore it on the CPU): "
                      "training in fp32; use --precision bf16 for mixed precision on the CPU.", stacklevel=2)
        precision = "no"
    return use_cpu, precision


def cpu_threads(requested: int, num_processes: int) -> int:
    """Threads for each CPU process: `accelerate launch` sets OMP_NUM_THREADS=1 for a lone CPU process,
    which leaves all but one core idle, so unless asked otherwise share the cores among local processes."""
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", num_processes))
    return requested or max(1, (os.cpu_count() or 1) // local_processes)


def using_deepspeed() -> bool:
    """Whether `accelerate launch` was told to use DeepSpeed (--use_deepspeed or a DeepSpeed config)."""
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"


def start_processes(use_cpu: bool) -> PartialState:
    """The process group. DeepSpeed without CUDA needs gloo named up front, or accelerate sees one process."""
    adopt_launcher_environment()  # started by mpirun or srun: speak torch.distributed's variables
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and not torch.cuda.is_available():
        warnings.warn("FSDP needs CUDA GPUs: on this machine the processes train with plain DDP over gloo, "
                      "each holding the whole model.", stacklevel=2)
    if using_deepspeed() and not torch.cuda.is_available():
        return PartialState(backend="gloo")
    return PartialState(cpu=use_cpu)


def build_model(cfg: TrainConfig, tokenizer: PreTrainedTokenizerBase) -> HfGptForCausalLM:
    """A freshly initialised model sized by the config and the tokenizer."""
    m = cfg.model
    config = HfGptConfig(
        vocab_size=len(tokenizer), hidden_size=m.hidden_size, intermediate_size=m.intermediate_size or None,
        num_hidden_layers=m.num_hidden_layers, num_attention_heads=m.num_attention_heads,
        max_position_embeddings=m.max_position_embeddings, hidden_act=m.hidden_act, dropout=m.dropout,
        bias=m.bias, layer_norm_eps=m.layer_norm_eps, initializer_range=m.initializer_range,
        tie_word_embeddings=m.tie_word_embeddings, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    config._attn_implementation = m.attn_implementation
    return HfGptForCausalLM(config)


def setup_model(setup: RunSetup, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """The model each mode starts from: fresh for train, the saved architecture for continue, the source's
    weights for fork."""
    cfg = setup.cfg
    if setup.model is not None:
        model = setup.model
    elif setup.model_config is not None:
        model = AutoModelForCausalLM.from_config(setup.model_config,
                                                 attn_implementation=cfg.model.attn_implementation)
    else:
        model = build_model(cfg, tokenizer)
    if cfg.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model


def flat_hparams(cfg: TrainConfig) -> dict[str, Any]:
    """The config as `section.key` scalars, the form trackers accept as hyperparameters."""
    return {f"{section}.{key}": ",".join(value) if isinstance(value, list) else value
            for section, values in cfg.to_dict().items() for key, value in values.items()}


def describe_batch(layout: BatchLayout, seq_len: int) -> str:
    return (f"batch: {layout.micro_batch} sequences x {layout.grad_accum_steps} accumulation x "
            f"{layout.world_size} process(es) = {layout.global_batch} sequences = "
            f"{layout.global_batch * seq_len:,} tokens per optimizer step")


def _configure_deepspeed(accelerator: Accelerator, layout: BatchLayout, cfg: TrainConfig) -> None:
    """hfgpt reads its own batches (no prepared dataloader), so DeepSpeed learns the batch shape from here."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        return
    plugin.deepspeed_config.update(
        train_micro_batch_size_per_gpu=layout.micro_batch, gradient_accumulation_steps=layout.grad_accum_steps,
        train_batch_size=layout.global_batch, gradient_clipping=cfg.training.max_grad_norm)


def _check_resumable(saved: dict[str, Any], now: dict[str, Any], run_dir: Path) -> None:
    """Refuse to continue where the checkpoint's math differs from this launch's, naming what differs."""
    fixes = {
        "world_size": "launch it on as many processes as it was saved with (accelerate launch --num_processes), "
                      "or fork it",
        "global_batch": "the batch settings changed; use the run's own, or fork it",
        "seq_len": "the sequence length changed; use the run's own, or fork it",
        "tokenizer": "the run's tokenizer/ folder is not the one this checkpoint was trained with; restore it",
        "data": "the training data are not the same files or contents; point --train/--datadir at the run's "
                "data, or fork the run to train on new data",
    }
    for key, fix in fixes.items():
        if key in saved and saved[key] != now[key]:
            raise HfGptError(f"Cannot continue {run_dir}: its checkpoint has {key} {saved[key]!r} but this launch "
                             f"has {now[key]!r}; {fix}.")


def _apply_peak_lr(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR,
                   peaks: list[float], cfg: TrainConfig) -> None:
    """After a restore, keep this launch's peak rates if `continue` changed them (the checkpoint has the old)."""
    if list(scheduler.base_lrs) == peaks:
        return
    scheduler.base_lrs = list(peaks)
    factor = lr_factor(scheduler.last_epoch, cfg.training)
    for group, peak in zip(optimizer.param_groups, peaks, strict=True):
        group["initial_lr"], group["lr"] = peak, peak * factor
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


class _TiedWeightsNotice(logging.Filter):
    """accelerate warns at every save that safetensors drops the tied lm_head copy; the resume tests prove
    it comes back, so the notice is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Removed shared tensor" not in record.getMessage()


def run(setup: RunSetup) -> Path:
    """Train as `setup` says (a new run, a continued one, or a fork); returns the run directory."""
    logging.getLogger("accelerate.utils.other").addFilter(_TiedWeightsNotice())
    cfg = setup.cfg
    use_cpu, precision = choose_device_and_precision(cfg)
    state = start_processes(use_cpu)
    if use_cpu:
        torch.set_num_threads(cpu_threads(cfg.training.cpu_threads, state.num_processes))
    if cfg.training.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    with state.main_process_first():  # the main process builds the caches, the others then read them
        data_cfg = dataclasses.replace(cfg.data, reset=cfg.data.reset and state.is_main_process)
        data = prepare_data(data_cfg, cfg.seq_len, log=state.print, tokenizer=setup.tokenizer)
    run_dir = setup.run_dir or create_run_dir(cfg.checkpoint, state)
    layout = resolve_layout(cfg.training, cfg.seq_len, state.num_processes)

    accelerator = Accelerator(
        cpu=use_cpu and not using_deepspeed(), mixed_precision=precision,
        gradient_accumulation_steps=layout.grad_accum_steps,
        log_with=[t for t in cfg.logging.trackers if t != "none"] or None,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
    )
    _configure_deepspeed(accelerator, layout, cfg)
    if not use_cpu:
        torch.set_float32_matmul_precision("high")  # TF32 matmuls on GPUs that have them
    tokenizer = data.tokenizer
    tokenizer.model_max_length = cfg.seq_len

    set_seed(cfg.training.seed)
    model = setup_model(setup, tokenizer)
    if accelerator.is_main_process:
        if setup.mode == "continue":
            clear_leftovers(run_dir)
            recover_exports(run_dir)
        else:
            tokenizer.save_pretrained(run_dir / TOKENIZER)
            model.config.save_pretrained(run_dir / ARCHITECTURE)
    accelerator.print(format_config(cfg))
    optimizer = build_optimizer(model, cfg.training, layout.global_batch)
    scheduler = build_scheduler(optimizer, cfg.training)
    peaks = list(scheduler.base_lrs)
    # The schedule is stepped by hand once per optimizer step (a prepared scheduler steps once per process),
    # and saved in trainer_state.json, not as a pickle that accelerate would load without weights_only.
    model, optimizer = accelerator.prepare(model, optimizer)

    identity = {"world_size": accelerator.num_processes, "global_batch": layout.global_batch,
                "seq_len": cfg.seq_len, "tokenizer": short_hash(tokenizer.backend_tokenizer.to_str()),
                "data": data.cache_dir.name}
    start_step, progress, metrics = 0, Progress(), TokenMetrics(accelerator.device)
    if setup.mode == "continue":
        folder, saved = load_newest_checkpoint(accelerator, run_dir, model, warn=_warn_once(accelerator))
        _check_resumable(saved, identity, run_dir)
        scheduler.load_state_dict({**saved["scheduler"], "lr_lambdas": [None] * len(optimizer.param_groups)})
        _apply_peak_lr(optimizer, scheduler, peaks, cfg)
        start_step, progress = saved["step"], Progress.from_dict(saved.get("progress", {}))
        metrics.restore(saved.get("metric_sums", [0.0, 0.0, 0.0]), accelerator)
        accelerator.print(f"continuing from {folder} (step {start_step})")
        _check_steps_left(run_dir, start_step, cfg.training.max_steps)
    info: dict[str, Any] = {}
    if accelerator.is_main_process:
        info = read_run_info(run_dir) if setup.mode == "continue" and (run_dir / "run.json").is_file() else \
            new_run_info(setup.mode, cfg.to_dict(), accelerator.num_processes, setup.parent)
        begin_session(info, setup.mode, start_step, cfg.to_dict())
        write_run_info(run_dir, info)
        (run_dir / "config.toml").write_text(config_to_toml(cfg))  # only now: a refused continue changes nothing
    wandb_id = broadcast_value(info.get("wandb_id", ""))
    accelerator.init_trackers(run_dir.name, config=flat_hparams(cfg), init_kwargs={
        "tensorboard": {"purge_step": start_step + 1} if start_step else {},
        "wandb": {"id": wandb_id, "resume": "allow", "name": run_dir.name, "dir": str(run_dir / "logs")},
    })

    n_params = sum(getattr(p, "ds_numel", p.numel()) for p in accelerator.unwrap_model(model).parameters())
    accelerator.print(f"model: {n_params:,} parameters; data: {len(data.train):,} train and "
                      f"{len(data.valid):,} validation blocks of {cfg.seq_len} tokens")
    accelerator.print(describe_batch(layout, cfg.seq_len))
    accelerator.print(_memory_estimate(accelerator, model, n_params, layout, cfg).format())
    if cfg.training.lr_scaling != "none":
        accelerator.print(f"learning rate: {cfg.training.lr} scaled {cfg.training.lr_scaling} from "
                          f"{cfg.training.base_batch_size} to {layout.global_batch} sequences = {peaks[0]:.3g}")
    accelerator.print(f"run directory: {run_dir}")

    loop = TrainingLoop(cfg, accelerator, model, optimizer, scheduler, data, layout, run_dir, progress, metrics,
                        identity, resumed_from=start_step)
    status, done, reason = FAILED, start_step, ""
    try:
        with StopSignals() as signals:
            status, done, reason = loop.train(signals)
    except BaseException as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        done = loop.done
        status = INTERRUPTED if isinstance(error, KeyboardInterrupt) else FAILED
        raise
    finally:
        if accelerator.is_main_process:
            end_session(info, status, done, reason)
            write_run_info(run_dir, info)

    if status == INTERRUPTED:
        accelerator.print(f"stopped after step {done} ({reason}); resume with: hfgpt continue {run_dir}")
        _finish(accelerator)
        return run_dir
    export_model(accelerator, model, tokenizer, run_dir / "final",
                 metrics={"step": done, "status": status, **({"reason": reason} if reason else {})})
    accelerator.print(f"{status}: saved the model and tokenizer to {run_dir / 'final'}"
                      + (f" ({reason})" if reason else ""))
    if cfg.logging.sample_tokens:
        unwrapped = accelerator.unwrap_model(model).eval()
        with _whole_parameters(accelerator, unwrapped):  # every process samples alike; the main one prints
            sample = generate_text(unwrapped, tokenizer, cfg.logging.sample_prompt,
                                   max_new_tokens=cfg.logging.sample_tokens, seed=cfg.training.seed)
        accelerator.print(f"sample:\n{sample}")
    _finish(accelerator)
    return run_dir


def _check_steps_left(run_dir: Path, start_step: int, max_steps: int) -> None:
    """`continue` needs steps left to train, or a run that saved its last step but was stopped before
    writing `final/` (it then only finishes)."""
    if start_step > max_steps or (start_step == max_steps and exported_step(run_dir / "final") >= start_step):
        raise HfGptError(f"{run_dir} already trained for {start_step} steps (--max-steps {max_steps}); "
                         "give a larger --max-steps to train on.")


def _finish(accelerator: Accelerator) -> None:
    """Close the trackers and the process group, once every process is done with its collectives."""
    accelerator.wait_for_everyone()
    accelerator.end_training()


def train(cfg: TrainConfig) -> Path:
    """Train a new model as `cfg` says; returns the run directory."""
    return run(RunSetup("train", cfg))


def _memory_estimate(accelerator: Accelerator, model: torch.nn.Module, n_params: int, layout: BatchLayout,
                     cfg: TrainConfig) -> MemoryEstimate:
    config = accelerator.unwrap_model(model).config
    strategy, offload_optimizer, offload_params = strategy_of(accelerator)
    return estimate_memory(
        n_params, config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.vocab_size,
        layout.micro_batch, cfg.seq_len, cfg.training.precision, strategy, accelerator.num_processes,
        gradient_checkpointing=cfg.model.gradient_checkpointing,
        intermediate_size=getattr(config, "intermediate_size", 0) or 0,
        offload_optimizer=offload_optimizer, offload_params=offload_params)


def _whole_parameters(accelerator: Accelerator, model: torch.nn.Module) -> contextlib.AbstractContextManager:
    """ZeRO-3 keeps each process's shard of the weights only; gather them all for generation."""
    if strategy_of(accelerator)[0] != "zero3":
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(list(model.parameters()))


def _warn_once(accelerator: Accelerator):
    """A warning function that only the main process voices."""
    def warn(message: str) -> None:
        if accelerator.is_main_process:
            warnings.warn(message, stacklevel=2)
    return warn


def broadcast_value(value: Any) -> Any:
    """The main process's `value` on every process."""
    holder = [value]
    broadcast_object_list(holder)
    return holder[0]
