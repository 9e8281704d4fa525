"""train / continue / fork: what each mode takes from the command line and the saved run, and what it refuses."""

from __future__ import annotations

import json
import math
import re
import shutil
import tomllib

import pytest
from helpers import TINY_MODEL_FLAGS, import_or_unavailable, run_hfgpt, write_corpus
from transformers import AutoTokenizer

from hfgpt.errors import HfGptError
from hfgpt.training.modes import continue_setup, fork_setup, train_setup
from hfgpt.training.trainer import run


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """A private copy of the session's trained run (60 steps, checkpoints at 30 and 60)."""
    copy = tmp_path / "runs" / "tiny"
    shutil.copytree(trained_run, copy, symlinks=True)
    return copy


@pytest.mark.slow
def test_continue_takes_the_saved_config_and_allows_what_keeps_the_math(run_copy):
    with pytest.warns(UserWarning, match="--lr changes from 0.003 to 0.001"):
        setup = continue_setup([str(run_copy), "--max-steps", "80", "--lr", "1e-3", "--log-every", "2"])
    assert setup.mode == "continue" and setup.run_dir == run_copy
    assert setup.cfg.model.hidden_size == 32 and setup.cfg.training.max_steps == 80
    assert setup.model_config.hidden_size == 32 and len(setup.tokenizer) == setup.model_config.vocab_size


@pytest.mark.slow
@pytest.mark.parametrize(("flags", "named"), [
    (["--hidden-size", "64"], r"--hidden-size \(32 -> 64\)"),
    (["--batch", "4"], r"--batch-size \(8 -> 4\)"),
    (["--tokenizer", "bpe"], r"--tokenizer \('char' -> 'bpe'\)"),
    (["--seed", "1"], r"--seed \(1337 -> 1\)"),
    (["--optimizer", "muon"], r"--optimizer \('adamw' -> 'muon'\)"),
    # The run saved what auto resolved to on this machine: fp32, or bf16 where the CPU has native bf16.
    (["--precision", "fp16"], r"--precision \('(fp32|bf16)' -> 'fp16'\)"),
])
def test_continue_refuses_a_change_of_the_math_by_name(run_copy, flags, named):
    with pytest.raises(HfGptError) as error:
        continue_setup([str(run_copy), *flags])
    message = str(error.value)
    assert re.search(named, message) and "hfgpt fork" in message, message


def test_continue_on_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(HfGptError, match=r"is not an hfgpt run directory \(it has no config.toml and no tokenizer/\)"):
        continue_setup([str(tmp_path)])
    (tmp_path / "config.toml").write_text("")
    with pytest.raises(HfGptError, match=r"\(it has no tokenizer/\)"):
        continue_setup([str(tmp_path)])
    with pytest.raises(HfGptError, match="needs the run directory"):
        continue_setup([])
    with pytest.raises(HfGptError, match=r"x{300} does not exist"):  # too long to even look up
        continue_setup([str(tmp_path / ("x" * 300))])


def test_continue_on_a_path_that_is_no_folder_says_so(tmp_path):
    """It said "is not an hfgpt run directory (it has no config.toml and no tokenizer/)" of a path that is not there."""
    with pytest.raises(HfGptError, match=rf"^{tmp_path}/does-not-exist does not exist\. `hfgpt continue` takes the "
                                         r"run directory that `hfgpt train` made, <rundir>/<run-name> \(`hfgpt runs` "
                                         r"lists them\), or the Hub id of a run pushed with its checkpoints\.$"):
        continue_setup([str(tmp_path / "does-not-exist")])
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(HfGptError, match=r"notes\.txt is a file\. `hfgpt continue` takes the run directory"):
        continue_setup([str(tmp_path / "notes.txt")])


@pytest.mark.slow
@pytest.mark.parametrize(("folder", "file"), [("tokenizer", "tokenizer.json"), ("architecture", "config.json")])
def test_a_damaged_tokenizer_or_architecture_is_named_with_where_a_copy_is(run_copy, folder, file):
    (run_copy / folder / file).write_text("{not json")
    with pytest.raises(HfGptError, match=rf"{folder} cannot be loaded .* final/ and best/ folders hold the same"):
        continue_setup([str(run_copy)])


@pytest.mark.slow
def test_fork_takes_the_model_shape_from_its_source(trained_run):
    with pytest.warns(UserWarning, match="--hidden-size is ignored"):
        setup = fork_setup([str(trained_run), "--hidden-size", "64", "--max-steps", "5"])
    assert setup.cfg.model.hidden_size == 32 and setup.cfg.training.max_steps == 5
    assert setup.parent["run"] == str(trained_run.resolve())


