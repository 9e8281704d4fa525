"""`hfgpt push SOURCE`: what a push uploads from a run or a saved model folder, in one commit.

A run uploads its final/ (else its best/) with the model card and loss plot (made now if the folder has none,
or if its card shows how to load the model from somewhere else than this repo),
and with `include_checkpoints` its sealed, verified checkpoints and the files `continue` needs (`hub.run_files`).
Any save_pretrained folder uploads as it is, with a card if it has none (for an `hfgpt export` folder, one that
loads it without remote code); a `.gguf` file uploads with a card on running it in llama.cpp.
"""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

from ..errors import HfGptError
from ..runs.checkpoint import checkpoint_problem, sealed_checkpoints
from ..runs.rundir import LOSS_PLOT
from ..runs.saved_models import is_run_dir, saved_model_folder
from ..runs.summary import summarize
from .card import CARD, SAMPLE_FENCE, build_card, card_for_folder
from .hub import Upload, folder_files, run_files
from .loading import gguf_usage_section, stock_usage_section, usage_section
from .plots import plot_png


def model_folder(source: Path) -> tuple[Path, Path | None]:
    """(the save_pretrained folder to push, its run or None) for a run directory or a model folder."""
    folder = saved_model_folder(source, "push")
    if folder != source:  # the run's final/ or best/
        return folder, source
    return folder, source.parent if is_run_dir(source.parent) else None


def push_files(source: Path, repo_id: str, include_checkpoints: bool, license: str = "") -> Upload:
    """Everything `hfgpt push` uploads from `source` to `repo_id`, by path in the repo."""
    if source.suffix == ".gguf" and source.is_file():  # an `hfgpt export --to gguf` file
        if include_checkpoints:
            raise HfGptError(f"--include-checkpoints pushes a run's checkpoints, but {source} is one GGUF file; push "
                             "the run directory for those.")
        card = _plain_card(repo_id, license, gguf_usage_section(repo_id, source.name), ["gguf"])
        return {source.name: source, CARD: str(card).encode()}
    folder, run_dir = model_folder(source)
    files: Upload = folder_files(folder)
    if run_dir is not None:
        if LOSS_PLOT not in files:
            files[LOSS_PLOT] = plot_png([run_dir])
        written = (folder / CARD).read_text(encoding="utf-8") if CARD in files else ""
        if f'"{repo_id}"' not in written:  # no card, or one that shows how to load it from elsewhere
            card = card_for_folder(folder, summarize(run_dir), repo_id=repo_id, sample=sample_in(written),
                                   license=license or (ModelCard(written).data.license or "" if written else ""))
            files[CARD] = str(build_card(card)).encode()
    elif CARD not in files and _model_type(folder) == "hfgpt":
        files[CARD] = str(_plain_card(repo_id, license, usage_section(repo_id), ["custom_code"])).encode()
    elif CARD not in files:  # an `hfgpt export --to gpt2|llama` folder, or any stock one
        files[CARD] = str(_plain_card(repo_id, license, stock_usage_section(repo_id), [])).encode()
    if include_checkpoints:
        if run_dir is None:
            raise HfGptError(f"--include-checkpoints pushes a run's checkpoints, but {source} is not in a run; give "
                             "the run directory.")
        usable = [c for c in sealed_checkpoints(run_dir) if not checkpoint_problem(c)]
        if not usable:
            raise HfGptError(f"The run {run_dir} has no complete, verified checkpoint to push.")
        files |= run_files(run_dir, usable)
    return files


def sample_in(card: str) -> str | None:
    """The sample a card shows (between its ````text fences), to keep it in a card written anew."""
    start = card.find(SAMPLE_FENCE)
    end = card.find("\n````", start + len(SAMPLE_FENCE))
    return card[start + len(SAMPLE_FENCE):end] if start >= 0 and end >= 0 else None


def _plain_card(repo_id: str, license: str, usage: str, tags: list[str]) -> ModelCard:
    """The card of a model that is not a run's: metadata and how to load it."""
    data = ModelCardData(library_name="transformers", pipeline_tag="text-generation", license=license or None,
                         tags=["hfgpt", "causal-lm", *tags])
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n# {repo_id.rpartition('/')[2]}\n\n{usage}")


def _model_type(folder: Path) -> str:
    return json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type", "")
