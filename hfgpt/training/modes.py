"""The three ways to start training: `train` a new run, `continue` one, or `fork` a new run from one.

Each mode turns its command line into a `RunSetup` for `hfgpt.training.trainer.run`. `continue` keeps the
run's math (model, tokenizer, data, batch, seed, schedule shape) and refuses a change to it by name (each
setting's `on_continue` rule, checked by `hfgpt.runs.state.check_same_run`);
`fork` takes a saved model's weights and tokenizer and starts a fresh optimizer and schedule.
"""

from __future__ import annotations

import dataclasses
import tomllib
import warnings
from collections.abc import Sequence
from pathlib import Path

from transformers import (
    AutoConfig,
    PreTrainedTokenizerFast,
)

from ..config import (
    FIELDS,
    USAGES,
    ModelSection,
    build_config,
    build_config_with_derivation,
    config_values,
    flag_of,
    saved_run_config,
)
from ..data.ready_tokenizer import load_ready_tokenizer
from ..data.tokenization import TOKENIZER_KINDS, ensure_pad_token
from ..errors import HfGptError
from ..models.hfgpt import HfGptConfig
from ..runs.rundir import ARCHITECTURE, CONFIG, TOKENIZER
from ..runs.saved_models import load_saved, load_saved_model
from ..runs.state import check_same_run
from .setup import RunSetup


def train_setup(argv: Sequence[str]) -> RunSetup:
    cfg, derived = build_config_with_derivation(argv, "hfgpt train")
    ready = cfg.data.tokenizer not in TOKENIZER_KINDS  # a tokenizer.json, a folder or a Hub id: loaded now
    return RunSetup("train", cfg, tokenizer=load_ready_tokenizer(cfg.data.tokenizer, cfg.data.tokensdir) if ready
                    else None, derived=tuple(derived))


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
    if not _present(run_dir, folder=True):
        raise HfGptError(f"{run_dir} {'is a file' if _present(run_dir, folder=False) else 'does not exist'}. `hfgpt "
                         "continue` takes the run directory that `hfgpt train` made, <rundir>/<run-name> (`hfgpt runs` "
                         "lists them), or the Hub id of a run pushed with its checkpoints.")
    config_file = run_dir / CONFIG
    missing = [name for name, present in ((CONFIG, _present(config_file, folder=False)),
                                          (f"{TOKENIZER}/", _present(run_dir / TOKENIZER, folder=True))) if not present]
    if missing:
        raise HfGptError(
            f"{run_dir} is not an hfgpt run directory (it has no {' and no '.join(missing)}). `hfgpt continue` "
            "takes the folder that `hfgpt train` made, <rundir>/<run-name>; to train on from a saved model "
            "instead, start a new run with `hfgpt fork SOURCE`.")
    try:
        saved = saved_run_config(tomllib.loads(config_file.read_text(encoding="utf-8")), str(config_file))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise HfGptError(f"{config_file} is not valid TOML ({error}); restore it from a copy.") from None
    # Settings that hold for one launch only (--stop-at-step, --reset, the run's place) are not carried over.
    base = {name: value for name, value in config_values(saved).items() if FIELDS[name].rules.on_continue != "launch"}
    cfg = build_config(flags, "hfgpt continue", base=base, usage=USAGES["continue"])
    cfg.run.rundir, cfg.run.run_name = str(run_dir.parent), run_dir.name
    now = config_values(cfg)
    check_same_run(run_dir, settings=(base, now))
    for name in (name for name in base if FIELDS[name].rules.on_continue == "warn" and base[name] != now[name]):
        warnings.warn(f"{flag_of(name)} changes from {base[name]} to {now[name]}: the schedule goes on from the "
                      "checkpoint's step with the new peak rate, so this run no longer matches an uninterrupted one.",
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
    if cfg.model.depth:
        raise HfGptError(f"--depth {cfg.model.depth} derives a new model's size and training, but fork takes its "
                         f"model from {source}; give the steps, batch and learning rate as flags instead.")
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
    shape = {name: 0 if value is None else value for name, value in shape.items()}  # None: derived, spelled 0
    ignored = [name for name, value in shape.items() if getattr(asked, name) not in (value, FIELDS[name].default)]
    if ignored:
        warnings.warn(f"fork takes the model from its source, so {', '.join(map(flag_of, ignored))} "
                      "is ignored.", stacklevel=3)
    return dataclasses.replace(asked, **shape)
