"""`continue` on another number of processes: the same global batch and data order, a new split of it.

A run's math is its global batch (sequences per optimizer step) and its data order, which is a pure function of
(seed, step) and of nothing about the processes (hfgpt.data.batches). Under plain DDP (or one process) every
process holds the whole model and the whole optimizer state, and the checkpoint holds them once; so a preempted
job may go on with the processes that are free: each takes `global batch / processes` sequences per step, in
micro-batches of at most --batch-size (accumulating the rest), and the losses stay within rounding of the
uninterrupted run (the sums are added in another order). Dropout draws from each process's random stream, which
belongs to a rank: after a change every process reseeds its streams from (seed, step, rank), so the continued run
is reproducible, though not the uninterrupted run's draws. DeepSpeed's ZeRO-2 and ZeRO-3 save the optimizer in
slices by rank: their checkpoint is loaded through DeepSpeed's universal form (hfgpt.runs.zero_reshard), which cuts
it anew. FSDP saves through torch.distributed.checkpoint, whose load cuts the saved slices for the processes that
load them. A stream's positions, split by rank, continue on as many processes as saved them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from accelerate.utils import set_seed
from accelerate.utils.constants import FSDP_MODEL_NAME

from ..config import TrainConfig
from ..data.batches import BatchLayout, resolve_layout
from ..errors import HfGptError
from ..launch.processes import ENGINE_NAMES
from ..runs.checkpoint import TRAINER_STATE, complete_checkpoints


def saved_layout(run_dir: Path) -> dict[str, Any]:
    """The world size, global batch and engine ("deepspeed", "fsdp" or "") of the run's newest complete checkpoint
    ({} when it has none). DeepSpeed writes its own `latest` tag beside accelerate's files, FSDP its model as a
    torch.distributed.checkpoint folder."""
    for folder in reversed(complete_checkpoints(run_dir)):
        try:
            state = json.loads((folder / TRAINER_STATE).read_text())
            engine = "deepspeed" if (folder / "latest").is_file() else \
                "fsdp" if (folder / f"{FSDP_MODEL_NAME}_0").is_dir() else ""
            return {"world_size": int(state["world_size"]), "global_batch": int(state["global_batch"]),
                    "engine": engine}
        except (OSError, ValueError, KeyError, TypeError):
            continue  # the loader sets a damaged checkpoint aside and says why
    return {}


def continued_layout(cfg: TrainConfig, world_size: int, saved: dict[str, Any], engine: str) -> BatchLayout | None:
    """The layout of a continue on `world_size` processes where the checkpoint was saved on another number: the
    saved global batch, cut for these processes; None when the number is the same (the usual layout holds). A
    checkpoint of DeepSpeed or FSDP and a launch without it (or with the other) cannot load each other's files:
    refused here, before the loader would find the checkpoint unreadable and set it aside."""
    if saved and saved["engine"] != engine:
        was, now = (f"under {ENGINE_NAMES[name]}" if name else "without DeepSpeed or FSDP"
                    for name in (saved["engine"], engine))
        raise HfGptError(f"This run's checkpoint was saved {was} and this launch runs {now}; their files differ. "
                         "Continue it with the accelerate config it was launched with (accelerate launch "
                         "--config_file ...), or fork it.")
    before = saved.get("world_size", world_size)
    if before == world_size:
        return None
    if cfg.data.streaming:
        raise HfGptError(f"This run's checkpoint was saved by {before} processes and each process saved its own "
                         f"position in its part of the training stream, so it continues only on {before}: launch it "
                         f"with --num_processes {before}, or fork it. (A run that reads packed blocks continues on "
                         "any number of processes that divides its global batch.)")
    global_batch = saved["global_batch"]
    if global_batch % world_size:
        fits = [n for n in range(1, global_batch + 1) if global_batch % n == 0]
        nearest = sorted(fits, key=lambda n: (abs(n - world_size), n))[:2]
        raise HfGptError(f"This run's global batch of {global_batch} sequences cannot be split over {world_size} "
                         f"processes in equal parts; the nearest numbers of processes that can are "
                         f"{' and '.join(map(str, sorted(nearest)))} (any divisor of {global_batch}).")
    t = cfg.training
    caps = [cap for cap in (t.max_sentences_per_device, t.batch_size) if cap]
    kept = dataclasses.replace(t, token_batch_size=global_batch * cfg.seq_len, grad_accum_steps=0,
                               max_sentences_per_device=min(caps))
    return resolve_layout(kept, cfg.seq_len, world_size)


def describe_change(before: int, layout: BatchLayout, seq_len: int) -> str:
    return (f"continuing on {layout.world_size} process(es) instead of {before}: the global batch stays "
            f"{layout.global_batch} sequences and the data order is the same; each process now takes "
            f"{layout.micro_batch} sequences x {layout.grad_accum_steps} accumulation per step "
            f"({layout.describe(seq_len).removeprefix('batch: ')}). Dropout streams are reseeded from "
            "(seed, step, rank).")


def reseed(seed: int, step: int, rank: int) -> None:
    """This process's random streams after a change of processes: a function of (seed, step, rank)."""
    set_seed(int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0]))


__all__ = ["continued_layout", "describe_change", "reseed", "saved_layout"]
