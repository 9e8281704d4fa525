"""The environment the tests run in, whatever the user's shell holds: imported by conftest.py before anything
imports huggingface_hub, which reads its variables once, at import.

A user training offline has HF_HUB_OFFLINE=1, one with W&B has WANDB_MODE=online, and HF_HOME, HF_TOKEN or
HFGPT_CACHE point at their own folders and credentials. None of that may change what a test sees: the suite never
reaches the network (tests that fake the Hub switch huggingface_hub's offline mode off for themselves:
`fake_hub.online`), never reads or writes the user's caches, and never uses their token. Child processes the
tests start inherit the same environment.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

HOME = Path(tempfile.mkdtemp(prefix="hfgpt-tests-"))
atexit.register(shutil.rmtree, HOME, ignore_errors=True)

for name in ("HF_HUB_CACHE", "HF_ENDPOINT", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "TRANSFORMERS_OFFLINE",
             "HF_DATASETS_CACHE", "HF_DATASETS_OFFLINE", "WANDB_DIR", "WANDB_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY"):
    os.environ.pop(name, None)
os.environ.update({
    "HF_HUB_OFFLINE": "1",
    "HF_HOME": str(HOME / "huggingface"),
    "HFGPT_CACHE": str(HOME / "hfgpt-cache"),
    "TRACKIO_DIR": str(HOME / "trackio"),
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
})
