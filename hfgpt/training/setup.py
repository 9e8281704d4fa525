"""Everything a launch trains with, built once: the `Run` (accelerator, model, optimizer, schedule, data, batch
layout, run directory and identity), from a `RunSetup` that says which mode it is and what it starts from,
and the `TrainerState` it starts at (fresh, or restored by `continue`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from transformers import AutoModelForCausalLM, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerFast

from ..config import Derived, TrainConfig, model_config_kwargs
from ..data.batches import BatchLayout
from ..data.mixture import schedules_key
from ..data.prepare import PreparedData
from ..files import short_hash
from ..launch.processes import configure_deepspeed, new_accelerator, using_deepspeed
from ..models.hfgpt import HfGptConfig, HfGptForCausalLM
from ..runs.checkpoint import clear_leftovers
from ..runs.model_folders import recover_exports
from ..runs.resume import resume
from ..runs.rundir import ARCHITECTURE, LOGS, TOKENIZER
from ..runs.state import TrainerState
from ..runs.zero_reshard import load_universal
from ..tasks.items import Task
from .elastic import reseed
from .muon import build_muon
from .optim import apply_peak_lr, build_optimizer, build_scheduler
from .trackers import check_trackers

MIXED_PRECISION = {"fp32": "no", "fp16": "fp16", "bf16": "bf16"}  # hfgpt's names -> accelerate's


@dataclass
class RunSetup:
    """What a mode gives `hfgpt.training.trainer.run` besides the config; None where the run builds it."""

    mode: str  # train, continue or fork
    cfg: TrainConfig
    run_dir: Path | None = None  # continue: the run being continued
    tokenizer: PreTrainedTokenizerFast | None = None  # continue, fork: the tokenizer to keep
    model_config: PretrainedConfig | None = None  # continue: the architecture to rebuild
    model: PreTrainedModel | None = None  # fork: the model whose weights the run starts from
    parent: dict[str, Any] | None = None  # fork: where the weights came from
    derived: tuple[Derived, ...] = ()  # train: what --depth derived, printed at the start


@dataclass
class Run:
    """One launch's training objects, prepared by accelerate."""

    setup: RunSetup
    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    data: PreparedData
    layout: BatchLayout
    run_dir: Path
    identity: dict[str, Any]  # what must not change for the run to go on (hfgpt.runs.state.DERIVED)
    tasks: list[Task] = field(default_factory=list)  # scored at each evaluation (--eval-tasks)
    resized_from: int = 0  # continue: the processes the checkpoint was saved by, when that was another number

    @property
    def cfg(self) -> TrainConfig:
        return self.setup.cfg


