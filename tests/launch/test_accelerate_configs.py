"""Every launch config parses with accelerate's own loader, names its launch line, and points at a
DeepSpeed JSON that exists and leaves the batch settings to hfgpt. What accelerate would only refuse at launch
time is checked statically; one launch checks what the README's main job prints when hfgpt refuses it."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from helpers import REPO, launch_env

from hfgpt.models.hfgpt import modeling_hfgpt

CONFIGS = sorted((REPO / "accelerate_configs").glob("*.yaml"))
# accelerate refuses these next to a deepspeed_config_file (they belong in the JSON), but only at launch
SET_BY_THE_JSON = {"zero_stage", "offload_optimizer_device", "offload_param_device", "offload_param_nvme_path",
                   "offload_optimizer_nvme_path", "gradient_accumulation_steps", "gradient_clipping",
                   "zero3_save_16bit_model"}


def test_the_documented_configs_exist():
    assert {p.stem for p in CONFIGS} >= {"cpu", "cpu-2proc", "gpu", "multi-gpu", "zero2", "zero3", "zero3-offload",
                                         "multi-node", "fsdp", "zero2-cpu", "zero3-cpu", "fsdp-cpu"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_parses_and_names_its_launch_line(path, monkeypatch):
    monkeypatch.chdir(REPO)  # DeepSpeed JSON paths are relative to the repository root
    config = load_config_from_file(str(path))
    assert config.num_processes >= 1
    assert f"accelerate launch --config_file accelerate_configs/{path.name}" in path.read_text()
    ds_file = (config.deepspeed_config or {}).get("deepspeed_config_file")
    if ds_file:
        assert not SET_BY_THE_JSON & set(config.deepspeed_config), f"{path.name}: set these in {ds_file}"
        assert config.mixed_precision is None, f"{path.name}: precision comes from hfgpt, through the JSON's auto"
        ds = json.loads((REPO / ds_file).read_text())
        assert not {"optimizer", "scheduler"} & set(ds), f"{ds_file}: hfgpt brings its own AdamW and schedule"
        for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping"):
            assert ds[key] == "auto", f"{ds_file}: {key} must be left to hfgpt"
        if ds["zero_optimization"]["stage"] == 3:
            assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


def test_every_deepspeed_json_parses_and_is_used():
    used = {load_config_from_file(str(path)).deepspeed_config.get("deepspeed_config_file") for path in CONFIGS}
    for path in sorted((REPO / "accelerate_configs" / "deepspeed").glob("*.json")):
        assert json.loads(path.read_text())["zero_optimization"]["stage"] in (1, 2, 3)
        assert f"accelerate_configs/deepspeed/{path.name}" in used, f"{path.name} is not used by any config"


@pytest.mark.parametrize("name", ["fsdp.yaml", "fsdp-cpu.yaml"])
def test_fsdp_wraps_a_layer_class_of_the_model(name):
    fsdp = load_config_from_file(str(REPO / "accelerate_configs" / name)).fsdp_config
    assert isinstance(getattr(modeling_hfgpt, fsdp["fsdp_transformer_layer_cls_to_wrap"]), type)


def test_docs_list_every_config():
    scaling = (REPO / "docs" / "scaling.md").read_text()
    for path in CONFIGS:
        assert f"accelerate launch --config_file accelerate_configs/{path.name}" in scaling, path.name


@pytest.mark.slow
def test_a_refused_launch_of_the_readmes_main_job_ends_on_hfgpts_sentence(tmp_path):
    """accelerate's launcher follows a failed child with a CalledProcessError traceback unless it is quiet, and
    warns about each value a launch leaves out; the README's command shows neither, only hfgpt's paragraph."""
    documented = re.search(r"accelerate launch [^\n]*recipes/train\.py", (REPO / "README.md").read_text()).group(0)
    launch = shlex.split(documented)[2:]  # accelerate's own options, then the recipe
    result = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", *launch, "--data-path",
                             str(tmp_path / "missing.txt"), "--rundir", str(tmp_path / "runs")], cwd=REPO,
                            env=launch_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hfgpt: error: ") and "missing.txt" in last, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "were not passed" not in result.stderr, result.stderr[-3000:]
