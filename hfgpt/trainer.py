"""The training loop: data, model and optimizer set up, then one accelerate loop that reads top to bottom."""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import ProjectConfiguration, set_seed
from transformers import PreTrainedTokenizerBase

from .batches import BatchLayout, BlockOrder, eval_blocks, fetch_blocks
from .checkpoint import save_checkpoint
from .config import TrainConfig
from .config_sources import config_to_toml, format_config
from .configuration_hfgpt import HfGptConfig
from .data import PreparedData, prepare_data
from .generation import generate_text
from .logbook import Logbook
from .metrics import TokenMetrics
from .modeling_hfgpt import HfGptForCausalLM
from .optim import build_optimizer, build_scheduler
from .rundir import create_run_dir


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
    model = HfGptForCausalLM(config)
    if m.gradient_checkpointing:
        model.activation_checkpointing_enable()
    return model


def flat_hparams(cfg: TrainConfig) -> dict[str, Any]:
    """The config as `section.key` scalars, the form trackers accept as hyperparameters."""
    return {f"{section}.{key}": ",".join(value) if isinstance(value, list) else value
            for section, values in cfg.to_dict().items() for key, value in values.items()}


def describe_batch(layout: BatchLayout, seq_len: int) -> str:
    return (f"batch: {layout.micro_batch} sequences x {layout.grad_accum_steps} accumulation x "
            f"{layout.world_size} process(es) = {layout.global_batch} sequences = "
            f"{layout.global_batch * seq_len:,} tokens per optimizer step")


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Copy a batch to `device`; from pinned memory on CUDA, so the copy does not wait for the GPU."""
    if device.type == "cuda":
        batch = {k: v.pin_memory() for k, v in batch.items()}
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: PreparedData, cfg: TrainConfig, layout: BatchLayout,
             accelerator: Accelerator) -> dict[str, float]:
    """Loss, perplexity and accuracy on the first `eval_batches` validation micro-batches of every process."""
    model.eval()
    metrics = TokenMetrics(accelerator.device)
    for block_ids in eval_blocks(len(data.valid), cfg.training.eval_batches, layout, accelerator.process_index):
        batch = to_device(fetch_blocks(data.valid, block_ids, data.tokenizer.pad_token_id), accelerator.device)
        output = model(**batch, use_cache=False)
        metrics.add(output.logits, batch["labels"], output.loss)
    model.train()
    return metrics.read(accelerator)


def train(cfg: TrainConfig) -> Path:
    """Train a new model as `cfg` says; returns the run directory."""
    use_cpu, precision = choose_device_and_precision(cfg)
    state = PartialState(cpu=use_cpu)
    if use_cpu:
        torch.set_num_threads(cpu_threads(cfg.training.cpu_threads, state.num_processes))
    with state.main_process_first():  # the main process builds the caches, the others then read them
        data_cfg = dataclasses.replace(cfg.data, reset=cfg.data.reset and state.is_main_process)
        data = prepare_data(data_cfg, cfg.seq_len, log=state.print)
    run_dir = create_run_dir(cfg.checkpoint, state)

    accelerator = Accelerator(
        cpu=use_cpu, mixed_precision=precision, gradient_accumulation_steps=cfg.training.grad_accum_steps,
        log_with=[t for t in cfg.logging.trackers if t != "none"] or None,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
    )
    if not use_cpu:
        torch.set_float32_matmul_precision("high")  # TF32 matmuls on GPUs that have them
    data.tokenizer.model_max_length = cfg.model.max_position_embeddings
    if accelerator.is_main_process:
        (run_dir / "config.toml").write_text(config_to_toml(cfg))
        data.tokenizer.save_pretrained(run_dir / "tokenizer")
    accelerator.print(format_config(cfg))

    set_seed(cfg.training.seed)
    model = build_model(cfg, data.tokenizer)
    optimizer = build_optimizer(model, cfg.training)
    scheduler = build_scheduler(optimizer, cfg.training)
    # The schedule is stepped by hand once per optimizer step: a prepared scheduler steps once per process.
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    accelerator.init_trackers(run_dir.name, config=flat_hparams(cfg))

    layout = BatchLayout(cfg.training.batch_size, cfg.training.grad_accum_steps, accelerator.num_processes)
    order = BlockOrder(len(data.train), layout, cfg.training.seed)
    tokens_per_step = layout.global_batch * cfg.seq_len
    n_params = sum(p.numel() for p in accelerator.unwrap_model(model).parameters())
    accelerator.print(f"model: {n_params:,} parameters; data: {len(data.train):,} train and "
                      f"{len(data.valid):,} validation blocks of {cfg.seq_len} tokens")
    accelerator.print(describe_batch(layout, cfg.seq_len))
    accelerator.print(f"run directory: {run_dir}")

    max_steps, log_every = cfg.training.max_steps, cfg.logging.log_every
    logbook = Logbook(accelerator, run_dir, max_steps, 0, cfg.logging.progress_bar)
    metrics = TokenMetrics(accelerator.device)
    pad_id = data.tokenizer.pad_token_id
    grad_norm = torch.zeros((), device=accelerator.device)
    window_start, window_steps = time.perf_counter(), 0
    model.train()
    for step in range(max_steps):
        for micro_step in range(layout.grad_accum_steps):
            block_ids = order.micro_blocks(step, micro_step, accelerator.process_index)
            batch = to_device(fetch_blocks(data.train, block_ids, pad_id), accelerator.device)
            with accelerator.accumulate(model):
                output = model(**batch, use_cache=False)
                accelerator.backward(output.loss)
                if accelerator.sync_gradients:
                    grad_norm = accelerator.clip_grad_norm_(model.parameters(),
                                                            cfg.training.max_grad_norm or float("inf"))
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            metrics.add(output.logits, batch["labels"], output.loss)
        if not optimizer.step_was_skipped:  # an fp16 overflow skips the update, and so the schedule
            scheduler.step()
        done = step + 1
        window_steps += 1
        logbook.advance()

        if done % log_every == 0 or done == max_steps:
            seconds = time.perf_counter() - window_start
            logbook.record({
                "step": done, "split": "train", **metrics.read(accelerator),
                "lr": scheduler.get_last_lr()[0], "grad_norm": float(grad_norm),
                "tokens_per_s": window_steps * tokens_per_step / seconds,
                "ms_per_step": 1000 * seconds / window_steps,
                "tokens": done * tokens_per_step, "epoch": order.epoch_at(done),
            })
            window_start, window_steps = time.perf_counter(), 0
        if (cfg.training.eval_every and done % cfg.training.eval_every == 0) or done == max_steps:
            logbook.record({"step": done, "split": "valid", **evaluate(model, data, cfg, layout, accelerator)})
        if (cfg.checkpoint.ckpt_every and done % cfg.checkpoint.ckpt_every == 0) or done == max_steps:
            save_checkpoint(accelerator, run_dir, done, {"epoch": order.epoch_at(done),
                                                         "tokens": done * tokens_per_step})
    logbook.close()

    final_dir = run_dir / "final"
    unwrapped = accelerator.unwrap_model(model)
    state_dict = accelerator.get_state_dict(model)  # every process: ZeRO-3 gathers the shards
    if accelerator.is_main_process:
        unwrapped.save_pretrained(final_dir, state_dict=state_dict)
        data.tokenizer.save_pretrained(final_dir)
    accelerator.wait_for_everyone()
    accelerator.print(f"saved the model and tokenizer to {final_dir}")
    if cfg.logging.sample_tokens:
        unwrapped.eval()
        sample = generate_text(unwrapped, data.tokenizer, cfg.logging.sample_prompt,
                               max_new_tokens=cfg.logging.sample_tokens, seed=cfg.training.seed)
        accelerator.print(f"sample:\n{sample}")
    accelerator.end_training()
    return run_dir

