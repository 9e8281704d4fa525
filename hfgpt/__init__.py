"""hfgpt: train GPT-style language models from raw text with transformers, datasets and accelerate.

Importing the package registers the model with the transformers Auto classes, so that
`AutoConfig`, `AutoModel` and `AutoModelForCausalLM` resolve `model_type="hfgpt"`, and marks the
classes for `register_for_auto_class`, so that every saved folder carries the model code and an
`auto_map` for `trust_remote_code=True` users who never installed hfgpt.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration_hfgpt import HfGptConfig
from .modeling_hfgpt import HfGptForCausalLM, HfGptModel, HfGptPreTrainedModel

__version__ = "0.1.0"

AutoConfig.register(HfGptConfig.model_type, HfGptConfig)
AutoModel.register(HfGptConfig, HfGptModel)
AutoModelForCausalLM.register(HfGptConfig, HfGptForCausalLM)
HfGptConfig.register_for_auto_class()
HfGptModel.register_for_auto_class("AutoModel")
HfGptForCausalLM.register_for_auto_class("AutoModelForCausalLM")

__all__ = ["HfGptConfig", "HfGptForCausalLM", "HfGptModel", "HfGptPreTrainedModel", "__version__"]
