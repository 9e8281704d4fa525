"""hfgpt: train GPT-style language models from raw text with transformers, datasets and accelerate.

Importing the package registers the model with the transformers Auto classes, so that `AutoConfig`,
`AutoModel` and `AutoModelForCausalLM` resolve `model_type="hfgpt"`, and marks the classes for
`register_for_auto_class`, so that every saved folder carries the model code and an `auto_map` for
`trust_remote_code=True` users who never installed hfgpt. The import itself is light (the `hfgpt` command
starts without torch): the registration runs when transformers is imported (hfgpt/registration.py), and the
classes below are imported on first use.
"""

from importlib import import_module
from typing import Any

from .registration import register_when_transformers_loads

__version__ = "0.1.0"
__all__ = ["HfGptConfig", "HfGptForCausalLM", "HfGptModel", "HfGptPreTrainedModel", "__version__"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module(".models.hfgpt", __name__), name)
    raise AttributeError(f"module 'hfgpt' has no attribute {name!r}")


register_when_transformers_loads()