def build_model(cfg: TrainConfig, tokenizer: PreTrainedTokenizerFast) -> HfGptForCausalLM:
    """A freshly initialised model: the model section by field name, sized to the tokenizer."""
    config = HfGptConfig(**model_config_kwargs(cfg.model), vocab_size=len(tokenizer),
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    # `auto` is resolved when a run starts (hfgpt.launch.processes.attention_kernel); elsewhere it is sdpa
    config._attn_implementation = {"auto": "sdpa"}.get(cfg.model.attn_implementation, cfg.model.attn_implementation)
    return HfGptForCausalLM(config)


def enable_activation_checkpointing(model: PreTrainedModel, **options: Any) -> None:
    """Recompute activations in the backward pass; transformers 5.23 renamed `gradient_checkpointing_enable`
    (since then a deprecated alias) to `activation_checkpointing_enable`."""
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable(options or None)


def setup_model(setup: RunSetup, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
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


def compile_model(model: torch.nn.Module, mode: str) -> None:
    """torch.compile the model in place (`Module.compile`: parameters keep their names, so checkpoints and
    save_pretrained see no `_orig_mod.`), for fixed shapes: every training micro-batch has the same shape.
    Code that fails to compile runs eagerly (dynamo's `suppress_errors`, set for the run by
    `hfgpt.launch.torch_settings`); the loop says so after step 1."""
    model.compile(mode=None if mode == "default" else mode, dynamic=False)


def build_run(setup: RunSetup, data: PreparedData, run_dir: Path, layout: BatchLayout, use_cpu: bool,
              tasks: list[Task] | None = None, resized_from: int = 0) -> Run:
    """The accelerator and the prepared model and optimizer; a new run also saves what `continue` rebuilds."""
    cfg = setup.cfg
    accelerator = new_accelerator(
        cpu=use_cpu and not using_deepspeed(), mixed_precision=MIXED_PRECISION[cfg.training.precision],
        gradient_accumulation_steps=layout.grad_accum_steps,
        log_with=check_trackers(cfg.logging.trackers) or None,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / LOGS)),
    )
    configure_deepspeed(accelerator, layout, cfg)
    if resized_from and accelerator.state.deepspeed_plugin is not None:
        load_universal(accelerator)  # a ZeRO checkpoint of another number of processes
    data.tokenizer.model_max_length = cfg.seq_len
    set_seed(cfg.training.seed)
    model = setup_model(setup, data.tokenizer)
    if cfg.training.compile:
        compile_model(model, cfg.training.compile_mode)
    if accelerator.is_main_process:
        _prepare_run_dir(setup, run_dir, data.tokenizer, model)
    build = build_muon if cfg.training.optimizer == "muon" else build_optimizer
    optimizer = build(model, cfg.training, layout.global_batch)
    # Stepped by hand once per optimizer step (a prepared scheduler steps once per process), and saved in the
    # trainer state, not as a pickle that accelerate would load without weights_only.
    scheduler = build_scheduler(optimizer, cfg.training)
    model, optimizer = accelerator.prepare(model, optimizer)
    identity = {"world_size": accelerator.num_processes, "global_batch": layout.global_batch,
                "seq_len": cfg.seq_len, "tokenizer": short_hash(data.tokenizer.backend_tokenizer.to_str()),
                "data": data.identity}
    if data.schedules:
        identity["mixture"] = schedules_key(data.schedules, cfg.training.max_steps)
    return Run(setup, accelerator, model, optimizer, scheduler, data, layout, run_dir, identity, tasks or [],
               resized_from)


def _prepare_run_dir(setup: RunSetup, run_dir: Path, tokenizer: PreTrainedTokenizerFast,
                     model: PreTrainedModel) -> None:
    """A continued run clears what a crash left half-done; a new one saves what `continue` rebuilds from."""
    if setup.mode == "continue":
        clear_leftovers(run_dir)
        recover_exports(run_dir)
    else:
        tokenizer.save_pretrained(run_dir / TOKENIZER)
        model.config.save_pretrained(run_dir / ARCHITECTURE)


def starting_state(run: Run) -> TrainerState:
    """Step 0 for a new run; for `continue`, the newest usable checkpoint, restored into the prepared objects,
    with this launch's peak learning rates if it changed them (with a warning, in `continue_setup`)."""
    if run.setup.mode != "continue":
        return TrainerState(identity=run.identity)
    peaks = list(run.scheduler.base_lrs)  # before the checkpoint's replace them
    # on another number of processes (hfgpt.training.elastic) the processes' count may differ, and nothing else
    compared = {key: value for key, value in run.identity.items() if not (run.resized_from and key == "world_size")}
    zero = run.accelerator.state.deepspeed_plugin is not None
    state = resume(run.accelerator, run.run_dir, run.model, run.scheduler, compared, run.cfg.training.max_steps,
                   reshard=bool(run.resized_from) and zero)
    if run.resized_from:
        reseed(run.cfg.training.seed, state.step, run.accelerator.process_index)
        # accelerate's count of micro-batches, restored from the checkpoint, counted the old layout's: it would
        # sync the gradients in mid-step when the old count of micro-batches is not a multiple of the new accumulation
        run.accelerator.step = 0
    apply_peak_lr(run.optimizer, run.scheduler, peaks, run.cfg.training)
    state.identity = run.identity  # the same where both have a key; written whole from now on
    return state
