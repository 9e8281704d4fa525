"""Which stock architecture an hfgpt model is, and the one sentence that refuses an export it cannot take.

An hfgpt model is GPT-2 or Llama when three options agree with that family: how positions enter, the norm,
and the MLP. Everything else (biases, grouped-query attention, a tied or untied head, eps, theta, the activation,
which both compute with transformers' ACT2FN) each family's export carries over as it is. A model that mixes the
families (learned positions with a gated MLP, say), or that uses an option neither family has (QK-norm, logit
soft-capping), has no stock equivalent: only its own folder, with `trust_remote_code=True`, runs it. Options that
change no computation of the trained model (zero-initialised projections) or that stock models reproduce from
their inputs (document masking: positions that restart per document) do not stand in the way.
"""

from __future__ import annotations

from ..config.model_section import FAMILY_BLOCKS
from ..errors import HfGptError
from ..models.hfgpt import HfGptConfig

FAMILIES = {"gpt2": "GPT-2", "llama": "Llama"}
# Options that neither family computes, in words; each is on when its value is truthy.
NO_STOCK_EQUIVALENT = {"qk_norm": "QK-norm", "logit_softcap": "logit soft-capping"}

_DESCRIPTIONS = {
    ("position_embedding_type", "absolute"): "learned absolute positions",
    ("position_embedding_type", "rotary"): "rotary positions",
    ("norm_type", "layernorm"): "LayerNorm",
    ("norm_type", "rmsnorm"): "RMSNorm",
    ("mlp_type", "standard"): "ungated MLP",
    ("mlp_type", "gated"): "gated MLP",
}


def mismatches(config: HfGptConfig, family: str) -> list[str]:
    """The options of `config` that `family` lacks, in words: `"rotary positions (position_embedding_type=...)"`."""
    found = []
    for name, required in FAMILY_BLOCKS[family].items():
        value = getattr(config, name)
        if value != required:
            found.append(f"{_DESCRIPTIONS.get((name, value), repr(value))} ({name}={value!r})")
    return found


def stock_family(config: HfGptConfig) -> str | None:
    """The family `config` belongs to, or None for a mixture."""
    return next((family for family in FAMILIES if not mismatches(config, family)), None)


def nearest_family(config: HfGptConfig) -> str:
    """The family `config` is fewest options away from (Llama on a tie)."""
    return min(reversed(list(FAMILIES)), key=lambda family: len(mismatches(config, family)))


def require_family(config: HfGptConfig, family: str, target: str | None = None) -> None:
    """Refuse, in one sentence, to export `config` as `family` (to `target`, which defaults to the family)
    unless it is one: the sentence names the options that prevent it and the nearest export that works."""
    target = target or family
    unmatched = [f"{words} ({name}={getattr(config, name)!r})" for name, words in NO_STOCK_EQUIVALENT.items()
                 if getattr(config, name)]
    if unmatched:
        raise HfGptError(f"Cannot export to {target}: neither GPT-2 nor Llama has {' or '.join(unmatched)}, so no "
                         "stock architecture computes this model; its folder itself loads anywhere with "
                         "trust_remote_code=True.")
    missing = mismatches(config, family)
    if not missing:
        return
    listed = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} or {missing[-1]}"
    lacks = f"Cannot export to {target}: {FAMILIES[family]} has no {listed}"
    own = stock_family(config)
    if own is not None:
        raise HfGptError(f"{lacks}; this is a {FAMILIES[own]} model, so export it with --to {own} or --to gguf.")
    nearest = nearest_family(config)
    changes = ", ".join(f"{name}={required!r}" for name, required in FAMILY_BLOCKS[nearest].items()
                        if getattr(config, name) != required)
    raise HfGptError(f"{lacks}, and no stock architecture matches this mixture of options; the nearest export "
                     f"that works is --to {nearest} for a model trained with {changes}, and this folder itself "
                     "loads anywhere with trust_remote_code=True.")
