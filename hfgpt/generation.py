"""Text generation from a trained model folder or run directory, with the KV cache."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .errors import HfGptError


def resolve_model_dir(path: str | Path) -> Path:
    """Accept a save_pretrained folder or a run directory (whose `final/` is used)."""
    path = Path(path)
    for candidate in (path, path / "final"):
        if (candidate / "config.json").is_file():
            return candidate
    raise HfGptError(
        f"{path} holds no model: expected a folder with config.json (a run's final/ folder, or any "
        "save_pretrained folder) or a run directory that has one in final/. Point the command at it."
    )


def load_model(path: str | Path, device: str = "cpu") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    model_dir = resolve_model_dir(path)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).to(device).eval()
    return model, tokenizer


@torch.no_grad()
def generate_text(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: str,
                  max_new_tokens: int = 200, temperature: float = 0.8, top_k: int = 0, top_p: float = 1.0,
                  seed: int | None = None) -> str:
    """Sample a continuation of `prompt` (greedy when temperature is 0); returns prompt + continuation."""
    if seed is not None:
        torch.manual_seed(seed)
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"] if prompt else None
    if ids is None or ids.shape[1] == 0:
        ids = torch.tensor([[tokenizer.bos_token_id]])
    ids = ids[:, -model.config.max_position_embeddings + 1 :].to(model.device)
    room = model.config.max_position_embeddings - ids.shape[1]
    sampling = temperature > 0
    output = model.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=min(max_new_tokens, room), use_cache=True,
        do_sample=sampling, temperature=temperature if sampling else None,
        top_k=top_k if sampling else None, top_p=top_p if sampling else None,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    return tokenizer.decode(output[0], skip_special_tokens=True)
