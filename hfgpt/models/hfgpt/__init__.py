"""hfgpt's decoder: `HfGptConfig` (configuration_hfgpt.py) and the model classes (modeling_hfgpt.py).

transformers is imported before either file, so that hfgpt's registration with the Auto classes, which runs
when transformers is first imported (see hfgpt/registration.py), never meets these files half-imported.
"""

import transformers  # noqa: F401  (first: see above)

from .configuration_hfgpt import HfGptConfig
from .modeling_hfgpt import HfGptForCausalLM, HfGptModel, HfGptPreTrainedModel

__all__ = ["HfGptConfig", "HfGptForCausalLM", "HfGptModel", "HfGptPreTrainedModel"]
