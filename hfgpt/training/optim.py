"""AdamW with the usual GPT parameter groups, and the warmup + cosine learning-rate schedule (of every group,
Muon's too: `hfgpt.training.muon`)."""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from ..config import TrainingSection


def scaled_lr(lr: float, training: TrainingSection, global_batch: int) -> float:
    """`lr` scaled by `lr_scaling` from `base_batch_size` to the global batch (both in sequences)."""
    ratio = global_batch / training.base_batch_size if training.base_batch_size else 1.0
    return lr * {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[training.lr_scaling]


def parameter_groups(model: nn.Module, training: TrainingSection, global_batch: int = 0) -> list[dict]:
    """Split parameters into decayed weights, undecayed ones, and an untied output head.

    Norms, biases and embeddings are never decayed; the output head gets `lr_head` when it is a
    parameter of its own (with tied embeddings it is the embedding and follows `lr`).
    """
    head = model.get_output_embeddings()
    head_weight = head.weight if head is not None else None
    embedding_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    lr = scaled_lr(training.lr, training, global_batch)
    lr_head = scaled_lr(training.lr_head or training.lr, training, global_batch)
    decay, no_decay, head_params, seen = [], [], [], set()
    for name, param in model.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        if param is head_weight and id(param) not in embedding_weights:
            head_params.append(param)
        elif len(getattr(param, "ds_shape", param.shape)) < 2 or id(param) in embedding_weights \
                or name.endswith("bias"):  # ds_shape: the real shape of a ZeRO-3 partitioned parameter
            no_decay.append(param)
        else:
            decay.append(param)
    groups = [
        {"params": decay, "weight_decay": training.weight_decay, "lr": lr},
        {"params": no_decay, "weight_decay": 0.0, "lr": lr},
    ]
    if head_params:
        groups.append({"params": head_params, "weight_decay": training.weight_decay, "lr": lr_head})
    elif training.lr_head and training.lr_head != training.lr:
        warnings.warn(f"--lr-head {training.lr_head} is ignored: the output head of this model is tied to the input "
                      "embedding, so it trains at --lr; train with --no-tie-word-embeddings to give the head a "
                      "rate of its own.", stacklevel=2)
    return [group for group in groups if group["params"]]


FUSED_DEVICES = ("cuda", "cpu", "xpu", "mps")  # where torch has a fused AdamW kernel


def optimizer_kernel(asked: str, device_type: str, deepspeed: bool) -> str:
    """`--optimizer-kernel auto` for this launch: fused where torch has it for the device, else foreach; under
    DeepSpeed, which steps the optimizer inside its engine, foreach."""
    if asked != "auto":
        return asked
    return "fused" if device_type in FUSED_DEVICES and not deepspeed else "foreach"


def adamw(groups: list[dict], training: TrainingSection) -> torch.optim.AdamW:
    """AdamW over `groups`, with the kernel `training.optimizer_kernel` names (resolved)."""
    kernel = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}}
    return torch.optim.AdamW(groups, betas=(training.beta1, training.beta2),
                             **kernel.get(training.optimizer_kernel, {}))


def build_optimizer(model: nn.Module, training: TrainingSection, global_batch: int = 0) -> torch.optim.AdamW:
    """AdamW over `parameter_groups`: `--optimizer adamw`."""
    return adamw(parameter_groups(model, training, global_batch), training)


def lr_factor(step: int, training: TrainingSection) -> float:
    """Multiplier of the peak rate at `step`: linear warmup, then cosine down to `min_lr_ratio`."""
    if step < training.warmup_steps:
        return (step + 1) / training.warmup_steps
    span = max(1, training.max_steps - training.warmup_steps)
    progress = min(1.0, (step - training.warmup_steps) / span)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return training.min_lr_ratio + (1.0 - training.min_lr_ratio) * cosine


def build_scheduler(optimizer: torch.optim.Optimizer, training: TrainingSection) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, training))


def apply_peak_lr(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR,
                  peaks: list[float], training: TrainingSection) -> None:
    """After a restore, keep this launch's peak rates if `continue` changed them (the checkpoint has the old)."""
    if list(scheduler.base_lrs) == peaks:
        return
    scheduler.base_lrs = list(peaks)
    factor = lr_factor(scheduler.last_epoch, training)
    for group, peak in zip(optimizer.param_groups, peaks, strict=True):
        group["initial_lr"], group["lr"] = peak, peak * factor
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
