"""The `hfgpt` command: generation from a run, the pipeline, and user errors without tracebacks."""

import gc
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO, run_hfgpt
from transformers import pipeline

import hfgpt.inference.generation  # also registers the Auto classes
from hfgpt.cli import end_process, main
from hfgpt.inference.generation import generate_text, load_model


@pytest.mark.slow
def test_generate_from_a_run_directory(trained_run, capsys, monkeypatch):
    assert main(["generate", str(trained_run), "--prompt", "Pack my", "--max-new-tokens", "15",
                 "--temperature", "0"]) == 0
    model, tokenizer, _ = load_model(trained_run)
    assert capsys.readouterr().out == generate_text(model, tokenizer, "Pack my", 15, temperature=0) + "\n"

    real_generate_text = hfgpt.inference.generation.generate_text
    calls = []

    def recorded(*args, **kwargs):
        options = inspect.signature(real_generate_text).bind(*args, **kwargs).arguments
        calls.append({k: v for k, v in options.items() if k not in ("model", "tokenizer")})
        return real_generate_text(*args, **kwargs)

    monkeypatch.setattr(hfgpt.inference.generation, "generate_text", recorded)
    assert main(["generate", str(trained_run / "final"), "--prompt", "Pack my", "--max-new-tokens", "15",
                 "--temperature", "0.9", "--top-k", "5", "--top-p", "0.9", "--seed", "1",
                 "--num-samples", "2"]) == 0
    # Each flag reaches the sampler, and each sample gets its own seed: the first one's, then the next.
    options = {"prompt": "Pack my", "max_new_tokens": 15, "temperature": 0.9, "top_k": 5, "top_p": 0.9}
    assert calls == [{**options, "seed": 1}, {**options, "seed": 2}]
    samples = [real_generate_text(model, tokenizer, **call) for call in calls]
    assert capsys.readouterr().out == f"{samples[0]}\n{'-' * 40}\n{samples[1]}\n"


@pytest.mark.slow
def test_pipeline_generates(trained_run):
    generator = pipeline("text-generation", model=str(trained_run / "final"))
    result = generator("Sphinx of", max_new_tokens=10, do_sample=False)
    assert result[0]["generated_text"].startswith("Sphinx of")


def test_generate_on_a_folder_without_a_model_is_one_clear_error(tmp_path, capsys):
    assert main(["generate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hfgpt: error:") and str(tmp_path) in err and "Traceback" not in err


def test_an_error_stays_one_paragraph_when_a_path_holds_a_line_break(tmp_path, capsys):
    assert main(["continue", str(tmp_path / "back\nslash\u2028run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "back\\nslash\\u2028run does not exist" in err, err


@pytest.mark.slow
def test_unknown_flag_exits_2_with_a_suggestion_and_no_traceback(tmp_path):
    result = run_hfgpt(["--eval-evry", "5"], cwd=tmp_path)
    assert result.returncode == 2
    assert "--eval-every" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_console_script_is_installed():
    script = Path(sys.executable).parent / "hfgpt"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and "train" in result.stdout and "generate" in result.stdout


def test_the_process_ends_with_what_it_holds_frozen_out_of_the_collections_at_exit():
    try:
        with pytest.raises(SystemExit) as leaving:
            end_process(3)
        assert leaving.value.code == 3 and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()  # this test process goes on


def test_an_unknown_command_is_named_with_the_closest_one(capsys):
    assert main(["genrate", "runs/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hfgpt: error: unknown command 'genrate'. Did you mean `hfgpt generate`?")
    assert main(["evaluate"]) == 2
    assert "unknown command 'evaluate'. Did you mean `hfgpt eval`?" in capsys.readouterr().err
    assert main(["serve"]) == 2
    assert "unknown command 'serve'. The commands are train, continue, fork, generate, eval" in \
        capsys.readouterr().err


def test_version_names_hfgpt_and_its_stack(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"hfgpt {hfgpt.__version__} (torch {torch.__version__}, transformers ")


@pytest.mark.slow
def test_generate_asked_for_cuda_on_a_cpu_machine_warns_and_uses_the_cpu(trained_run):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = subprocess.run([str(Path(sys.executable).parent / "hfgpt"), "generate", str(trained_run), "--device",
                             "cuda", "--max-new-tokens", "5"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    warning = "hfgpt: warning: --device cuda was asked for but CUDA is not available here: generating on the CPU."
    assert warning in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_prompt_with_characters_the_tokenizer_never_saw_warns(trained_run):
    with pytest.warns(UserWarning, match=r"the prompt holds text that the model's tokenizer never saw in training "
                                         r"\('€', '¥'\)"):
        assert main(["generate", str(trained_run), "--prompt", "Pack my €uro ¥", "--max-new-tokens", "3"]) == 0
