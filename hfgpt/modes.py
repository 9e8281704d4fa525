"""The three ways to start training: `train` a new run, `continue` one, or `fork` a new run from one.

Each mode turns its command line into a `RunSetup` for `hfgpt.trainer.run`. `continue` keeps the
run's math (model, tokenizer, data, batch, seed, schedule shape) and refuses a change to it by name;
`fork` takes a saved model's weights and tokenizer and starts a fresh optimizer and schedule.
"""

from __future__ import annotations

import dataclasses
import tomllib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import (
    AutoConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from .config import ModelSection, TrainConfig
from .config_sources import FIELDS, USAGES, build_config, config_from_dict, config_values, flag_of
from .errors import HfGptError
from .models.hfgpt import HfGptConfig
from .rundir import ARCHITECTURE, CONFIG, TOKENIZER
from .saved_models import load_saved, load_saved_model
from .tokenization import ensure_pad_token

# What `continue` may change: how long to train, how to log, save and evaluate, where the data is
# (the data itself is checked by fingerprint), and the peak learning rate (with a warning).
CONTINUE_MAY_CHANGE = frozenset({
    "max_steps", "lr", "lr_head", "log_every", "log_samples", "trackers", "progress_bar", "sample_prompt",
    "sample_tokens",
    "ckpt_every", "keep_last", "save_best", "eval_every", "eval_batches", "early_stopping", "patience",
    "early_stopping_min_delta", "max_bad_steps", "stop_at_step", "deterministic", "cpu_threads", "device",
    "num_proc", "cache_dir", "datadir", "train", "valid", "meta", "rundir", "run_name",
})
_ONE_OFF = ("stop_at_step", "reset", "overwrite")  # switches for one launch, not part of a run
# RUN_DIR says where a continued run is: the place saved in its config is neither kept nor checked again
# (a run named before run names had rules still continues).
_PLACE = ("rundir", "run_name")


@dataclass
class RunSetup:
    """What `hfgpt.trainer.run` needs besides the config; None where the mode builds it afresh."""

    mode: str  # train, continue or fork
    cfg: TrainConfig
    run_dir: Path | None = None  # continue: the run being continued
    tokenizer: PreTrainedTokenizerFast | None = None  # continue, fork: the tokenizer to keep
    model_config: PretrainedConfig | None = None  # continue: the architecture to rebuild
    model: PreTrainedModel | None = None  # fork: the model whose weights the run starts from
    parent: dict[str, Any] | None = None  # fork: where the weights came from


def train_setup(argv: Sequence[str]) -> RunSetup:
    return RunSetup("train", build_config(argv, "hfgpt train"))


def _positional(argv: Sequence[str], mode: str, what: str) -> tuple[str, list[str]]:
    if not argv or argv[0] in ("-h", "--help"):
        if argv:
            build_config(argv, f"hfgpt {mode}", usage=USAGES[mode])
        raise HfGptError(f"hfgpt {mode} needs {what} as its first argument: {USAGES[mode][7:]}")
    return argv[0], list(argv[1:])


def _present(path: Path, folder: bool) -> bool:
    """Whether `path` is there as a file or folder; one the OS cannot even look up (a name too long) is not."""
    try:
        return path.is_dir() if folder else path.is_file()
    except OSError:
        return False


def continue_setup(argv: Sequence[str]) -> RunSetup:
    """`continue RUN_DIR [flags]`: the run's saved config, with the flags that may change applied."""
    where, flags = _positional(argv, "continue", "the run directory to continue")
    run_dir = Path(where)
    config_file = run_dir / CONFIG
    missing = [name for name, present in ((CONFIG, _present(config_file, folder=False)),
                                          (f"{TOKENIZER}/", _present(run_dir / TOKENIZER, folder=True))) if not present]
    if missing:
        raise HfGptError(
            f"{run_dir} is not an hfgpt run directory (it has no {' and no '.join(missing)}). `hfgpt continue` "
            "takes the folder that `hfgpt train` made, <rundir>/<run-name>; to train on from a saved model "
            "instead, start a new run with `hfgpt fork SOURCE`.")
    try:
        saved = config_from_dict(tomllib.loads(config_file.read_text(encoding="utf-8")), str(config_file))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise HfGptError(f"{config_file} is not valid TOML ({error}); restore it from a copy.") from None
    base = {name: value for name, value in config_values(saved).items() if name not in _ONE_OFF + _PLACE}
    cfg = build_config(flags, "hfgpt continue", base=base, usage=USAGES["continue"])
    cfg.checkpoint.rundir, cfg.checkpoint.run_name = str(run_dir.parent), run_dir.name
    changes = {name: (base.get(name, FIELDS[name].default), value)
               for name, value in config_values(cfg).items() if value != base.get(name, FIELDS[name].default)}
    allowed = CONTINUE_MAY_CHANGE | set(_ONE_OFF)
    refused = {name: change for name, change in changes.items() if name not in allowed}
    if refused:
        listed = ", ".join(f"{flag_of(name)} ({old!r} -> {new!r})" for name, (old, new) in refused.items())
        forked = " ".join(f"{flag_of(name)} {new}" for name, (_, new) in refused.items())
        raise HfGptError(
            f"`hfgpt continue` cannot change {listed}: that would change the math of the run in {run_dir}, "
            "so it would no longer be the same run. Continue without it, or start a new run from this one's "
            f"weights: hfgpt fork {run_dir} {forked}")
    for name in ("lr", "lr_head"):
        if name in changes:
            old, new = changes[name]
            warnings.warn(f"{flag_of(name)} changes from {old} to {new}: the schedule goes on from the checkpoint's "
                          "step with the new peak rate, so this run no longer matches an uninterrupted one.",
                          stacklevel=2)
    architecture = run_dir / ARCHITECTURE
    return RunSetup(
        "continue", cfg, run_dir=run_dir, tokenizer=load_saved(PreTrainedTokenizerFast, run_dir / TOKENIZER),
        model_config=load_saved(AutoConfig, architecture) if (architecture / "config.json").is_file() else None,
    )


def fork_setup(argv: Sequence[str]) -> RunSetup:
    """`fork SOURCE [flags]`: a new run (fresh optimizer and schedule) from SOURCE's weights and tokenizer."""
    source, flags = _positional(argv, "fork", "the model to start from (a run, a checkpoint, a folder or a Hub id)")
    cfg = build_config(flags, "hfgpt fork", usage=USAGES["fork"])
    model, tokenizer, parent = load_saved_model(source, "fork from")
    if tokenizer.eos_token_id is None:
        raise HfGptError(f"The tokenizer of {source} has no end-of-text token, which hfgpt puts between "
                         "documents; give it one (tokenizer.eos_token) and save it again.")
    if ensure_pad_token(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
        model.config.pad_token_id = tokenizer.pad_token_id
    if isinstance(model.config, HfGptConfig):
        cfg.model = _model_section(model.config, cfg.model)
    context = getattr(model.config, "max_position_embeddings", None)
    if context is not None and cfg.seq_len > context:
        raise HfGptError(f"--seq-len {cfg.seq_len} is longer than the context of {source} ({context} tokens); "
                         f"use --seq-len {context} or less.")
    if cfg.data.seq_len == 0 and context is not None:
        cfg.data.seq_len = min(context, cfg.model.max_position_embeddings)
    return RunSetup("fork", cfg.validate(), tokenizer=tokenizer, model=model, parent=parent)


def _model_section(config: HfGptConfig, asked: ModelSection) -> ModelSection:
    """The model section that describes `config`; a different shape asked for on the command line is ignored."""
    shape = {f.name: getattr(config, f.name) for f in dataclasses.fields(ModelSection) if hasattr(config, f.name)}
    ignored = [name for name, value in shape.items() if getattr(asked, name) not in (value, FIELDS[name].default)]
    if ignored:
        warnings.warn(f"fork takes the model from its source, so {', '.join(map(flag_of, ignored))} "
                      "is ignored.", stacklevel=3)
    return dataclasses.replace(asked, **shape)
