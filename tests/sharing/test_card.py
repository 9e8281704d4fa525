"""The model card of final/ and best/: huggingface_hub's own readers parse its metadata (model-index included)
back to the run's numbers, and its text holds the run's figures, the plot, three ways to load, a sample and the
command that trains it again."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import tomllib

import numpy as np
import pytest
from helpers import read_log
from huggingface_hub import ModelCard, metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results
from safetensors.numpy import save_file
from transformers import AutoModelForCausalLM

from hfgpt.cli import main
from hfgpt.runs.summary import summarize
from hfgpt.sharing.card import CardInput, build_card, count_parameters


def valid_records(run_dir):
    return {r["step"]: r for r in read_log(run_dir) if r["split"] == "valid"}


def test_final_and_best_cards_parse_back_to_the_runs_validation(tiny_run):
    valid = valid_records(tiny_run)
    for folder in ("final", "best"):
        step = json.loads((tiny_run / folder / "metrics.json").read_text())["step"]
        meta = metadata_load(tiny_run / folder / "README.md")
        assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-generation"
        assert meta["license"] == "mit" and "hfgpt" in meta["tags"] and "datasets" not in meta
        name, results = model_index_to_eval_results(meta["model-index"])
        assert name == "tiny"
        measured = {result.metric_type: result.metric_value for result in results}
        assert measured == {"loss": round(valid[step]["loss"], 6), "perplexity": round(valid[step]["ppl"], 6),
                            "bits_per_byte": round(valid[step]["bpb"], 6)}
        assert {(r.task_type, r.dataset_split) for r in results} == {("text-generation", "validation")}


def test_the_card_shows_the_runs_figures_plot_loading_sample_and_command(tiny_run):
    text = (tiny_run / "final" / "README.md").read_text()
    model = AutoModelForCausalLM.from_pretrained(tiny_run / "final")
    parameters = sum(p.numel() for p in model.parameters())  # tied weights counted once
    precision = tomllib.loads((tiny_run / "config.toml").read_text())["training"]["precision"]  # auto, resolved
    for expected in (f"| parameters | {parameters:,} |", "| tokenizer | char, vocabulary", "| steps | 8 of 8",
                     "| tokens seen | 2,048 (256 per step) |", f"| precision | {precision} |", "| processes | 1 |",
                     "| hardware | cpu", "| wall time |", "final validation", "best validation",
                     "![loss, learning rate and throughput](loss.png)", "import hfgpt", "trust_remote_code=True",
                     'pipeline("text-generation"', "hfgpt train ", "--max-steps 8", "--license mit"):
        assert expected in text, expected
    assert "````text\nThe" in text, "the end-of-training sample, from its prompt"
    assert (tiny_run / "final" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tiny_run / "best" / "loss.png").read_bytes() == (tiny_run / "loss.png").read_bytes()


def test_a_hub_dataset_is_named_and_a_step_without_validation_has_no_model_index(tmp_path):
    weights = tmp_path / "model.safetensors"
    save_file({"a": np.zeros((3, 4), "float32"), "b": np.zeros(5, "float32")}, str(weights))
    assert count_parameters(weights) == 17
    run = summarize(tmp_path)  # no files: every figure unknown
    run.config = {"data": {"dataset": "roneneldan/TinyStories", "tokenizer": "bpe"}}
    run.valid = [{"step": 4, "loss": 2.0, "ppl": 7.39, "bpb": 1.5}]
    card = build_card(CardInput(run, 4, {"vocab_size": 300}, weights, repo_id="me/stories"))
    assert card.data.datasets == ["roneneldan/TinyStories"] and card.data.model_name == "stories"
    assert card.data.eval_results[0].dataset_name == "roneneldan/TinyStories"
    bare = ModelCard(str(build_card(CardInput(run, 3, {}, weights))))
    assert bare.data.eval_results is None and "`hfgpt generate` samples it" in bare.text


def test_a_card_names_the_data_by_file_and_shows_no_folder_of_the_machine(tiny_run):
    """A card is pushed with the model: the folders of the machine that trained it are nobody else's business."""
    machine_folder = str(tiny_run.parents[1])  # holds the corpus, the runs and the cache, as a home folder would
    for folder in ("final", "best"):
        card = ModelCard((tiny_run / folder / "README.md").read_text())
        assert machine_folder not in str(card)
        assert card.data.eval_results[0].dataset_name == "corpus"  # the --train folder, by its name
        assert "--train corpus " in card.text
        assert "hfgpt train --config config.toml --rundir .. --run-name tiny-again" in card.text


@pytest.mark.slow  # trains in this process
def test_the_cards_command_trains_the_run_again_from_the_runs_folder(tiny_run, tmp_path, monkeypatch):
    copy = shutil.copytree(tiny_run, tmp_path / "runs" / "tiny", symlinks=True)
    command = re.search(r"hfgpt (train --config config.toml .*)", (copy / "final" / "README.md").read_text())
    monkeypatch.chdir(copy)
    assert main([*shlex.split(command.group(1)), "--max-steps", "2", "--sample-tokens", "0"]) == 0
    again = tmp_path / "runs" / "tiny-again"
    original, repeated = (tomllib.loads((run_dir / "config.toml").read_text()) for run_dir in (copy, again))
    assert (repeated["data"], repeated["model"]) == (original["data"], original["model"])
    assert read_log(again)[0]["loss"] == read_log(copy)[0]["loss"]  # the same first step: same data, weights, seed
