"""End to end: a real `accelerate launch recipes/train.py` run on tiny data, and the folder it leaves."""

import json
import math
import re
import tomllib

import pytest
import torch
from helpers import TINY_MODEL_FLAGS, read_log, run_hfgpt, write_corpus
from transformers import AutoModelForCausalLM, AutoTokenizer

import hfgpt  # noqa: F401  (registers the Auto classes)
from hfgpt.config import build_config, config_from_dict, describe_settings
from hfgpt.errors import HfGptError
from hfgpt.inference.generation import generate_text, load_model
from hfgpt.runs.rundir import unknown_entries
from hfgpt.training import trainer
from hfgpt.training.modes import train_setup
from hfgpt.training.trainer import run

pytestmark = pytest.mark.slow


def test_loss_falls_and_every_metric_is_logged(trained_run):
    records = read_log(trained_run)
    train = [r for r in records if r["split"] == "train"]
    valid = [r for r in records if r["split"] == "valid"]
    assert [r["step"] for r in train] == list(range(5, 61, 5))
    assert [r["step"] for r in valid] == [20, 40, 60]
    assert train[-1]["loss"] < 0.75 * train[0]["loss"], (train[0]["loss"], train[-1]["loss"])
    assert valid[-1]["loss"] < valid[0]["loss"]
    for key in ("loss", "ppl", "acc", "lr", "grad_norm", "tokens_per_s", "ms_per_step", "tokens", "epoch"):
        assert key in train[-1]
    assert train[-1]["ppl"] == pytest.approx(torch.tensor(train[-1]["loss"]).exp().item(), rel=1e-4)
    assert 0.0 <= train[-1]["acc"] <= 1.0 and train[-1]["acc"] > train[0]["acc"]
    assert train[-1]["tokens"] == 60 * 8 * 32


def test_console_shows_config_batch_metrics_and_sample(trained_run):
    output = (trained_run.parents[1] / "launch_output.txt").read_text()
    cfg = config_from_dict(tomllib.loads((trained_run / "config.toml").read_text()), "config.toml")
    assert f"config: {describe_settings(cfg)}; every setting is in {trained_run / 'config.toml'}" in output, \
        "the settings that differ from the defaults, and where all of them are"
    assert "8 sequences x 1 accumulation x 1 process(es) = 8 sequences = 256 tokens per optimizer step" in output
    assert re.search(r"^step 60/60 \| train \| loss \d+\.\d{4} \| ppl [\d.]+ \| acc [\d.]+% \| lr \d\.\d\de-\d\d \| "
                     r"gnorm [\d.]+ \| [\d,]+ tok/s \| [\d.]+ ms/step \| mfu [\d.]+%$", output, re.MULTILINE), output
    model, tokenizer, _ = load_model(trained_run)
    sample = generate_text(model, tokenizer, cfg.logging.sample_prompt, max_new_tokens=cfg.logging.sample_tokens,
                           seed=cfg.training.seed)
    assert f"sample:\n{sample}\n" in output, "the final model's sample, from the run's prompt and seed"


def test_run_directory_holds_config_tokenizer_checkpoints_and_trackers(trained_run):
    saved = config_from_dict(tomllib.loads((trained_run / "config.toml").read_text()), "config.toml")
    assert saved.training.max_steps == 60 and saved.model.hidden_size == 32
    assert (trained_run / "tokenizer" / "tokenizer.json").is_file()
    checkpoints = trained_run / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("step_*")) == ["step_00000030", "step_00000060"]
    assert (checkpoints / "latest.txt").read_text().strip() == "step_00000060"
    assert (checkpoints / "latest").resolve() == (checkpoints / "step_00000060").resolve()
    state = json.loads((checkpoints / "step_00000060" / "trainer_state.json").read_text())
    assert state["step"] == 60 and state["scheduler"]["last_epoch"] == 60
    # Nothing that a loader would unpickle freely: weights in safetensors, the rest weights_only or JSON.
    assert sorted(p.name for p in (checkpoints / "step_00000060").iterdir()) == [
        "checkpoint.json", "model.safetensors", "optimizer.bin", "random_states_0.pkl", "trainer_state.json"]
    info = json.loads((trained_run / "run.json").read_text())
    assert info["status"] == "completed" and info["versions"]["torch"] == torch.__version__
    assert (trained_run / "architecture" / "config.json").is_file()
    assert (trained_run / "best" / "metrics.json").is_file()
    assert list((trained_run / "logs").rglob("events.out.tfevents*")), "TensorBoard wrote no events"
    assert unknown_entries(trained_run) == [], "--overwrite knows every name a run holds as hfgpt's own"


def test_an_existing_run_is_refused_before_any_data_is_prepared(tmp_path, monkeypatch):
    """Tokenizing and packing can take minutes: a launch that cannot have its run directory says so first."""
    (tmp_path / "runs" / "taken").mkdir(parents=True)
    (tmp_path / "runs" / "taken" / "run.json").write_text("{}")

    def prepare_data(*args, **kwargs):
        raise AssertionError("the data were prepared before the run directory was claimed")

    monkeypatch.setattr(trainer, "prepare_data", prepare_data)
    cfg = build_config(["--rundir", str(tmp_path / "runs"), "--run-name", "taken", "--trackers", "none"])
    with pytest.raises(HfGptError, match="runs/taken already exists"):
        trainer.train(cfg)


