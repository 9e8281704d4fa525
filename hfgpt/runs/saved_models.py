"""Where a trained model is to be found: a run directory (its final/, else best/, else its newest good
checkpoint), one checkpoint of a run, any `save_pretrained` folder, or a Hub id. `fork` starts from it
and `hfgpt generate` samples from it, so a run can be sampled while it is still training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import load_model
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerFast

from ..errors import HfGptError, error_summary
from .checkpoint import checkpoint_problem, checkpoint_step, complete_checkpoints
from .model_folders import EXPORTS
from .rundir import ARCHITECTURE, CONFIG, TOKENIZER


def load_saved_model(source: str, purpose: str) -> tuple[PreTrainedModel, PreTrainedTokenizerFast, dict[str, Any]]:
    """The model and tokenizer at `source`, and where they came from ({"source", "run", "step"}); `purpose`
    ("fork from", "generate from") words the errors."""
    path = Path(source)
    if is_run_dir(path):
        saved = final_or_best(path)
        if saved is not None:
            return *_from_pretrained(str(saved)), {"source": str(saved.resolve()), "run": str(path.resolve())}
        usable = [c for c in reversed(complete_checkpoints(path)) if not checkpoint_problem(c)]
        if not usable:
            raise HfGptError(f"The run {path} has no final/, no best/ and no complete checkpoint to {purpose}.")
        path = usable[0]
    if (path / "trainer_state.json").is_file() and path.parent.name == "checkpoints":  # one checkpoint
        return _from_checkpoint(path, purpose)
    try:
        return *_from_pretrained(source), {"source": str(path.resolve()) if path.exists() else source}
    except (OSError, ValueError) as error:
        raise HfGptError(
            f"Cannot load a model to {purpose} {source!r} ({str(error).splitlines()[0]}). Give a run directory, "
            "one of its checkpoints, a save_pretrained folder, or a Hub model id (which needs the internet "
            "once).") from None


def is_run_dir(path: Path) -> bool:
    """Whether `path` is a run directory: it has the config.toml and tokenizer/ that every run writes first."""
    return (path / CONFIG).is_file() and (path / TOKENIZER).is_dir()


def final_or_best(run_dir: Path) -> Path | None:
    """The run's final/ model folder, else its best/, else None (neither written yet)."""
    return next((run_dir / name for name in EXPORTS if (run_dir / name / "config.json").is_file()), None)


def saved_model_folder(source: Path, purpose: str) -> Path:
    """The save_pretrained folder of `source`: a run directory's final/ (else its best/), or `source` itself when
    it is such a folder; `purpose` ("push", "export") words the errors."""
    if is_run_dir(source):
        saved = final_or_best(source)
        if saved is not None:
            return saved
        raise HfGptError(f"The run {source} has no final/ and no best/ model to {purpose} yet; let it train to its "
                         "end (or its first evaluation).")
    if (source / "config.json").is_file():
        return source
    if not source.exists():
        raise HfGptError(f"{source} does not exist; give a run directory, its final/ or best/, or any save_pretrained "
                         "folder.")
    raise HfGptError(f"{source} is neither an hfgpt run directory nor a saved model folder (no config.json); give a "
                     "run directory, its final/ or best/, or any save_pretrained folder.")


def load_saved(loader: Any, folder: Path) -> Any:
    """`loader.from_pretrained(folder)` for a folder a run saved at its start; a damaged one is named."""
    try:
        return loader.from_pretrained(folder)
    except Exception as error:  # tokenizers raises a bare Exception for a malformed tokenizer.json
        raise HfGptError(
            f"{folder} cannot be loaded ({error_summary(error)}); the run "
            f"saved it at its start and it has been damaged since. Restore it from a copy: the run's final/ and "
            "best/ folders hold the same tokenizer files and config.json.") from None


def _from_pretrained(source: str) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    return AutoModelForCausalLM.from_pretrained(source), AutoTokenizer.from_pretrained(source)


def _from_checkpoint(folder: Path, purpose: str) -> tuple[PreTrainedModel, PreTrainedTokenizerFast, dict[str, Any]]:
    problem = checkpoint_problem(folder)
    run_dir = folder.parent.parent
    if problem:
        raise HfGptError(f"Cannot {purpose} the checkpoint {folder}: {problem}. Pick another checkpoint of "
                         f"{run_dir}, or the run itself to use its newest good one.")
    weights = folder / "model.safetensors"
    if not weights.is_file() or not (run_dir / ARCHITECTURE / "config.json").is_file():
        raise HfGptError(f"The checkpoint {folder} holds no model.safetensors (a DeepSpeed checkpoint keeps "
                         f"sharded weights) or its run has no {ARCHITECTURE}/; {purpose} {run_dir / 'final'} "
                         "or best/ instead.")
    model = AutoModelForCausalLM.from_config(load_saved(AutoConfig, run_dir / ARCHITECTURE))
    load_model(model, weights)
    tokenizer = load_saved(PreTrainedTokenizerFast, run_dir / TOKENIZER)
    return model, tokenizer, {"source": str(folder.resolve()), "run": str(run_dir.resolve()),
                              "step": checkpoint_step(folder)}
