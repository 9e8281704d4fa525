"""`--depth N`, nanochat's size dial: the model's shape and its training derived from one number.

Each rule takes the final values of the settings before it, so a given width still gets its heads and a given
token batch its steps and learning rate; a setting given in a preset, a flags file, a flag or by --arch keeps its
value (`derive` is told which). The rules, and where each comes from, are documented in docs/configuration.md,
"One size dial". nanochat means github.com/karpathy/nanochat: scripts/base_train.py and nanochat/gpt.py.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Set
from typing import Any, NamedTuple

from ..errors import HfGptError
from .model_section import MAX_DEPTH, ModelSection
from .table import flag_of

ASPECT_RATIO = 64  # nanochat --aspect-ratio: width = 64 x depth
HEAD_SIZE = 128  # nanochat --head-dim; hfgpt takes half the width below depth 4, so that there are 2 heads
REFERENCE_DEPTH = 12  # nanochat's d12, where its batch (and GPT-2 small's rate) were tuned
REFERENCE_BATCH = 2**19  # nanochat's B_REF: the best tokens per step at d12
BATCH_EXPONENT = 0.383  # the best batch grows as the horizon^0.383 (Power Lines, arXiv:2505.13738; nanochat)
WARMUP_STEPS = 40  # nanochat --warmup-steps
REFERENCE_WIDTH = 768  # GPT-2 small's, and nanochat's at d12
# Each derived rate: its peak at width 768 and the depth's own power-law batch, and the exponent e of the width
# factor (768 / width)^e. lr (AdamW): GPT-2 small's 6e-4 (nanoGPT's train_gpt2.py; the gpt2-small preset) with
# nanochat's (width / 768)^-0.5 for its AdamW groups (gpt.py, setup_optimizer). A Muon rate is one more entry:
# nanochat's matrix_lr 0.02, which it does not scale with the width (exponent 0).
LEARNING_RATES = {"lr": (6e-4, 0.5)}


class Derived(NamedTuple):
    """One row of the table a run prints: a setting, its value, and how the value came about."""

    name: str
    value: Any
    how: str
    given: bool


def _head_size(depth: int) -> int:
    """nanochat's 128; below depth 4 half of 64 x depth, so that a small model still has 2 heads."""
    return min(HEAD_SIZE, ASPECT_RATIO * depth // 2)


def _heads_for(width: int) -> int:
    """The fewest heads of at most 128 dimensions that divide the width, and at least 2 (for a given width too)."""
    least = max(2, math.ceil(width / HEAD_SIZE))
    return next((heads for heads in range(least, width + 1) if width % heads == 0), 1)


def block_parameters(values: Mapping[str, Any]) -> int:
    """Parameters of the decoder blocks and the final norm, counted from the settings as the model file builds
    them: what the horizon counts (Kaplan's non-embedding N; nanochat adds the head, but the vocabulary is not
    known before the tokenizer is trained)."""
    width, heads, bias = values["hidden_size"], values["num_attention_heads"], int(values["bias"])
    key_values = (values["num_key_value_heads"] or heads) * (width // heads)
    inner, branches = values["intermediate_size"] or 4 * width, 2 if values["mlp_type"] == "gated" else 1
    attention = width * (2 * width + 2 * key_values) + bias * (2 * width + 2 * key_values)
    mlp = (branches + 1) * width * inner + bias * (branches * inner + width)
    norm = width * (2 if values["norm_type"] == "layernorm" and values["bias"] else 1)
    return values["num_hidden_layers"] * (attention + mlp + 2 * norm) + norm


def _shape(depth: int) -> dict[str, int]:
    size = _head_size(depth)
    width = math.ceil(ASPECT_RATIO * depth / size) * size
    return {"num_hidden_layers": depth, "hidden_size": width, "num_attention_heads": width // size}


REFERENCE_PARAMETERS = block_parameters({**dataclasses.asdict(ModelSection()), **_shape(REFERENCE_DEPTH)})


def _seq_len(values: Mapping[str, Any]) -> int:
    return values["seq_len"] or values["max_position_embeddings"]


def _power_law_batch(values: Mapping[str, Any]) -> int:
    """nanochat's best tokens per step, B_REF x (N / N(d12))^0.383 to a power of 2, in whole sequences."""
    grown = REFERENCE_BATCH * (block_parameters(values) / REFERENCE_PARAMETERS) ** BATCH_EXPONENT
    return max(1, round(2 ** round(math.log2(grown)) / _seq_len(values))) * _seq_len(values)


def _layers(values: Mapping[str, Any], given: Set[str]) -> tuple[int, str]:
    return values["depth"], "depth"


def _width(values: Mapping[str, Any], given: Set[str]) -> tuple[int, str]:
    return _shape(values["depth"])["hidden_size"], \
        f"64 x depth, rounded up to a multiple of the head size {_head_size(values['depth'])}"


def _heads(values: Mapping[str, Any], given: Set[str]) -> tuple[int, str]:
    heads = _heads_for(values["hidden_size"])
    return heads, f"width / head size {values['hidden_size'] // heads} (at most 128, at least 2 heads)"


def _token_batch(values: Mapping[str, Any], given: Set[str]) -> tuple[int, str]:
    if given & {"batch_size", "grad_accum_steps"}:  # the user's batch, as tokens: the horizon is in tokens
        accumulated = values["batch_size"] * max(values["grad_accum_steps"], 1)
        return accumulated * _seq_len(values), f"the given batch, {accumulated} x {_seq_len(values)} tokens"
    return _power_law_batch(values), (f"2^19 x ({block_parameters(values):,} / {REFERENCE_PARAMETERS:,} block "
                                     "parameters)^0.383, to a power of 2")


def _micro_batch(values: Mapping[str, Any], given: Set[str]) -> tuple[int, str]:
    return values["batch_size"], "--batch-size: the micro-batch; accumulation makes up the token batch"


def _steps(values: Mapping[str, Any], given: Set[str]) -> tuple[int, str]:
    parameters, batch = block_parameters(values), values["token_batch_size"]
    steps = max(1, int(values["horizon_ratio"] * parameters) // batch)
    return steps, f"{values['horizon_ratio']:g} tokens x {parameters:,} block parameters / {batch:,} per step"


def _warmup(values: Mapping[str, Any], given: Set[str]) -> tuple[int, str]:
    return min(WARMUP_STEPS, values["max_steps"] // 10), "40, at most a tenth of the steps"


def _rate(name: str) -> Callable[[Mapping[str, Any], Set[str]], tuple[float, str]]:
    peak, exponent = LEARNING_RATES[name]

    def rule(values: Mapping[str, Any], given: Set[str]) -> tuple[float, str]:
        width, batch, best = values["hidden_size"], values["token_batch_size"], _power_law_batch(values)
        rate = peak * (REFERENCE_WIDTH / width) ** exponent * math.sqrt(batch / best)
        return float(f"{rate:.3g}"), f"{peak:g} x (768 / {width})^{exponent:g} x ({batch:,} / {best:,} tokens)^0.5"
    return rule


RULES: dict[str, Callable[[Mapping[str, Any], Set[str]], tuple[Any, str]]] = {
    "num_hidden_layers": _layers, "hidden_size": _width, "num_attention_heads": _heads,
    "token_batch_size": _token_batch, "max_sentences_per_device": _micro_batch, "max_steps": _steps,
    "warmup_steps": _warmup, **{name: _rate(name) for name in LEARNING_RATES},
}


def check_depth(depth: int) -> None:
    """A depth out of range, refused in words of its own rather than as one of the invalid values."""
    if not 0 <= depth <= MAX_DEPTH:
        raise HfGptError(f"--depth {depth} is out of range: the depth is the number of layers, from which hfgpt "
                         "derives the width (64 x depth), the heads, the token batch, the steps and the learning "
                         f"rate. Give a whole number from 1 to {MAX_DEPTH}, or 0 (the default) to set each size "
                         "yourself.")


def derive(values: Mapping[str, Any], given: Set[str]) -> list[Derived]:
    """The rules in turn over `values` (every setting by name, each valid on its own, the depth from 1 to 64); a
    setting in `given` keeps its value."""
    current, rows = dict(values), []
    for name, rule in RULES.items():
        value, how = rule(current, given)
        if name in given:
            rows.append(Derived(name, current[name], f"given (the rule: {_shown(value)})", True))
        else:
            current[name] = value
            rows.append(Derived(name, value, how, False))
    return rows


def depth_table(depth: int, rows: list[Derived]) -> str:
    """The derived settings as a run prints them at its start."""
    lines = [f"--depth {depth} derives (a setting given in a preset, flags file or flag keeps its value):",
             f"  {'setting':<28}{'value':>10}  how"]
    lines += [f"  {flag_of(row.name):<28}{_shown(row.value):>10}  {row.how}" for row in rows]
    return "\n".join(lines)


def _shown(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else f"{value:,}"
