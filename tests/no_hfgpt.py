"""Running code in a child Python that cannot import hfgpt, as someone who never installed it would: saved
folders must load there through `trust_remote_code`, and exported folders with stock classes alone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import REPO

# hfgpt is pip-installed in editable mode, so neither a working directory outside the repo nor `python -I`
# hides it: the editable finder is installed from a .pth file in site-packages at start-up. The child
# therefore puts a finder in front of sys.meta_path that refuses hfgpt before anything else is imported,
# and proves that it works before loading the model.
BLOCK_HFGPT = textwrap.dedent(
    """
    import importlib.abc
    import sys


    class RefuseHfGpt(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "hfgpt" or name.startswith("hfgpt."):
                raise ImportError(f"{name} is blocked in this interpreter")
            return None


    sys.meta_path.insert(0, RefuseHfGpt())
    try:
        import hfgpt  # noqa: F401
    except ImportError:
        pass
    else:
        sys.exit("hfgpt is importable in the child")
    """
)

# The child computes in float64, as the parent's expected logits must be: two processes may choose different fp32
# kernels (thread counts, code paths) and differ past fp32 tolerances, which float64 leaves far below them.
MODEL_CHILD = textwrap.dedent(
    """
    import torch
    from transformers import AutoModelForCausalLM

    model_dir, expected_path = sys.argv[1], sys.argv[2]
    expected = torch.load(expected_path)
    model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=True, dtype=torch.float64).eval()
    assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
    assert "hfgpt" not in sys.modules
    assert model.lm_head.weight.data_ptr() == model.model.wte.weight.data_ptr(), "lm_head is not tied"
    with torch.no_grad():
        logits = model(expected["input_ids"]).logits
    torch.testing.assert_close(logits, expected["logits"])
    generated = model.generate(expected["input_ids"], max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(generated, expected["generated"]), (generated, expected["generated"])
    print("REMOTE CODE OK", type(model).__module__)
    """
)

def run_without_hfgpt(tmp_path: Path, body: str, *args: str) -> subprocess.CompletedProcess:
    """Run `body` in a child Python that cannot import hfgpt, from a folder outside the repository."""
    (tmp_path / "child.py").write_text(BLOCK_HFGPT + body)
    work_dir = tmp_path / "elsewhere"  # outside the repository, so nothing of it is on the child's path
    work_dir.mkdir()
    assert REPO not in work_dir.parents
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "hf_modules")}
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, str(tmp_path / "child.py"), *args],
                          cwd=work_dir, env=env, capture_output=True, text=True, timeout=240)
