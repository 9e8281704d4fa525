"""A saved hfgpt folder loads with `trust_remote_code=True` in a Python where hfgpt cannot be imported."""

from __future__ import annotations

import json
import re
import textwrap

import pytest
import torch
from helpers import REPO, assert_greedy_up_to_rounding
from no_hfgpt import MODEL_CHILD, run_without_hfgpt
from packaging.version import Version
from transformers.dynamic_module_utils import get_class_from_dynamic_module

import hfgpt  # noqa: F401  (marks the classes for register_for_auto_class)
from hfgpt.models.hfgpt import HfGptConfig
from hfgpt.models.hfgpt.modeling_hfgpt import HfGptForCausalLM

# compares with what another process or library computes: CI runs it again under another kernel set
pytestmark = pytest.mark.machine_sensitive

RUN_CHILD = textwrap.dedent(
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    final_dir = sys.argv[1]
    tokenizer = AutoTokenizer.from_pretrained(final_dir, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(final_dir, trust_remote_code=True)
    assert "hfgpt" not in sys.modules
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    text = generator("The quick", max_new_tokens=8, do_sample=False)[0]["generated_text"]
    assert text.startswith("The quick") and len(text) > len("The quick"), text
    print("REMOTE RUN OK", type(model).__module__)
    """
)


@pytest.mark.slow
def test_remote_code_loads_without_hfgpt(tmp_path):
    torch.manual_seed(0)
    config = HfGptConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=64)
    model = HfGptForCausalLM(config).eval()
    model_dir = tmp_path / "tiny-hfgpt"
    model.save_pretrained(model_dir)

    assert (model_dir / "configuration_hfgpt.py").is_file()
    assert (model_dir / "modeling_hfgpt.py").is_file()
    auto_map = json.loads((model_dir / "config.json").read_text())["auto_map"]
    assert auto_map["AutoConfig"] == "configuration_hfgpt.HfGptConfig"
    assert auto_map["AutoModelForCausalLM"] == "modeling_hfgpt.HfGptForCausalLM"

    input_ids = torch.randint(1, 97, (2, 9), generator=torch.Generator().manual_seed(1))
    model.double()  # as MODEL_CHILD computes
    with torch.no_grad():
        logits = model(input_ids).logits
    generated = model.generate(input_ids, max_new_tokens=6, do_sample=False, pad_token_id=0)
    torch.save({"input_ids": input_ids, "logits": logits, "generated": generated}, tmp_path / "expected.pt")
    result = run_without_hfgpt(tmp_path, MODEL_CHILD, str(model_dir), str(tmp_path / "expected.pt"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "REMOTE CODE OK transformers_modules." in result.stdout


@pytest.mark.slow
def test_a_trained_run_loads_and_generates_through_pipeline_without_hfgpt(trained_run, tmp_path):
    result = run_without_hfgpt(tmp_path, RUN_CHILD, str(trained_run / "final"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "REMOTE RUN OK transformers_modules." in result.stdout



SAVED_FOLDERS = sorted((REPO / "tests" / "fixtures").glob("saved-with-transformers-*"))


@pytest.mark.parametrize("folder", SAVED_FOLDERS, ids=lambda folder: folder.name)
def test_a_folder_saved_under_another_transformers_release_generates_with_its_cache(folder, tmp_path, monkeypatch):
    # The folders were saved under the oldest and the newest transformers that pyproject allows
    # (tests/fixtures/save_tiny_model.py); CI runs this under both, so each is loaded by the other release.
    # The folder's own copy of the model code is loaded as trust_remote_code loads it; this process has imported
    # hfgpt, whose registered classes from_pretrained would otherwise prefer.
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "hf_modules"))
    expected = json.loads((folder / "expected.json").read_text())
    remote_class = get_class_from_dynamic_module("modeling_hfgpt.HfGptForCausalLM", str(folder))
    model = remote_class.from_pretrained(folder).eval()
    assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
    prompt, new_tokens = torch.tensor(expected["prompt"]), len(expected["generated"][0]) - len(expected["prompt"][0])
    options = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False, "pad_token_id": 0}
    with_cache = model.generate(prompt, use_cache=True, **options)
    without_cache = model.generate(prompt, use_cache=False, **options)
    assert with_cache.tolist() == without_cache.tolist()  # one process computed both
    assert_greedy_up_to_rounding(model, expected["generated"], prompt.shape[1])  # another machine recorded these


def test_both_ends_of_the_transformers_range_have_a_saved_folder():
    # pyproject's lower bound and the newest release seen: a new bound needs a folder saved under it
    versions = {Version(folder.name.removeprefix("saved-with-transformers-")) for folder in SAVED_FOLDERS}
    lower = Version(re.search(r'"transformers>=([\d.]+)', (REPO / "pyproject.toml").read_text()).group(1))
    assert lower in versions, (lower, versions)
