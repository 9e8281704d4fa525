"""Text generation from a trained model folder or run directory, with the KV cache."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..runs.saved_models import load_saved_model


def pick_device(asked: str) -> str:
    """`auto` is cuda where there is a GPU; cuda asked for where there is none warns and uses the CPU."""
    if asked == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if asked == "cuda" and not torch.cuda.is_available():
        warnings.warn("--device cuda was asked for but CUDA is not available here: generating on the CPU.",
                      stacklevel=2)
        return "cpu"
    return asked


def load_model(source: str | Path, device: str = "cpu") -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    """The model to sample from, ready on `device`, and the folder it came from: a run's final/, else its
    best/, else its newest good checkpoint (so a run can be sampled while it trains), or any saved model."""
    model, tokenizer, origin = load_saved_model(str(source), "generate from")
    return model.to(device).eval(), tokenizer, origin["source"]


@torch.no_grad()
def generate_text(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: str,
                  max_new_tokens: int = 200, temperature: float = 0.8, top_k: int = 0, top_p: float = 1.0,
                  seed: int | None = None) -> str:
    """Sample a continuation of `prompt` (greedy when temperature is 0); returns prompt + continuation.

    A model with learned positions cannot see past its context, so a long sample is generated in
    rounds, each continuing from the last half context of text with a fresh KV cache.
    """
    if seed is not None:
        torch.manual_seed(seed)
    context = model.config.max_position_embeddings
    ids = _encode_prompt(tokenizer, prompt)
    if ids.shape[1] == 0:
        ids = torch.tensor([[tokenizer.bos_token_id]])
    ids = ids.to(model.device)
    sampling = temperature > 0
    options = {"do_sample": sampling, "temperature": temperature if sampling else None,
               "top_k": top_k if sampling else None, "top_p": top_p if sampling else None,
               "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id, "use_cache": True}
    remaining = max_new_tokens
    while remaining > 0:
        window = ids[:, -(context - 1 if ids.shape[1] < context else context // 2):]
        new = min(remaining, context - window.shape[1])
        output = model.generate(window, attention_mask=torch.ones_like(window), max_new_tokens=new, **options)
        continuation = output[:, window.shape[1]:]
        ids = torch.cat([ids, continuation], dim=1)
        remaining -= continuation.shape[1]
        if continuation.shape[1] < new or continuation[0, -1].item() == tokenizer.eos_token_id:
            break  # the model ended its text
    return tokenizer.decode(ids[0], skip_special_tokens=True)


def _encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> torch.Tensor:
    """The prompt's ids (1, T); warns when some of its text is unknown to the tokenizer (a char tokenizer
    knows only the characters of its training text), since the model then reads `unk` in its place."""
    if not prompt:
        return torch.empty(1, 0, dtype=torch.long)
    encoding = tokenizer(prompt, return_offsets_mapping=True)
    unknown = [prompt[start:end] for token, (start, end) in zip(encoding["input_ids"], encoding["offset_mapping"],
                                                                strict=True) if token == tokenizer.unk_token_id]
    if unknown:
        listed = ", ".join(repr(text) for text in dict.fromkeys(unknown))
        warnings.warn(f"the prompt holds text that the model's tokenizer never saw in training ({listed}); the model "
                      f"reads {tokenizer.unk_token} in its place.", stacklevel=3)
    return torch.tensor([encoding["input_ids"]])