@pytest.mark.slow
def test_continue_trains_on_and_the_log_goes_on_without_gaps(run_copy, tmp_path):
    result = run_hfgpt(["continue", str(run_copy), "--max-steps", "70"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "continuing from" in result.stdout and "(step 60)" in result.stdout
    records = [json.loads(line) for line in (run_copy / "train_log.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if r["split"] == "train"]
    assert train_steps == list(range(5, 71, 5))
    info = json.loads((run_copy / "run.json").read_text())
    assert info["status"] == "completed" and info["sessions"][-1]["start_step"] == 60

    again = run_hfgpt(["continue", str(run_copy)], cwd=tmp_path)
    assert again.returncode == 2 and "already trained for 70 steps" in again.stderr


@pytest.mark.slow
def test_a_run_saved_before_there_was_a_choice_of_optimizer_continues_with_adamw(run_copy, tmp_path):
    """Its config.toml has no --optimizer nor Muon's settings: it goes on as it trained, with AdamW (the optimizer
    state in its checkpoint is AdamW's)."""
    config = run_copy / "config.toml"
    lines = config.read_text().splitlines()
    older = [line for line in lines if not line.startswith(("optimizer =", "muon_"))]
    assert len(lines) - len(older) == 4
    config.write_text("\n".join(older) + "\n")
    result = run_hfgpt(["continue", str(run_copy), "--max-steps", "65"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(step 60)" in result.stdout and "optimizer AdamW (" in result.stdout
    assert 'optimizer = "adamw"' in config.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("final_written", [False, True])
def test_continue_finishes_a_run_killed_after_its_last_checkpoint(run_copy, tmp_path, final_written):
    """A kill after the last step's checkpoint, before or after final/ but before run.json says completed, leaves
    nothing to train, only the run to finish."""
    log_before = (run_copy / "train_log.jsonl").read_text()
    assert json.loads((run_copy / "final" / "metrics.json").read_text())["step"] == 60
    if not final_written:
        shutil.rmtree(run_copy / "final")
    info = json.loads((run_copy / "run.json").read_text())
    (run_copy / "run.json").write_text(json.dumps({**info, "status": "running"}))

    result = run_hfgpt(["continue", str(run_copy)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(step 60)" in result.stdout and (run_copy / "final" / "model.safetensors").is_file()
    assert json.loads((run_copy / "final" / "metrics.json").read_text())["step"] == 60
    assert json.loads((run_copy / "run.json").read_text())["status"] == "completed"
    assert (run_copy / "train_log.jsonl").read_text() == log_before


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adamw", "muon"])  # the source trained with AdamW: a fork may change it
def test_fork_starts_a_new_run_from_the_weights_on_new_data(trained_run, tmp_path, optimizer):
    corpus = write_corpus(tmp_path / "more", documents=6)
    result = run_hfgpt(["fork", str(trained_run), *TINY_MODEL_FLAGS, "--train", str(corpus), "--max-steps", "5",
                        "--trackers", "none", "--rundir", str(tmp_path / "runs"), "--run-name", "forked",
                        "--cache-dir", str(tmp_path / "cache"), "--optimizer", optimizer], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"optimizer {'Muon' if optimizer == 'muon' else 'AdamW'} (" in result.stdout
    run_dir = tmp_path / "runs" / "forked"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["mode"] == "fork" and info["parent"]["source"].endswith("final")
    first = json.loads((run_dir / "train_log.jsonl").read_text().splitlines()[0])
    source_last = [json.loads(line) for line in (trained_run / "train_log.jsonl").read_text().splitlines()]
    source_last = [r for r in source_last if r["split"] == "train"][-1]["loss"]
    chance = math.log(len(AutoTokenizer.from_pretrained(run_dir / "tokenizer")))
    # The fork starts from trained weights: its first steps sit near the source's last loss, far below chance.
    assert first["loss"] < min(1.2 * source_last, 0.75 * chance), (first["loss"], source_last, chance)
    assert (run_dir / "final" / "config.json").is_file()


@pytest.mark.slow
def test_train_refuses_an_existing_run_unless_overwrite(trained_run, tmp_path, run_copy):
    flags = [*TINY_MODEL_FLAGS, "--train", str(write_corpus(tmp_path / "c", documents=4)), "--max-steps", "2",
             "--trackers", "none", "--rundir", str(run_copy.parent), "--run-name", "tiny",
             "--cache-dir", str(tmp_path / "cache")]
    refused = run_hfgpt(flags, cwd=tmp_path)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr and "hfgpt continue" in refused.stderr
    assert (run_copy / "final").is_dir(), "nothing of the existing run was touched"
    replaced = run_hfgpt([*flags, "--overwrite"], cwd=tmp_path)
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert json.loads((run_copy / "run.json").read_text())["config"]["training"]["max_steps"] == 2


@pytest.mark.slow
def test_continue_refuses_other_data_and_keeps_the_tracker_folder(run_copy, tmp_path):
    other = write_corpus(tmp_path / "other", documents=3)
    refused = run_hfgpt(["continue", str(run_copy), "--max-steps", "70", "--train", str(other)], cwd=tmp_path)
    assert refused.returncode == 2 and "the training data are not the same" in refused.stderr, refused.stderr[-2000:]
    assert json.loads((run_copy / "run.json").read_text())["status"] == "completed", "a refused launch changes nothing"
    events_before = set((run_copy / "logs").rglob("events.out.tfevents*"))
    resumed = run_hfgpt(["continue", str(run_copy), "--max-steps", "65"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    events_after = set((run_copy / "logs").rglob("events.out.tfevents*"))
    assert events_before < events_after, "the resumed run logs beside the first one's events"
    assert all((run_copy / "logs" / "tiny") in p.parents for p in events_after), "into the same TensorBoard run"


@pytest.mark.slow
def test_continue_resumes_the_same_wandb_run(tmp_path):
    import_or_unavailable("wandb")
    corpus = write_corpus(tmp_path / "c", documents=4)
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    flags = [*TINY_MODEL_FLAGS, "--train", str(corpus), "--max-steps", "4", "--trackers", "wandb",
             "--rundir", str(tmp_path / "runs"), "--run-name", "wb", "--cache-dir", str(tmp_path / "cache")]
    first = run_hfgpt([*flags, "--stop-at-step", "2"], cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = tmp_path / "runs" / "wb"
    resumed = run_hfgpt(["continue", str(run_dir)], cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    wandb_id = json.loads((run_dir / "run.json").read_text())["wandb_id"]
    offline_runs = sorted((run_dir / "logs" / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 2 and all(p.name.endswith(wandb_id) for p in offline_runs), offline_runs


@pytest.mark.slow
def test_continue_takes_its_run_from_the_path_whatever_name_the_run_was_given(run_copy):
    """Run names have rules now; a run named before them (or moved and renamed) still continues."""
    config = run_copy / "config.toml"
    config.write_text(config.read_text().replace('run_name = "tiny"', 'run_name = "my old run"'))
    setup = continue_setup([str(run_copy), "--max-steps", "80"])
    assert (setup.cfg.run.rundir, setup.cfg.run.run_name) == (str(run_copy.parent), "tiny")


@pytest.mark.slow  # trains in this process
def test_a_run_trained_on_a_relative_path_continues_from_any_working_directory(tmp_path, monkeypatch):
    """A Slurm requeue, a cron job or a notebook continues from another folder than the one it trained in."""
    (tmp_path / "here").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    shutil.copyfile(next(write_corpus(tmp_path / "corpus", documents=4).iterdir()), "small.txt")
    flags = [*TINY_MODEL_FLAGS, "--data-path", "small.txt", "--max-steps", "4", "--ckpt-every", "2", "--trackers",
             "none", "--sample-tokens", "0", "--cache-dir", str(tmp_path / "cache"), "--run-name", "relative"]
    run_dir = run(train_setup([*flags, "--stop-at-step", "2"])).absolute()
    monkeypatch.chdir(tmp_path / "elsewhere")
    run(continue_setup([str(run_dir)]))
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"


@pytest.mark.slow  # trains in this process
def test_a_depth_run_prints_what_it_derived_saves_it_and_continues_without_the_depth(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus", documents=4)
    flags = ["--depth", "1", "--seq", "32", "--token-batch-size", "256", "--max-steps", "4", "--stop-at-step", "2",
             "--train", str(corpus), "--trackers", "none", "--no-progress-bar", "--sample-tokens", "0",
             "--rundir", str(tmp_path / "runs"), "--run-name", "d1", "--cache-dir", str(tmp_path / "cache")]
    run_dir = run(train_setup(flags))
    printed = capsys.readouterr().out
    assert "--depth 1 derives" in printed and re.search(r"--hidden-size +64 +64 x depth", printed), printed
    saved = tomllib.loads((run_dir / "config.toml").read_text())
    assert (saved["model"]["depth"], saved["model"]["hidden_size"], saved["model"]["num_attention_heads"],
            saved["training"]["lr"]) == (1, 64, 2, 0.000184)

    setup = continue_setup([str(run_dir)])
    assert setup.cfg.model.hidden_size == 64 and setup.cfg.training.max_steps == 4 and not setup.derived
    run(setup)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    assert "derives" not in capsys.readouterr().out
