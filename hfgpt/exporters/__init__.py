"""Export a saved hfgpt model to formats that run without hfgpt: stock transformers folders and GGUF.

`export(source, to, output, dtype)` reads a folder hfgpt saved (a run's `final/` or `best/`: model and
tokenizer) and writes one of:

- `to="gpt2"`: a `GPT2LMHeadModel` folder, for models with learned positions, LayerNorm and an ungated MLP;
- `to="llama"`: a `LlamaForCausalLM` folder, for models with rotary positions, RMSNorm and a gated MLP;
- `to="gguf"`: one `.gguf` file for llama.cpp (its `gpt2` or `llama` architecture), tokenizer inside.

Both folders load with plain `AutoModelForCausalLM.from_pretrained(output)`, no remote code, and compute what
the hfgpt model computes. A model that mixes the families is refused (see `families`). The output is written
beside its final name and renamed into place, in the folders it lacks, so a failed export leaves nothing behind
(not even those folders); an existing output is never replaced. This package imports hfgpt's model, its errors,
files and the families' definition (`config.model_section`); within hfgpt only the CLI should import it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoTokenizer, GPT2LMHeadModel, LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from ..errors import HfGptError
from ..files import folders_for
from ..models.hfgpt import HfGptConfig, HfGptForCausalLM
from .families import require_family
from .gguf_file import GGUF_DTYPES, gguf_family, write_gguf
from .gpt2 import gpt2_config, gpt2_state_dict
from .llama import llama_config, llama_state_dict

FOLDER_DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
# target -> (stock class, its config from ours, its state dict from our model)
STOCK = {
    "gpt2": (GPT2LMHeadModel, gpt2_config, gpt2_state_dict),
    "llama": (LlamaForCausalLM, llama_config, llama_state_dict),
}
TARGETS = (*STOCK, "gguf")


def export(source: str | Path, to: str, output: str | Path, dtype: str = "f32") -> Path:
    """Export the hfgpt model saved in `source` as `to` (`gpt2`, `llama` or `gguf`) to `output` (a new folder,
    or for gguf a new file), its floating-point weights as `dtype`: f32, f16 or bf16 for the folders, f32, f16
    or q8_0 for gguf. Returns `output`. Raises `HfGptError` for anything the user can change."""
    source, output = Path(source), Path(output)
    dtypes = GGUF_DTYPES if to == "gguf" else FOLDER_DTYPES
    if to not in TARGETS:
        raise HfGptError(f"Unknown export target {to!r}; choose one of: {', '.join(TARGETS)}.")
    if dtype not in dtypes:
        raise HfGptError(f"--dtype {dtype} is not available for --to {to}; choose one of: {', '.join(dtypes)}.")
    if output.exists() or output.is_symlink():
        raise HfGptError(f"{output} already exists; choose a new --output (an export never replaces one).")
    config = load_config(source)
    if to == "gguf":  # refused before the weights are read
        family = gguf_family(config)
    else:
        require_family(config, to)
    tokenizer = load_tokenizer(source)
    model = HfGptForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    with folders_for(output):
        staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
        try:
            if to == "gguf":
                written = staging / output.name
                write_gguf(model, tokenizer, written, dtype, family)
            else:
                written = staging / "folder"
                save_stock_folder(model, tokenizer, to, written, FOLDER_DTYPES[dtype])
            os.replace(written, output)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return output


def load_config(source: Path) -> HfGptConfig:
    """The config of the hfgpt model saved in `source`; anything else is refused."""
    try:
        model_type = json.loads((source / "config.json").read_text()).get("model_type")
    except (OSError, ValueError) as error:
        raise HfGptError(f"{source} is not a saved model folder: its config.json cannot be read ({error}).") from error
    if model_type != HfGptConfig.model_type:
        raise HfGptError(f"{source} holds a {model_type!r} model, not an hfgpt one; export reads the folders hfgpt "
                         "saves (a run's final/ or best/).")
    return HfGptConfig.from_pretrained(source)


def load_tokenizer(source: Path) -> PreTrainedTokenizerBase | None:
    """The tokenizer saved beside the model, or None when the folder has none (a bare model)."""
    if not (source / "tokenizer.json").is_file() and not (source / "tokenizer_config.json").is_file():
        return None
    return AutoTokenizer.from_pretrained(source)


def stock_model(model: HfGptForCausalLM, to: str) -> PreTrainedModel:
    """The stock transformers model (`to`: gpt2 or llama) that computes what `model` computes, in fp32."""
    model_class, make_config, make_state_dict = STOCK[to]
    stock = model_class(make_config(model.config))
    stock.load_state_dict(make_state_dict(model), strict=True)
    return stock.eval()


def save_stock_folder(model: HfGptForCausalLM, tokenizer: PreTrainedTokenizerBase | None, to: str, folder: Path,
                      dtype: torch.dtype) -> None:
    """Save `model` as the stock model `to` (and its tokenizer, if any) in `folder`, weights cast to `dtype`."""
    stock_model(model, to).to(dtype).save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)


__all__ = ["FOLDER_DTYPES", "TARGETS", "export", "stock_model"]
