"""How much memory training takes per device, estimated before the first step.

Counted per device: parameters, gradients, AdamW state (two fp32 moments, plus the fp32 master copy of
its partition that DeepSpeed's ZeRO optimizer always keeps, even when the parameters are fp32 too), and
activations. ZeRO-1 shards the optimizer state over the processes, ZeRO-2 also the gradients, ZeRO-3
and FSDP also the parameters; offloading moves the optimizer state (and parameters) to CPU memory.
Under accelerate's own mixed precision the parameters stay fp32 and only activations are 16-bit.

Activations follow Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
Models": a GPT block keeps about `s*b*h*34` bytes of 16-bit activations (sequence s, micro-batch b,
width h); a fused attention kernel (sdpa/flash) keeps no `s x s` scores. Gradient checkpointing keeps
only each block's input plus one block's activations. The logits (`b*s*vocab`, fp32) are counted
twice, for the loss's softmax. It is an estimate: allocator slack and communication buffers add to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType

from ..config import TrainConfig
from ..data.batches import BatchLayout

GB = 1024**3
STRATEGIES = ("single", "ddp", "fsdp", "zero1", "zero2", "zero3")


@dataclass
class MemoryEstimate:
    """Bytes per device of each kind of training state."""

    params: float
    grads: float
    optimizer: float
    activations: float
    strategy: str
    world_size: int
    offloaded: str = ""  # what lives in CPU memory instead

    @property
    def total(self) -> float:
        return self.params + self.grads + self.optimizer + self.activations

    def format(self) -> str:
        parts = " + ".join(f"{name} {_size(value)}" for name, value in
                           (("params", self.params), ("grads", self.grads), ("optimizer", self.optimizer),
                            ("activations", self.activations)))
        offload = f"; {self.offloaded} offloaded to CPU" if self.offloaded else ""
        return (f"memory per device ({self.strategy}, {self.world_size} process(es)): {parts} = "
                f"{_size(self.total)} (estimate{offload})")


def _size(count: float) -> str:
    for unit, scale in (("GB", GB), ("MB", 1024**2)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{count / 1024:.1f} KB"


def estimate_memory(n_params: int, hidden_size: int, num_layers: int, num_heads: int, vocab_size: int,
                    micro_batch: int, seq_len: int, precision: str, strategy: str, world_size: int,
                    gradient_checkpointing: bool = False, intermediate_size: int = 0,
                    offload_optimizer: bool = False, offload_params: bool = False) -> MemoryEstimate:
    """The memory one device needs to train a GPT of this shape with `strategy` on `world_size` processes."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    sixteen_bit = precision in ("fp16", "bf16")
    deepspeed = strategy.startswith("zero")
    param_bytes = 2 if deepspeed and sixteen_bit else 4  # accelerate's autocast keeps fp32 parameters
    master_copy = 4 if deepspeed else 0  # ZeRO clones its fp32 partition whatever the parameters' dtype
    shards = {"single": (1, 1, 1), "ddp": (1, 1, 1), "zero1": (1, 1, world_size),
              "zero2": (1, world_size, world_size), "zero3": (world_size,) * 3, "fsdp": (world_size,) * 3}
    param_shards, grad_shards, optimizer_shards = shards[strategy]

    params = 0.0 if offload_params else n_params * param_bytes / param_shards
    grads = n_params * param_bytes / grad_shards
    optimizer = 0.0 if offload_optimizer else n_params * (8 + master_copy) / optimizer_shards

    activation_bytes = 2 if sixteen_bit else 4
    mlp_ratio = (intermediate_size or 4 * hidden_size) / (4 * hidden_size)
    per_layer = seq_len * micro_batch * hidden_size * (18 + 16 * mlp_ratio) * activation_bytes / 2
    layer_input = seq_len * micro_batch * hidden_size * activation_bytes
    kept = num_layers * layer_input + per_layer if gradient_checkpointing else num_layers * per_layer
    logits = 2 * micro_batch * seq_len * vocab_size * 4
    offloaded = " and ".join(name for name, on in (("optimizer state", offload_optimizer),
                                                   ("parameters", offload_params)) if on)
    return MemoryEstimate(params, grads, optimizer, kept + logits, strategy, world_size, offloaded)


def strategy_of(accelerator: Accelerator) -> tuple[str, bool, bool]:
    """(strategy, offload_optimizer, offload_params) of a prepared accelerate set-up."""
    state = accelerator.state
    if state.distributed_type == DistributedType.DEEPSPEED:
        zero = state.deepspeed_plugin.deepspeed_config.get("zero_optimization", {})
        offloaded = [zero.get(key, {}).get("device", "none") in ("cpu", "nvme")
                     for key in ("offload_optimizer", "offload_param")]
        return f"zero{state.deepspeed_plugin.zero_stage}", *offloaded
    if state.distributed_type == DistributedType.FSDP:
        return "fsdp", False, False
    return ("ddp" if accelerator.num_processes > 1 else "single"), False, False


def estimate_for(accelerator: Accelerator, model: torch.nn.Module, n_params: int, layout: BatchLayout,
                 cfg: TrainConfig) -> MemoryEstimate:
    """The estimate for a prepared model under this launch's strategy, batch and precision."""
    config = accelerator.unwrap_model(model).config
    strategy, offload_optimizer, offload_params = strategy_of(accelerator)
    return estimate_memory(
        n_params, config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.vocab_size,
        layout.micro_batch, cfg.seq_len, cfg.training.precision, strategy, accelerator.num_processes,
        gradient_checkpointing=cfg.model.gradient_checkpointing,
        intermediate_size=getattr(config, "intermediate_size", 0) or 0,
        offload_optimizer=offload_optimizer, offload_params=offload_params)
