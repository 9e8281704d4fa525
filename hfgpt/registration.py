"""hfgpt's registration with the transformers Auto classes, without importing transformers before it is needed.

`AutoConfig`, `AutoModel` and `AutoModelForCausalLM` must resolve `model_type="hfgpt"` as soon as hfgpt is
imported, yet importing transformers (and with it torch) takes seconds, which `hfgpt --help` should not pay. So
`register()` runs at once when transformers is already imported, and otherwise right after transformers'
own import finishes, through a one-shot finder on `sys.meta_path`. Either way a user who imports hfgpt, before
or after transformers, finds the model registered the first time transformers can be called.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType

_done = False


def register() -> None:
    """Register the classes with the Auto classes and for `register_for_auto_class` (saved folders then carry
    the model code and an `auto_map`); runs once."""
    global _done
    if _done:
        return
    _done = True
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    # the files, not their package: this may run while the package's __init__ is importing transformers
    from .models.hfgpt.configuration_hfgpt import HfGptConfig
    from .models.hfgpt.modeling_hfgpt import HfGptForCausalLM, HfGptModel

    AutoConfig.register(HfGptConfig.model_type, HfGptConfig)
    AutoModel.register(HfGptConfig, HfGptModel)
    AutoModelForCausalLM.register(HfGptConfig, HfGptForCausalLM)
    HfGptConfig.register_for_auto_class()
    HfGptModel.register_for_auto_class("AutoModel")
    HfGptForCausalLM.register_for_auto_class("AutoModelForCausalLM")


class _RegisterAfterTransformers(importlib.abc.MetaPathFinder):
    """Finds transformers as the other finders would, and registers hfgpt once its module has executed."""

    def find_spec(self, name: str, path: object = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if name != "transformers":
            return None
        sys.meta_path.remove(self)  # one shot, and find_spec below must not come back here
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module  # this loader was made for this spec alone

        def execute_then_register(module: ModuleType) -> None:
            execute(module)
            register()

        spec.loader.exec_module = execute_then_register
        return spec


def register_when_transformers_loads() -> None:
    if "transformers" in sys.modules:
        register()
    elif not any(isinstance(finder, _RegisterAfterTransformers) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterTransformers())
