"""`--arch FILE`: the [model] settings from a file, either a TOML `[model]` table (or its keys at the top level)
or a transformers `config.json` of a GPT-2, Llama or hfgpt model, whose keys are translated to hfgpt's.

A relative FILE is looked up under `--archdir`. Only the architecture is taken: a `config.json`'s vocabulary
size comes from the run's tokenizer, and its other keys (token ids, dtype, dropout of embeddings) do not shape
the model hfgpt builds. What hfgpt cannot build (rope scaling, a bias on attention but not the MLP) is refused.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import HfGptError
from .model_section import ARCHITECTURE_FIELDS, FAMILY_BLOCKS

# transformers' key -> hfgpt's, for each model_type hfgpt reads; None-valued sizes become hfgpt's 0 (derived).
_GPT2_KEYS = {"n_embd": "hidden_size", "n_layer": "num_hidden_layers", "n_head": "num_attention_heads",
              "n_positions": "max_position_embeddings", "n_inner": "intermediate_size",
              "activation_function": "hidden_act", "layer_norm_epsilon": "layer_norm_eps", "resid_pdrop": "dropout",
              "initializer_range": "initializer_range", "tie_word_embeddings": "tie_word_embeddings"}
_LLAMA_KEYS = {name: name for name in (
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "max_position_embeddings", "rms_norm_eps", "hidden_act", "initializer_range", "tie_word_embeddings")}


def arch_values(arch: str, archdir: str, model_fields: Callable[[Mapping[str, Any], str], dict[str, Any]]
                ) -> dict[str, Any]:
    """The model settings that `arch` (a path, relative to `archdir` when it is not absolute) describes, by
    hfgpt field name; `model_fields({"key": value}, source)` checks names and types as a [model] table."""
    path = Path(archdir).expanduser() / arch if archdir and not Path(arch).is_absolute() else Path(arch).expanduser()
    try:
        text = path.read_bytes()
    except OSError as error:
        where = f" (--archdir {archdir})" if archdir else ""
        raise HfGptError(f"--arch {arch}: cannot read {path}{where} ({error.strerror or error}). Give a TOML file "
                         "with a [model] table or a transformers config.json.") from None
    if path.suffix == ".json":
        try:
            config = json.loads(text)
        except json.JSONDecodeError as error:
            raise HfGptError(f"--arch {path} is not valid JSON ({error}).") from None
        return model_fields(_from_transformers(config, path), str(path))
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise HfGptError(f"--arch {path} is not valid TOML ({error}); give a TOML file with a [model] table or a "
                         "transformers config.json.") from None
    return model_fields(data.get("model", data), str(path))


def _from_transformers(config: Mapping[str, Any], path: Path) -> dict[str, Any]:
    model_type = config.get("model_type")
    if model_type == "hfgpt":
        return _translated(config, {name: name for name in ARCHITECTURE_FIELDS})
    if model_type == "gpt2":
        values = _translated(config, _GPT2_KEYS) | FAMILY_BLOCKS["gpt2"] | {"bias": True}  # GPT-2 always has biases
    elif model_type == "llama":
        if config.get("rope_scaling") or (config.get("rope_parameters") or {}).get("rope_type", "default") != "default":
            raise HfGptError(f"--arch {path}: hfgpt's rotary positions have no rope scaling; remove rope_scaling "
                             "(or give its rope_theta only).")
        if bool(config.get("attention_bias")) != bool(config.get("mlp_bias")):
            raise HfGptError(f"--arch {path}: hfgpt has one bias setting for attention and MLP, but attention_bias "
                             f"is {config.get('attention_bias')} and mlp_bias {config.get('mlp_bias')}.")
        theta = config.get("rope_theta", (config.get("rope_parameters") or {}).get("rope_theta"))
        values = (_translated(config, _LLAMA_KEYS) | FAMILY_BLOCKS["llama"]
                  | {"bias": bool(config.get("attention_bias"))})
        values |= {"rope_theta": float(theta)} if theta is not None else {}
    else:
        raise HfGptError(f"--arch {path}: model_type {model_type!r} is not one hfgpt builds; give the config.json "
                         "of a gpt2, llama or hfgpt model, or a TOML [model] table.")
    return values


def _translated(config: Mapping[str, Any], keys: Mapping[str, str]) -> dict[str, Any]:
    return {ours: 0 if config[theirs] is None else config[theirs] for theirs, ours in keys.items()
            if theirs in config}