def test_final_model_loads_with_auto_classes_and_generates(trained_run):
    final = trained_run / "final"
    tokenizer = AutoTokenizer.from_pretrained(final)
    model = AutoModelForCausalLM.from_pretrained(final)
    assert type(model).__name__ == "HfGptForCausalLM"
    prompt = tokenizer("The quick", return_tensors="pt")
    output = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    text = tokenizer.decode(output[0], skip_special_tokens=True)
    assert text.startswith("The quick") and len(text) > len("The quick")
    assert (final / "modeling_hfgpt.py").is_file() and "auto_map" in json.loads((final / "config.json").read_text())


def short_run(root, name, *flags):
    """Eight logged steps on a tiny corpus; returns (process result, train records)."""
    corpus = write_corpus(root / "corpus", documents=10)
    result = run_hfgpt([*TINY_MODEL_FLAGS, "--data-path", str(corpus), "--max-steps", "8", "--log-every", "1",
                        "--sample-tokens", "0", "--trackers", "none", "--rundir", str(root / "runs"),
                        "--run-name", name, "--cache-dir", str(root / "cache"), *flags], cwd=root)
    assert result.returncode == 0, result.stderr[-4000:]
    return result, [r for r in read_log(root / "runs" / name) if r["split"] == "train"]


def test_accumulation_reproduces_the_full_batch(tmp_path):
    """4 sequences x 2 accumulation steps follow the same losses as 8 sequences in one pass."""
    fp32 = ("--precision", "fp32")  # auto picks bf16 on a CPU with native bf16, whose rounding is coarser than 1e-5
    _, whole = short_run(tmp_path, "whole", "--batch", "8", *fp32)
    _, accumulated = short_run(tmp_path, "accumulated", "--batch", "4", "--grad-accum", "2",
                               "--gradient-checkpointing", *fp32)
    assert [r["loss"] for r in accumulated] == pytest.approx([r["loss"] for r in whole], rel=1e-5)
    # Adam hides a wrongly scaled gradient; the clipped norm does not.
    assert [r["grad_norm"] for r in accumulated] == pytest.approx([r["grad_norm"] for r in whole], rel=1e-4)


@pytest.fixture(scope="module")
def fp32_losses(tmp_path_factory):
    """The per-step losses of the short run in fp32, to tell which precision another run really used: on the
    CPU the same run gives bitwise the same losses."""
    _, records = short_run(tmp_path_factory.mktemp("fp32"), "fp32", "--precision", "fp32")
    return [r["loss"] for r in records]


def test_fp16_and_cuda_on_a_cpu_machine_warn_once_and_train_in_fp32(tmp_path, fp32_losses):
    result, records = short_run(tmp_path, "fp16", "--precision", "fp16", "--device", "cuda")
    warnings = [line for line in result.stderr.splitlines()
                if line.startswith("hfgpt: warning:") and "past_key_values" not in line]  # transformers' own
    assert len(warnings) == 2, result.stderr
    assert any("fp16" in line and "fp32" in line for line in warnings)
    assert any("CUDA" in line for line in warnings)
    assert [r["loss"] for r in records] == fp32_losses, "it did not train in fp32"


def test_bf16_autocast_trains_on_the_cpu(tmp_path, fp32_losses):
    _, records = short_run(tmp_path, "bf16", "--precision", "bf16")
    losses = [r["loss"] for r in records]
    assert losses[-1] < losses[0]
    assert losses != fp32_losses, "bf16 was silently ignored: these are fp32's losses"
    assert losses == pytest.approx(fp32_losses, rel=1e-3), "bf16 rounding, not another run"


def test_a_validation_block_without_targets_leaves_the_result_finite(tmp_path):
    # 384 characters + EOS = 12 full blocks of 32 and one block holding a single token, alone in the last
    # evaluation batch of 4: its mean loss was 0/0, which made the whole validation loss NaN and best/ unwritten
    valid = tmp_path / "valid.txt"
    valid.write_text(("abcdefghijklmnop" * 24)[:384])
    corpus = write_corpus(tmp_path / "corpus", documents=10)
    run(train_setup([*TINY_MODEL_FLAGS, "--train", str(corpus), "--valid", str(valid), "--batch-size", "4",
                     "--eval-batches", "100", "--max-steps", "4", "--eval-every", "2", "--trackers", "none",
                     "--sample-tokens", "0", "--rundir", str(tmp_path / "runs"), "--run-name", "v",
                     "--cache-dir", str(tmp_path / "cache")]))
    valid_records = [r for r in read_log(tmp_path / "runs" / "v") if r["split"] == "valid"]
    assert len(valid_records) == 2 and all(math.isfinite(r["loss"]) for r in valid_records), valid_records
    assert json.loads((tmp_path / "runs" / "v" / "best" / "metrics.json").read_text())["step"] in (2, 4)
