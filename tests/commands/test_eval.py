"""`hfgpt eval` measures a saved model as training measures its validation set: on the same blocks it gives
the run's own validation loss, from a run directory or from the validation text given with --data."""

from __future__ import annotations

import json
import sys

import datasets
import pytest
import torch
from helpers import read_log, tiny_run_flags, write_char_shards, write_jsonl, write_txt

from hfgpt.cli import main
from hfgpt.training.modes import train_setup
from hfgpt.training.trainer import run

VALID_TEXT = "Sphinx of black quartz, judge my vow.\nHow vexingly quick daft zebras jump!\n" * 6


@pytest.fixture(scope="module")
def valid_run(tmp_path_factory):
    """A run whose validation set is one file, small enough that every one of its blocks is evaluated."""
    root = tmp_path_factory.mktemp("eval")
    valid = write_txt(root / "valid.txt", VALID_TEXT)
    run_dir = run(train_setup(tiny_run_flags(root, "v", "--valid", str(valid), "--max-steps", "6",
                                             "--eval-every", "3", "--eval-batches", "20", "--log-every", "3")))
    return run_dir, valid


def last_valid(run_dir):
    return [r for r in read_log(run_dir) if r["split"] == "valid"][-1]


def evaluated(capsys, *argv):
    assert main(["eval", *argv, "--json", "--no-progress-bar"]) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_of_final_on_the_validation_file_gives_the_runs_validation_loss(valid_run, capsys, tmp_path):
    run_dir, valid = valid_run
    expected = last_valid(run_dir)
    result = evaluated(capsys, str(run_dir / "final"), "--data", str(valid), "--cache-dir", str(tmp_path / "c"))
    assert result["loss"] == pytest.approx(expected["loss"], abs=1e-4)
    assert result["ppl"] == pytest.approx(expected["ppl"], rel=1e-4)
    assert result["acc"] == pytest.approx(expected["acc"], abs=1e-6)
    assert result["bpb"] == pytest.approx(expected["bpb"], abs=1e-4)
    assert result["bytes"] == len(VALID_TEXT.encode()) - result["blocks"]  # each block's first byte is context
    assert result["seq_len"] == 32 and result["data"] == str(valid)


def test_eval_of_a_run_measures_its_own_validation_blocks(valid_run, capsys):
    run_dir, _ = valid_run
    result = evaluated(capsys, str(run_dir))
    # the same blocks, precision and kernels as the training's last validation: the same number, bit for bit
    assert result["loss"] == last_valid(run_dir)["loss"]
    assert "the validation blocks of the run" in result["data"]


def test_eval_reads_the_sources_training_reads_and_prints_a_line(valid_run, capsys, tmp_path):
    run_dir, _ = valid_run
    rows = write_jsonl(tmp_path / "valid.jsonl", VALID_TEXT.splitlines(keepends=True)[:4], column="body")
    result = evaluated(capsys, str(run_dir / "final"), "--data", str(rows), "--text-column", "body",
                       "--batch-size", "2", "--batches", "1", "--cache-dir", str(tmp_path / "c"))
    assert result["blocks"] <= 2 and result["tokens"] > 0
    assert main(["eval", str(run_dir / "final"), "--data", str(rows), "--text-column", "body",
                 "--cache-dir", str(tmp_path / "c"), "--no-progress-bar"]) == 0
    assert " bits per byte (" in capsys.readouterr().out


def test_eval_without_data_needs_a_run(valid_run, capsys):
    run_dir, _ = valid_run
    assert main(["eval", str(run_dir / "final")]) == 2
    assert "hfgpt eval needs --data or --dataset" in capsys.readouterr().err


def test_eval_reads_a_split_of_a_dataset(valid_run, capsys, tmp_path):
    """--dataset takes what training's --dataset takes; a local datasets folder stands in for a Hub id."""
    run_dir, valid = valid_run
    folder = tmp_path / "ds"
    write_jsonl(folder / "validation.jsonl", [valid.read_text()])
    write_jsonl(folder / "train.jsonl", ["other text"])
    from_dataset = evaluated(capsys, str(run_dir / "final"), "--dataset", str(folder), "--split", "validation",
                             "--cache-dir", str(tmp_path / "c"))
    from_file = evaluated(capsys, str(run_dir / "final"), "--data", str(valid), "--cache-dir", str(tmp_path / "c"))
    assert from_dataset["loss"] == pytest.approx(from_file["loss"], abs=1e-6)
    assert from_dataset["data"] == f"{folder} (validation)"


