"""The model card (README.md) of a saved model, written with `huggingface_hub.ModelCard` and `ModelCardData`.

The metadata (library, pipeline, tags, license, a Hub dataset, and a `model-index` with the validation loss,
perplexity and bits per byte of the folder's own step) is what the Hub reads; the text gives the run's figures
(`hfgpt.runs.summary`, the run's last launch in run.json), the loss curve, three ways to load the model, a
sample, and the command that trains it again. Everything comes from the run's files, so a card can be written
at the end of training, by `hfgpt push` for a run without one, and for a checkpoint being uploaded.

A card is published with the model, so it names the run's data by file name and shows no folder of the machine
that trained it (each setting's `local` kind says which are paths); the command that trains the run again
starts from the run's own folder, whose config.toml knows where the data is.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..config import config_from_dict, describe_settings, shareable_value
from ..files import replace_text
from ..runs.rundir import LOSS_PLOT
from ..runs.summary import RunSummary, format_duration, read_json
from .loading import usage_section

CARD = "README.md"
SAMPLE_FENCE = "````text\n"


@dataclass
class CardInput:
    """What one card describes: the model folder's weights and config, the step they hold, the run."""

    run: RunSummary
    step: int
    config: dict[str, Any]  # the model's config.json
    weights: Path | IO[bytes]  # its model.safetensors
    repo_id: str = ""  # where it is (to be) pushed; "" for a local folder
    license: str = ""
    sample: str | None = None
    has_plot: bool = True


def valid_at(run: RunSummary, step: int) -> dict[str, Any]:
    """The validation record of `step`, or {} when the run did not evaluate at that step."""
    return next((r for r in reversed(run.valid) if r["step"] == step), {})


TASK_METRICS = (("accuracy", "accuracy", "acc"), ("accuracy_norm", "accuracy per character (lm-eval's acc_norm)",
                                                 "acc_norm"), ("centred_accuracy", "centred accuracy", "centred"))


def at_step(series: dict[str, list[dict[str, Any]]], step: int) -> dict[str, dict[str, Any]]:
    """The record of `step` of each named series (a mixture's validation sets, the tasks), by name."""
    found = {name: next((r for r in reversed(records) if r["step"] == step), None) for name, records in series.items()}
    return {name: record for name, record in found.items() if record}


