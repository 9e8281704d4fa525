"""`--optimizer muon`: torch's Muon for the weight matrices inside the blocks, AdamW for the rest, as one optimizer.

Muon (Keller Jordan, https://kellerjordan.github.io/posts/muon/, the optimizer of the modded-nanogpt speedruns)
replaces each matrix's momentum by the nearest semi-orthogonal matrix (five Newton-Schulz steps), which makes
sense for a hidden layer's matrix only: embeddings and the output head are read row by row, norms and biases are
vectors. Those stay with AdamW, in `hfgpt.training.optim.parameter_groups`' groups and rates (--lr, --lr-head).

`CombinedOptimizer` makes the two one `torch.optim.Optimizer`: one list of parameter groups (AdamW's, then Muon's:
the very dicts the two step with), one state keyed by parameter, one `step`. So the rest of hfgpt sees one
optimizer: the schedule (one LambdaLR, each group from its own peak), accelerate's `prepare` and accumulation,
clipping (of the model's gradients), the non-finite skip (the host does not call `step`; Muon has no device-side
skip, so `--step-sync lagged` is refused with it) and save_state/load_state (one state_dict in torch's format).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..config import TrainingSection
from ..errors import HfGptError
from ..launch.processes import ENGINE_NAMES
from .optim import adamw, parameter_groups, scaled_lr

# Why a launch with this engine cannot train with Muon, which orthogonalizes each whole matrix.
UNSUPPORTED_ENGINES = {
    "deepspeed": "it steps the optimizer inside its engine, over flattened partitions of the parameters rather than "
                 "whole matrices",
    "fsdp": "it gives each process only its shard of every weight matrix, and hfgpt does not gather the shards for "
            "Muon",
}


class CombinedOptimizer(torch.optim.Optimizer):
    """Optimizers over disjoint parameters, stepped as one: their groups in one list, their state in one dict."""

    def __init__(self, *optimizers: torch.optim.Optimizer) -> None:
        self.optimizers = optimizers
        super().__init__([group for optimizer in optimizers for group in optimizer.param_groups], defaults={})
        self._share()

    def _share(self) -> None:
        """Each optimizer steps with its slice of this one's groups and with this one's state: those that
        `load_state_dict` replaces."""
        start = 0
        for optimizer in self.optimizers:
            end = start + len(optimizer.param_groups)
            optimizer.param_groups, optimizer.state = self.param_groups[start:end], self.state
            start = end

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One update of every parameter: each optimizer steps its own (a closure, as torch's contract has it, is
        evaluated once)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for optimizer in self.optimizers:
            optimizer.step()
        return loss

    def load_state_dict(self, state_dict: dict) -> None:
        """torch's loading, which replaces the groups and the state (accelerate's `prepare` loads too): the optimizers
        must step with the new ones."""
        super().load_state_dict(state_dict)
        self._share()


def hidden_matrices(model: nn.Module) -> list[nn.Parameter]:
    """The 2-D weights inside the model's blocks (its `_no_split_modules` classes: hfgpt's decoder layer, GPT-2's
    or Llama's block): the attention and MLP projections, each once."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    blocks = [module for module in model.modules() if type(module).__name__ in names]
    if not blocks:
        raise HfGptError(f"--optimizer muon trains the weight matrices inside the model's blocks, but "
                         f"{type(model).__name__} names no block class (`_no_split_modules`); train it with "
                         "--optimizer adamw.")
    found = {id(p): p for block in blocks for p in block.parameters() if p.ndim == 2 and p.requires_grad}
    return list(found.values())


def build_muon(model: nn.Module, training: TrainingSection, global_batch: int = 0) -> CombinedOptimizer:
    """Muon over `hidden_matrices` (torch's "original" rate adjustment, Keller Jordan's: x sqrt(max(1, rows /
    columns))), AdamW over the rest of `parameter_groups`; --lr-scaling scales --muon-lr as it scales --lr."""
    hidden = hidden_matrices(model)
    taken = {id(p) for p in hidden}
    groups = [{**group, "params": [p for p in group["params"] if id(p) not in taken]}
              for group in parameter_groups(model, training, global_batch)]
    muon = torch.optim.Muon(hidden, lr=scaled_lr(training.muon_lr, training, global_batch),
                            weight_decay=training.muon_weight_decay, momentum=training.muon_momentum,
                            nesterov=True, adjust_lr_fn="original")
    return CombinedOptimizer(adamw([group for group in groups if group["params"]], training), muon)


def check_optimizer_launch(optimizer: str, engine: str) -> None:
    """Refuse `--optimizer muon` under an engine that would not hand Muon whole matrices (`engine`: "deepspeed",
    "fsdp" or "")."""
    if optimizer != "muon" or engine not in UNSUPPORTED_ENGINES:
        return
    name, reason = ENGINE_NAMES[engine], UNSUPPORTED_ENGINES[engine]
    raise HfGptError(f"--optimizer muon cannot train under {name}: {reason}. Launch the processes without {name} "
                     "(plain DDP: accelerate launch --multi_gpu, or torchrun), or keep it and train with "
                     "--optimizer adamw.")


def describe_optimizer(training: TrainingSection) -> str:
    """The optimizer as the start of a run prints it."""
    if training.optimizer != "muon":
        return f"AdamW ({training.optimizer_kernel})"
    return f"Muon (hidden matrices, lr {training.muon_lr:g}) + AdamW ({training.optimizer_kernel}, the rest)"
