"""final/ and best/: save_pretrained folders replaced whole, and put back when a swap was cut short."""

from __future__ import annotations

import json
import os

import pytest
import torch
from accelerate import Accelerator
from transformers import AutoModelForCausalLM, AutoTokenizer

import hfgpt  # noqa: F401  (registers the model with the Auto classes)
from hfgpt.data.tokenization import char_tokenizer
from hfgpt.models.hfgpt import HfGptConfig
from hfgpt.models.hfgpt.modeling_hfgpt import HfGptForCausalLM
from hfgpt.runs.model_folders import export_model, exported_step, recover_exports


def tiny_model_and_tokenizer():
    tokenizer = char_tokenizer(list("abc"))
    model = HfGptForCausalLM(HfGptConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, max_position_embeddings=16))
    return model, tokenizer


def test_an_export_loads_with_from_pretrained_and_names_its_step(tmp_path):
    accelerator = Accelerator(cpu=True)
    model, tokenizer = tiny_model_and_tokenizer()
    export_model(accelerator, model, tokenizer, tmp_path / "final", metrics={"step": 3})
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)
    export_model(accelerator, model, tokenizer, tmp_path / "final", metrics={"step": 7})

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "final")
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)
    assert AutoTokenizer.from_pretrained(tmp_path / "final").decode([0, 1, 2]) == tokenizer.decode([0, 1, 2])
    assert exported_step(tmp_path / "final") == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]  # no staging or old copy left


def test_exported_step_is_zero_without_metrics(tmp_path):
    (tmp_path / "final").mkdir()
    assert exported_step(tmp_path / "final") == 0
    (tmp_path / "final" / "metrics.json").write_text("{cut sho")
    assert exported_step(tmp_path / "final") == 0


def test_a_swap_cut_between_its_renames_is_put_back(tmp_path):
    """A crash after final/ became .final.old but before the new one was renamed in."""
    (tmp_path / ".final.old").mkdir()
    (tmp_path / ".final.old" / "metrics.json").write_text(json.dumps({"step": 5}))
    (tmp_path / ".final.tmp").mkdir()  # the half-written replacement
    (tmp_path / "best").mkdir()
    recover_exports(tmp_path)
    assert exported_step(tmp_path / "final") == 5
    assert sorted(os.listdir(tmp_path)) == ["best", "final"]


def test_a_swap_cut_before_its_clean_up_leaves_the_new_copy_and_later_saves_work(tmp_path):
    """A crash after the new best/ was in place but before .best.old was removed."""
    accelerator = Accelerator(cpu=True)
    model, tokenizer = tiny_model_and_tokenizer()
    export_model(accelerator, model, tokenizer, tmp_path / "best", metrics={"step": 4})
    (tmp_path / ".best.old").mkdir()
    (tmp_path / ".best.old" / "metrics.json").write_text(json.dumps({"step": 2}))
    export_model(accelerator, model, tokenizer, tmp_path / "best", metrics={"step": 6})  # a live run goes on
    assert exported_step(tmp_path / "best") == 6 and sorted(os.listdir(tmp_path)) == ["best"]

    (tmp_path / ".best.old").mkdir()  # a resumed run cleans it up first
    recover_exports(tmp_path)
    assert exported_step(tmp_path / "best") == 6 and sorted(os.listdir(tmp_path)) == ["best"]


def test_recovery_leaves_alone_what_hfgpt_did_not_make(tmp_path):
    """A link at a staging name is never followed or moved into place, and other names are never touched."""
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.txt").write_text("keep")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in (".final.old", ".best.tmp"):
        (run_dir / name).symlink_to(precious, target_is_directory=True)
    (run_dir / ".final.older").mkdir()
    recover_exports(run_dir)
    assert sorted(os.listdir(run_dir)) == [".best.tmp", ".final.old", ".final.older"]
    assert (precious / "data.txt").read_text() == "keep"


def test_an_export_never_writes_through_a_link_at_its_staging_name_or_replaces_a_linked_folder(tmp_path):
    accelerator = Accelerator(cpu=True)
    model, tokenizer = tiny_model_and_tokenizer()
    precious = tmp_path / "precious"
    precious.mkdir()
    (tmp_path / ".final.tmp").symlink_to(precious, target_is_directory=True)
    with pytest.raises(OSError, match=r"could not write final/: .*\.final\.tmp"):
        export_model(accelerator, model, tokenizer, tmp_path / "final", metrics={"step": 1})
    (tmp_path / ".final.tmp").unlink()
    (tmp_path / "best").symlink_to(precious, target_is_directory=True)
    with pytest.raises(OSError, match=r"could not write best/: .*symlink"):
        export_model(accelerator, model, tokenizer, tmp_path / "best", metrics={"step": 1})
    assert list(precious.iterdir()) == [] and (tmp_path / "best").is_symlink()