def count_parameters(weights: Path | IO[bytes]) -> int:
    """Parameters stored in a safetensors file or open file (tied weights are stored, and counted, once), from
    its header: 8 bytes of little-endian length, then JSON {name: {"shape": [...], ...}, "__metadata__": ...}."""
    with contextlib.ExitStack() as stack:
        handle = stack.enter_context(open(weights, "rb")) if isinstance(weights, Path) else weights
        start = handle.tell()
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
        handle.seek(start)
    return sum(math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__")


def _data_names(data: dict[str, Any]) -> tuple[str, str]:
    """(dataset type, dataset name) for the model-index: a Hub dataset, or the local text by its files' names."""
    if data.get("dataset"):
        name = shareable_value(data["dataset"], "path-or-name")
        return name, name
    return "text", shareable_value(data.get("valid") or data.get("train") or "", "files") or \
        "the Python standard library"


def card_data(card: CardInput) -> ModelCardData:
    cfg = card.run.config
    data = cfg.get("data", {})
    kind, name = _data_names(data)
    valid = valid_at(card.run, card.step)
    metrics = [("loss", "validation loss", "loss"), ("perplexity", "perplexity", "ppl"),
               ("bits_per_byte", "bits per byte", "bpb")]
    # a mixture's validation sets as configurations of its data: the Hub groups results by type and configuration
    measured = [(name, None, valid)] + [(set_name, set_name, record) for set_name, record in
                                        at_step(card.run.valid_sets, card.step).items()]
    results = [EvalResult(task_type="text-generation", dataset_type=kind, dataset_name=name, dataset_config=config,
                          dataset_split="validation", metric_type=metric, metric_name=label,
                          metric_value=round(float(record[key]), 6))
               for name, config, record in measured
               for metric, label, key in metrics if isinstance(record.get(key), (int, float))]
    results += [EvalResult(task_type="text-generation", dataset_type=task, dataset_name=task, metric_type=metric,
                           metric_name=label, metric_value=round(float(record[key]), 6))
                for task, record in at_step(card.run.tasks, card.step).items()
                for metric, label, key in TASK_METRICS if isinstance(record.get(key), (int, float))]
    return ModelCardData(
        library_name="transformers", pipeline_tag="text-generation", license=card.license or None,
        tags=["hfgpt", "gpt", "causal-lm", "custom_code", f"{data.get('tokenizer', 'char')}-tokenizer"],
        datasets=[data["dataset"]] if data.get("dataset") else None,
        model_name=card.repo_id.rpartition("/")[2] or card.run.name, eval_results=results or None,
    )


def _task(name: str, record: dict[str, Any]) -> str:
    return (f"| task {name} | acc {100 * record['acc']:.1f}%, acc_norm {100 * record['acc_norm']:.1f}%, centred "
            f"{record['centred']:.3f} (chance {100 * record['chance']:.1f}%, {record['items']} items, step "
            f"{record['step']}) |\n")


def _validation(record: dict[str, Any], label: str) -> str:
    if not record:
        return ""
    bpb = f", {record['bpb']:.4f} bits per byte" if isinstance(record.get("bpb"), (int, float)) else ""
    return f"| {label} | loss {record['loss']:.4f}, perplexity {record['ppl']:.2f}{bpb} (step {record['step']}) |\n"


def figures(card: CardInput) -> str:
    """The table of the run's figures."""
    run, config = card.run, card.config
    session = run.sessions[-1] if run.sessions else {}
    data = run.config.get("data", {})
    ff = config.get("intermediate_size") or 4 * config.get("hidden_size", 0)
    tokens = f"{card.step * run.tokens_per_step:,} ({run.tokens_per_step:,} per step)" if run.tokens_per_step else "?"
    rows = [
        ("parameters", f"{count_parameters(card.weights):,}"),
        ("architecture", f"{config.get('num_hidden_layers')} layers, hidden size {config.get('hidden_size')}, "
                         f"{config.get('num_attention_heads')} heads, MLP {ff} ({config.get('hidden_act')}), "
                         f"context {config.get('max_position_embeddings')}, "
                         f"{'tied' if config.get('tie_word_embeddings') else 'untied'} embeddings"),
        ("tokenizer", f"{data.get('tokenizer', '?')}, vocabulary {config.get('vocab_size')}"),
        ("tokens seen", tokens),
        ("steps", f"{card.step} of {run.max_steps} (run {run.status})"),
        ("batch", session.get("batch", "?")),
        ("precision", session.get("precision", run.config.get("training", {}).get("precision", "?"))),
        ("processes", str(session.get("processes", "?"))),
        ("wall time", format_duration(run.wall_seconds)),
        ("hardware", session.get("hardware", "?")),
    ]
    table = "| | |\n|---|---|\n" + "".join(f"| {key} | {value} |\n" for key, value in rows)
    best = valid_at(run, run.best_step) if run.best_step is not None else {}
    table += _validation(valid_at(run, card.step), "validation of this model")
    table += "".join(_validation(record, f"validation of this model on {name}")
                     for name, record in at_step(run.valid_sets, card.step).items())
    table += "".join(_task(name, record) for name, record in at_step(run.tasks, card.step).items())
    table += _validation(run.valid[-1] if run.valid else {}, "final validation")
    return table + _validation(best, "best validation")


def reproduce(run: RunSummary) -> str:
    """How to train the run again: from the run's own folder, whose config.toml holds every setting and where
    the data is; and its settings that differ from the defaults, without the machine's folders."""
    settings = describe_settings(config_from_dict(run.config, "run.json"), shareable=True) if run.config else "..."
    command = f"hfgpt fork {shareable_value(run.parent, 'path-or-name')}" if run.mode == "fork" else "hfgpt train"
    versions = ", ".join(f"{name} {version}" for name, version in run.versions.items())
    return (f"In the run's folder, which holds config.toml:\n\n```bash\n{command} --config config.toml --rundir .. "
            f"--run-name {run.name}-again\n```\n\nIts settings that differ from the defaults (its data by file "
            f"name): `{settings}`.\n\nVersions: {versions}.")


def build_card(card: CardInput) -> ModelCard:
    name = card_data(card).model_name
    plot = f"## Training curves\n\n![loss, learning rate and throughput]({LOSS_PLOT})\n\n" if card.has_plot else ""
    sample = (f"## Sample\n\n{SAMPLE_FENCE}{card.sample}\n````\n\n" if card.sample else
              "## Sample\n\n`hfgpt generate` samples it.\n\n")
    body = (f"# {name}\n\nA GPT-style causal language model trained from scratch on raw text with hfgpt "
            "(transformers, datasets and accelerate).\n\n"
            f"## Figures\n\n{figures(card)}\n{plot}{usage_section(card.repo_id)}\n{sample}"
            f"## Train it again\n\n{reproduce(card.run)}\n")
    return ModelCard(f"---\n{card_data(card).to_yaml()}\n---\n\n{body}")


def write_card(folder: Path, card: CardInput) -> Path:
    """`folder`/README.md, replaced whole."""
    path = folder / CARD
    replace_text(path, str(build_card(card)))
    return path


def card_for_folder(folder: Path, run: RunSummary, **options: Any) -> CardInput:
    """The card input of a save_pretrained folder of the run (final/, best/), at the step its metrics.json names."""
    step = int(read_json(folder / "metrics.json").get("step", run.steps_done))
    return CardInput(run, step, read_json(folder / "config.json"), folder / "model.safetensors", **options)
