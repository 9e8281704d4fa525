"""`hfgpt export`: a run's model as a stock GPT-2 folder and a GGUF file from the command line; what cannot be
exported is one clear error, and nothing is written or replaced."""

from __future__ import annotations

import gguf
import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2LMHeadModel

from hfgpt.cli import main
from hfgpt.inference.generation import load_model

pytestmark = pytest.mark.slow  # on the session's trained run


def test_a_run_exports_to_a_stock_gpt2_folder_that_computes_the_same(trained_run, tmp_path, capsys):
    output = tmp_path / "gpt2"
    assert main(["export", str(trained_run), "--to", "gpt2", "--output", str(output)]) == 0
    assert f"exported: {output}" in capsys.readouterr().out
    stock = AutoModelForCausalLM.from_pretrained(output)  # no trust_remote_code: transformers' own class
    assert type(stock) is GPT2LMHeadModel
    ours, tokenizer, _ = load_model(trained_run)
    ids = torch.tensor([tokenizer.encode("Pack my box")])
    with torch.no_grad():
        torch.testing.assert_close(stock.eval()(ids).logits, ours.eval()(ids).logits, rtol=1e-4, atol=1e-4)
    assert (output / "tokenizer.json").is_file()


def test_a_run_exports_to_gguf_with_a_word_on_its_exact_gelu(trained_run, tmp_path, capsys):
    output = tmp_path / "model.gguf"
    with pytest.warns(UserWarning, match="tanh approximation"):  # the default activation is exact GELU
        assert main(["export", str(trained_run / "final"), "--to", "gguf", "--output", str(output),
                     "--dtype", "f16"]) == 0
    reader = gguf.GGUFReader(output)
    assert reader.fields["general.architecture"].contents() == "gpt2"
    assert reader.fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_F16


def test_what_cannot_be_exported_is_one_error_and_nothing_is_written(trained_run, tmp_path, capsys):
    assert main(["export", str(trained_run), "--to", "llama", "--output", str(tmp_path / "llama")]) == 2
    error = capsys.readouterr().err
    assert "Cannot export to llama" in error and "Traceback" not in error
    existing = tmp_path / "taken"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    assert main(["export", str(trained_run), "--to", "gpt2", "--output", str(existing)]) == 2
    assert "already exists" in capsys.readouterr().err and (existing / "keep.txt").read_text() == "mine"
    assert main(["export", str(tmp_path / "nothing-here"), "--to", "gpt2", "--output", str(tmp_path / "x")]) == 2
    assert f"{tmp_path}/nothing-here does not exist" in capsys.readouterr().err
    (tmp_path / "notes").mkdir()
    assert main(["export", str(tmp_path / "notes"), "--to", "gpt2", "--output", str(tmp_path / "x")]) == 2
    assert "neither an hfgpt run directory nor a saved model folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "taken"]


def test_an_output_in_folders_that_do_not_exist_yet_gets_them(trained_run, tmp_path, capsys):
    """The rule of every --output: the folders it lacks are made (docs/sharing.md)."""
    output = tmp_path / "exported" / "new" / "model.gguf"
    with pytest.warns(UserWarning, match="tanh approximation"):
        assert main(["export", str(trained_run), "--to", "gguf", "--output", str(output)]) == 0
    assert gguf.GGUFReader(output).fields["general.architecture"].contents() == "gpt2"
