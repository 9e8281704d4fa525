"""What a checkpoint knows about its run besides the weights, the optimizer and the RNG files, and the one
answer to "is this still the same run?".

`TrainerState` is written by the loop into each checkpoint's `trainer_state.json` and read back by `continue`:
the step, the schedule, the metric window, the stop rules' memory (`Progress`), each process's RNG
fingerprint, and the run's identity. The identity is what must not change for a run to go on as it would
have: the settings whose rule is `on_continue="refuse"` (compared with the saved config.toml before any work)
and what a launch derives from them (processes, global batch, block length, tokenizer, data), compared with
the checkpoint's once it is loaded. `check_same_run` refuses either kind, naming what differs and the fix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.utils import is_cuda_available

from ..config import FIELDS, flag_of
from ..errors import HfGptError

# What a launch derives, and how to make it match again.
DERIVED = {
    "world_size": "launch it on as many processes as it was saved with (accelerate launch --num_processes), "
                  "or fork it",
    "global_batch": "the batch settings changed; use the run's own, or fork it",
    "seq_len": "the sequence length changed; use the run's own, or fork it",
    "tokenizer": "the run's tokenizer/ folder is not the one this checkpoint was trained with; restore it",
    "data": "the training data are not the same files or contents; point --train/--datadir at the run's "
            "data, or fork the run to train on new data",
    "mixture": "the weights of the mixture's sources (or where their schedule points fall: a fraction counts in "
               "--max-steps) decide which blocks every step reads, so they cannot change within a run; continue "
               "with the run's own --train and --max-steps, or fork the run to train on with new weights",
}


@dataclass
class Progress:
    """What the stop rules remember from step to step: the best validation loss, and the bad steps."""

    best_loss: float = float("inf")
    best_step: int = 0
    evals_without_improvement: int = 0
    bad_steps_in_a_row: int = 0
    skipped_steps: int = 0

    def observe_eval(self, loss: float, step: int, min_delta: float) -> bool:
        """Record a validation loss; True when it improves on the best by at least `min_delta`."""
        if loss < self.best_loss - min_delta:
            self.best_loss, self.best_step, self.evals_without_improvement = loss, step, 0
            return True
        self.evals_without_improvement += 1
        return False

    def observe_step(self, nonfinite: bool) -> None:
        self.bad_steps_in_a_row = self.bad_steps_in_a_row + 1 if nonfinite else 0
        self.skipped_steps += int(nonfinite)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "best_loss": None if self.best_loss == float("inf") else self.best_loss}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Progress:
        fields = {k: data[k] for k in asdict(cls()) if k in data}
        if fields.get("best_loss") is None:
            fields["best_loss"] = float("inf")
        return cls(**fields)


@dataclass
class TrainerState:
    """Where a run is, and what it is; `to_json` is the flat `trainer_state.json` that earlier versions wrote."""

    identity: dict[str, Any]  # DERIVED keys -> values
    step: int = 0
    epoch: float = 0.0
    tokens: int = 0
    scheduler: dict[str, Any] = field(default_factory=dict)  # LambdaLR's state without its lambdas
    progress: Progress = field(default_factory=Progress)
    metric_sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # loss x tokens, correct, tokens
    rng_fingerprints: list[str] = field(default_factory=list)  # by rank; empty in checkpoints that predate them
    data_stream: list[dict[str, Any]] = field(default_factory=list)  # --streaming: each rank's stream position

    def to_json(self) -> dict[str, Any]:
        stream = {"data_stream": self.data_stream} if self.data_stream else {}
        return {"step": self.step, "epoch": self.epoch, "tokens": self.tokens, "scheduler": self.scheduler,
                "progress": self.progress.to_dict(), "metric_sums": self.metric_sums, **self.identity,
                "rng_fingerprints": self.rng_fingerprints, **stream}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainerState:
        return cls(identity={key: data[key] for key in DERIVED if key in data}, step=data["step"],
                   epoch=data.get("epoch", 0.0), tokens=data.get("tokens", 0), scheduler=data["scheduler"],
                   progress=Progress.from_dict(data.get("progress", {})),
                   metric_sums=list(data.get("metric_sums", [0.0, 0.0, 0.0])),
                   rng_fingerprints=list(data.get("rng_fingerprints") or []),
                   data_stream=list(data.get("data_stream") or []))

    def replaced(self, **changes: Any) -> TrainerState:
        return dataclasses.replace(self, **changes)


Pair = tuple[Mapping[str, Any], Mapping[str, Any]]  # (saved, now)


def check_same_run(run_dir: Path, *, settings: Pair | None = None, derived: Pair | None = None) -> None:
    """Refuse to go on where this launch differs from what the run was saved with, in what makes the run:
    `settings` (config values by field name, from config.toml) or `derived` (`DERIVED` keys, from the
    checkpoint). Only what both sides have is compared."""
    saved, now = settings or ({}, {})
    refused = {name: (saved[name], now[name]) for name in saved if name in now
               and FIELDS[name].rules.on_continue == "refuse" and saved[name] != now[name]}
    if refused:
        listed = ", ".join(f"{flag_of(name)} ({old!r} -> {new!r})" for name, (old, new) in refused.items())
        forked = " ".join(f"{flag_of(name)} {new}" for name, (_, new) in refused.items())
        raise HfGptError(
            f"`hfgpt continue` cannot change {listed}: that would change the math of the run in {run_dir}, "
            "so it would no longer be the same run. Continue without it, or start a new run from this one's "
            f"weights: hfgpt fork {run_dir} {forked}")
    saved, now = derived or ({}, {})
    for key, fix in DERIVED.items():
        if key in saved and key in now and saved[key] != now[key]:
            raise HfGptError(f"Cannot continue {run_dir}: its checkpoint has {key} {saved[key]!r} but this launch "
                             f"has {now[key]!r}; {fix}.")


def rng_fingerprint() -> str:
    """SHA-256 of this process's random states as accelerate's `save_state` writes them to
    `random_states_<rank>.pkl`: Python's, numpy's, torch's, and CUDA's where accelerate saves them. accelerate's
    `load_state` skips, silently, an RNG file it cannot load; comparing fingerprints after loading catches it."""
    digest = hashlib.sha256(repr(random.getstate()).encode())
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    digest.update(f"{kind} {position} {has_gauss} {cached_gaussian!r}".encode())
    digest.update(keys.tobytes())
    digest.update(torch.get_rng_state().numpy().tobytes())
    for state in torch.cuda.get_rng_state_all() if is_cuda_available() else []:
        digest.update(state.numpy().tobytes())
    return digest.hexdigest()


def rng_problem(state: TrainerState, rank: int) -> str:
    """Why this process's random states, just loaded, are not those that were saved; "" when they are, or when
    the checkpoint predates the fingerprints or holds no entry for `rank` (another world size, which
    `check_same_run` refuses by name)."""
    saved = state.rng_fingerprints
    if rank >= len(saved) or saved[rank] == rng_fingerprint():
        return ""
    return (f"its RNG state did not load from random_states_{rank}.pkl (accelerate skips an RNG file it cannot "
            "load), so the run would not go on exactly as it would have")
