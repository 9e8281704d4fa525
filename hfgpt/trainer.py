"""Setting up a run for the three modes, then handing it to `hfgpt.loop.TrainingLoop`.

`run(setup)` starts the processes (`hfgpt.processes`), prepares data, model, optimizer and run directory;
for `continue` it restores the newest usable checkpoint (`hfgpt.resume`). The data order is a pure
function of (seed, step) (`hfgpt.batches`), so a resumed run reads exactly what the uninterrupted one
would have, with no skipping through data. At the end it saves final/, prints a sample, and records how
the run ended in run.json.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from .batches import BatchLayout, resolve_layout
from .checkpoint import clear_leftovers
from .config import TrainConfig
from .config_sources import config_to_toml, describe_settings
from .console import quiet_libraries
from .data import PreparedData, prepare_data
from .export import export_model, recover_exports
from .files import replace_text
from .generation import generate_text
from .loop import TrainingLoop
from .memory import MemoryEstimate, estimate_memory, strategy_of
from .metrics import TokenMetrics
from .models.hfgpt import HfGptConfig, HfGptForCausalLM
from .modes import RunSetup
from .optim import build_optimizer, build_scheduler
from .processes import (
    broadcast_value,
    choose_device_and_precision,
    configure_deepspeed,
    cpu_threads,
    finish_processes,
    start_processes,
    using_deepspeed,
    whole_parameters,
)
from .resume import resume
from .rundir import ARCHITECTURE, CONFIG, LOGS, TOKENIZER, claim_run_dir
from .runinfo import FAILED, INTERRUPTED, begin_session, end_session, new_run_info, read_run_info, write_run_info
from .sources import short_hash
from .stopping import Progress, StopSignals
from .trackers import check_trackers


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


def enable_activation_checkpointing(model: PreTrainedModel, **options: Any) -> None:
    """Recompute activations in the backward pass; transformers 5.23 renamed `gradient_checkpointing_enable`
    (since then a deprecated alias) to `activation_checkpointing_enable`."""
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable(options or None)


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
        enable_activation_checkpointing(model)
    return model


def flat_hparams(cfg: TrainConfig) -> dict[str, Any]:
    """The config as `section.key` scalars, the form trackers accept as hyperparameters."""
    return {f"{section}.{key}": ",".join(value) if isinstance(value, list) else value
            for section, values in cfg.to_dict().items() for key, value in values.items()}


def describe_batch(layout: BatchLayout, seq_len: int) -> str:
    return (f"batch: {layout.micro_batch} sequences x {layout.grad_accum_steps} accumulation x "
            f"{layout.world_size} process(es) = {layout.global_batch} sequences = "
            f"{layout.global_batch * seq_len:,} tokens per optimizer step")


def run(setup: RunSetup) -> Path:
    """Train as `setup` says (a new run, a continued one, or a fork); returns the run directory."""
    cfg = setup.cfg
    quiet_libraries(cfg.logging.progress_bar)
    check_trackers(cfg.logging.trackers)  # before any data is read: a typo costs nothing
    use_cpu, precision = choose_device_and_precision(cfg)
    state = start_processes(use_cpu)
    if use_cpu:
        torch.set_num_threads(cpu_threads(cfg.training.cpu_threads, state.num_processes))
    if cfg.training.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    # The run directory first: a launch that cannot have it is refused before minutes of tokenizing.
    with claim_run_dir(cfg.checkpoint, setup.run_dir, state) as run_dir:
        with state.main_process_first():  # the main process builds the caches, the others then read them
            data_cfg = dataclasses.replace(cfg.data, reset=cfg.data.reset and state.is_main_process)
            data = prepare_data(data_cfg, cfg.seq_len, log=state.print, tokenizer=setup.tokenizer)
        return _train(setup, data, run_dir, resolve_layout(cfg.training, cfg.seq_len, state.num_processes),
                      use_cpu, precision)


def _train(setup: RunSetup, data: PreparedData, run_dir: Path, layout: BatchLayout, use_cpu: bool,
           precision: str) -> Path:
    """Everything from the Accelerator to final/, in the run directory this launch holds."""
    cfg = setup.cfg
    accelerator = Accelerator(
        cpu=use_cpu and not using_deepspeed(), mixed_precision=precision,
        gradient_accumulation_steps=layout.grad_accum_steps,
        log_with=check_trackers(cfg.logging.trackers) or None,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / LOGS)),
    )
    configure_deepspeed(accelerator, layout, cfg)
    if not use_cpu:
        torch.set_float32_matmul_precision("high")  # TF32 matmuls on GPUs that have them
    tokenizer = data.tokenizer
    tokenizer.model_max_length = cfg.seq_len

    set_seed(cfg.training.seed)
    model = setup_model(setup, tokenizer)
    if accelerator.is_main_process:
        _prepare_run_dir(setup, run_dir, tokenizer, model)
    accelerator.print(f"config: {describe_settings(cfg)}; every setting is in {run_dir / 'config.toml'}")
    optimizer = build_optimizer(model, cfg.training, layout.global_batch)
    scheduler = build_scheduler(optimizer, cfg.training)
    # The schedule is stepped by hand once per optimizer step (a prepared scheduler steps once per process),
    # and saved in trainer_state.json, not as a pickle that accelerate would load without weights_only.
    model, optimizer = accelerator.prepare(model, optimizer)

    identity = {"world_size": accelerator.num_processes, "global_batch": layout.global_batch,
                "seq_len": cfg.seq_len, "tokenizer": short_hash(tokenizer.backend_tokenizer.to_str()),
                "data": data.cache_dir.name}
    start_step, progress, metrics = 0, Progress(), TokenMetrics(accelerator.device)
    if setup.mode == "continue":
        start_step, progress = resume(accelerator, run_dir, model, optimizer, scheduler, metrics, identity, cfg)
    info = _open_session(accelerator, setup, run_dir, start_step)
    accelerator.init_trackers(run_dir.name, config=flat_hparams(cfg), init_kwargs={
        "tensorboard": {"purge_step": start_step + 1} if start_step else {},
        "wandb": {"id": broadcast_value(info.get("wandb_id", "")), "resume": "allow", "name": run_dir.name,
                  "dir": str(run_dir / LOGS)},
    })
    _announce(accelerator, model, data, layout, cfg, scheduler.base_lrs[0], run_dir)

    loop = TrainingLoop(cfg, accelerator, model, optimizer, scheduler, data, layout, run_dir, progress, metrics,
                        identity, resumed_from=start_step)
    status, done, reason = FAILED, start_step, ""
    try:
        with StopSignals() as signals:
            status, done, reason = loop.train(signals)
        if status != INTERRUPTED:  # within the try: a final/ that cannot be written fails the run
            _save_final(accelerator, model, tokenizer, loop, status, done, reason)
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
    elif cfg.logging.sample_tokens:
        _print_sample(accelerator, model, tokenizer, cfg)
    finish_processes(accelerator)
    return run_dir


def _prepare_run_dir(setup: RunSetup, run_dir: Path, tokenizer: PreTrainedTokenizerBase,
                  model: PreTrainedModel) -> None:
    """A continued run clears what a crash left half-done; a new one saves what `continue` rebuilds from."""
    if setup.mode == "continue":
        clear_leftovers(run_dir)
        recover_exports(run_dir)
    else:
        tokenizer.save_pretrained(run_dir / TOKENIZER)
        model.config.save_pretrained(run_dir / ARCHITECTURE)


def _open_session(accelerator: Accelerator, setup: RunSetup, run_dir: Path, start_step: int) -> dict[str, Any]:
    """Record this launch in run.json and the resolved config in config.toml (main process; others get {}).
    Only now, after a `continue` was found resumable: a refused one changes nothing."""
    if not accelerator.is_main_process:
        return {}
    cfg = setup.cfg
    info = (read_run_info(run_dir) if setup.mode == "continue" else None) or \
        new_run_info(setup.mode, cfg.to_dict(), accelerator.num_processes, setup.parent)
    begin_session(info, setup.mode, start_step, cfg.to_dict())
    write_run_info(run_dir, info)
    replace_text(run_dir / CONFIG, config_to_toml(cfg))
    return info


def _announce(accelerator: Accelerator, model: torch.nn.Module, data: PreparedData, layout: BatchLayout,
              cfg: TrainConfig, peak_lr: float, run_dir: Path) -> None:
    """Print the model and data sizes, the batch layout, the memory estimate and where the run goes."""
    n_params = sum(getattr(p, "ds_numel", p.numel()) for p in accelerator.unwrap_model(model).parameters())
    threads = f", {torch.get_num_threads()} threads each" if accelerator.device.type == "cpu" else ""
    precision = {"no": "fp32"}.get(accelerator.mixed_precision, accelerator.mixed_precision)
    accelerator.print(f"device: {accelerator.device.type}, {accelerator.num_processes} process(es){threads}; "
                      f"precision {precision}")
    accelerator.print(f"model: {n_params:,} parameters; data: {len(data.train):,} train and "
                      f"{len(data.valid):,} validation blocks of {cfg.seq_len} tokens")
    accelerator.print(describe_batch(layout, cfg.seq_len))
    accelerator.print(_memory_estimate(accelerator, model, n_params, layout, cfg).format())
    if cfg.training.lr_scaling != "none":
        accelerator.print(f"learning rate: {cfg.training.lr} scaled {cfg.training.lr_scaling} from "
                          f"{cfg.training.base_batch_size} to {layout.global_batch} sequences = {peak_lr:.3g}")
    accelerator.print(f"run directory: {run_dir}")


def _save_final(accelerator: Accelerator, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                loop: TrainingLoop, status: str, done: int, reason: str) -> None:
    """final/, whose metrics.json names the step, so that `continue` knows whether the run finished."""
    final = loop.run_dir / "final"
    try:
        export_model(accelerator, model, tokenizer, final,
                     metrics={"step": done, "status": status, **({"reason": reason} if reason else {})})
    except OSError as error:
        raise loop.write_failure(error) from None
    accelerator.print(f"{status}: saved the model and tokenizer to {final}" + (f" ({reason})" if reason else ""))


def _print_sample(accelerator: Accelerator, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                  cfg: TrainConfig) -> None:
    unwrapped = accelerator.unwrap_model(model).eval()
    with whole_parameters(accelerator, unwrapped):  # every process samples alike; the main one prints
        sample = generate_text(unwrapped, tokenizer, cfg.logging.sample_prompt,
                               max_new_tokens=cfg.logging.sample_tokens, seed=cfg.training.seed)
    accelerator.print(f"sample:\n{sample}")


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