def strict(text: str) -> dict:
    """JSON as a strict parser reads it: NaN and Infinity are not JSON."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_a_text_too_short_to_measure_is_refused(valid_run, capsys, tmp_path):
    """The issue's repro: one character is one token of context and no text to predict; it said nan bits per byte
    and printed NaN in --json."""
    run_dir, _ = valid_run
    one = write_txt(tmp_path / "one.txt", "a")
    for json_flag in ([], ["--json"]):
        assert main(["eval", str(run_dir), "--data", str(one), "--cache-dir", str(tmp_path / "c"),
                     "--no-progress-bar", *json_flag]) == 2
        out, err = capsys.readouterr()
        error = err.splitlines()[-1]  # after the packing's lines
        assert not out and error.startswith(f"hfgpt: error: {one} is too short to measure")
        assert error.endswith("Give it at least two tokens of text.")
    result = evaluated(capsys, str(run_dir), "--data", str(write_txt(tmp_path / "two.txt", "ab")), "--cache-dir",
                       str(tmp_path / "c"))
    assert result["bytes"] == 1 and result["bpb"] > 0


def test_json_output_is_strict_json_even_for_a_diverged_model(valid_run, capsys, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir, valid = valid_run
    model = AutoModelForCausalLM.from_pretrained(run_dir / "final")
    with torch.no_grad():
        model.get_input_embeddings().weight.fill_(float("nan"))
    model.save_pretrained(tmp_path / "diverged")
    AutoTokenizer.from_pretrained(run_dir / "final").save_pretrained(tmp_path / "diverged")
    assert main(["eval", str(tmp_path / "diverged"), "--data", str(valid), "--json", "--cache-dir",
                 str(tmp_path / "c"), "--no-progress-bar"]) == 0
    result = strict(capsys.readouterr().out)
    assert result["loss"] is None and result["ppl"] is None and result["bpb"] is None and result["tokens"] > 0


def packed_folders(cache):
    return sorted((cache / "packed").iterdir())


def test_a_text_is_tokenized_and_packed_once_in_evaluations_words(valid_run, capsys, tmp_path, monkeypatch):
    """It was packed twice, as training's train and validation sets ("tokenizing train", "tokenizing valid",
    "packed 47 train and 47 validation blocks")."""
    run_dir, valid = valid_run
    result = evaluated(capsys, str(run_dir / "final"), "--data", str(valid), "--cache-dir", str(tmp_path / "c"))
    [folder] = packed_folders(tmp_path / "c")
    assert sorted(path.name for path in folder.glob("*.arrow")) == ["valid-00000.arrow"]
    bars = datasets.is_progress_bar_enabled()  # an earlier --no-progress-bar turned them off for the process
    datasets.enable_progress_bars()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # bars draw on a terminal only
    try:
        assert main(["eval", str(run_dir / "final"), "--data", str(valid), "--cache-dir", str(tmp_path / "d")]) == 0
    finally:
        datasets.enable_progress_bars() if bars else datasets.disable_progress_bars()
    err = capsys.readouterr().err
    assert f"tokenizing and packing --data {valid} into blocks of 32 tokens to evaluate ..." in err
    assert f"packed {result['blocks']} blocks to evaluate of 32 tokens ({len(VALID_TEXT) + 1} tokens, " in err
    assert "tokenizing the text to evaluate" in err and "train" not in err and "valid " not in err


def test_shards_are_evaluated_from_their_validation_shard_alone(tmp_path, capsys):
    """A nanoGPT folder measures its val.bin (a .bin file given itself measures that file), read once."""
    write_char_shards(tmp_path / "shards", VALID_TEXT * 3, VALID_TEXT)
    run_dir = run(train_setup(tiny_run_flags(tmp_path, "s", "--train", str(tmp_path / "shards"), "--max-steps", "2",
                                             "--eval-batches", "20")))
    capsys.readouterr()  # the training's output
    whole = evaluated(capsys, str(run_dir), "--data", str(tmp_path / "shards"), "--cache-dir", str(tmp_path / "c"))
    assert whole["loss"] == pytest.approx(last_valid(run_dir)["loss"], abs=1e-4)
    one = evaluated(capsys, str(run_dir), "--data", str(tmp_path / "shards" / "val.bin"), "--cache-dir",
                    str(tmp_path / "c"))
    assert one["loss"] == whole["loss"] and len(packed_folders(tmp_path / "c")) == 1
    [folder] = packed_folders(tmp_path / "c")
    assert json.loads((folder / "facts.json").read_text())["splits"]["train"]["stop"] == 0


def test_a_missing_file_is_named_by_evals_own_flag(valid_run, capsys, tmp_path, monkeypatch):
    """hfgpt eval has --data and no --datadir; the message named --train and said to set --datadir."""
    run_dir, _ = valid_run
    monkeypatch.chdir(tmp_path)
    assert main(["eval", str(run_dir), "--data", "missing.txt", "--cache-dir", "c"]) == 2
    assert capsys.readouterr().err == ("hfgpt: error: missing.txt (from --data 'missing.txt') does not exist. Check "
                                       "the spelling; a relative path starts at the current directory.\n")
