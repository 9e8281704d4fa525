"""The `hfgpt` command: finds the command (hfgpt/commands/) and runs it; `--version`, `--help`.

User mistakes (`HfGptError`) print one paragraph and exit with status 2, without a traceback.
A run stopped by SIGTERM/SIGINT checkpoints and exits with status 0; its run.json says "interrupted".
"""

from __future__ import annotations

import difflib
import gc
import os
import platform
import sys
import warnings
from collections.abc import Sequence
from importlib import import_module, metadata
from typing import NoReturn

from .errors import HfGptError

USAGE = """usage: hfgpt COMMAND ...

commands:
  train [flags]            train a new model (hfgpt train --help lists every flag)
  continue RUN_DIR [flags] resume a run from its newest complete checkpoint, exactly where it stopped (or a Hub
                           id pushed with its checkpoints)
  fork SOURCE [flags]      a new run from a run, checkpoint, save_pretrained folder or Hub id's weights
  generate MODEL [opts]    sample text from a run directory, a saved model folder or a Hub id
  eval MODEL --data FILE   loss, perplexity, accuracy and bits per byte of a model on a text (or --dataset ID)
  plot RUN [RUN ...]       plot the loss, learning rate and throughput of runs into a PNG
  runs [RUNDIR]            list the runs: status, steps, best validation loss, tokens, time
  push SOURCE --repo-id ID upload a run's model (and --include-checkpoints) to the Hugging Face Hub
  export SOURCE --to T     a stock GPT-2 or Llama folder, or a GGUF file for llama.cpp (--output PATH)

  hfgpt COMMAND --help     the options of one command; hfgpt --version: the versions in use
"""


# name -> (module under hfgpt.commands, function): imported only when the command runs
COMMANDS = {"train": ("train", "train"), "continue": ("train", "continue_run"), "fork": ("train", "fork"),
            "generate": ("generate", "generate"), "eval": ("evaluate", "evaluate_command"), "plot": ("plot", "plot"),
            "runs": ("runs", "runs"), "push": ("push", "push"),
            "export": ("export", "export_command")}


# Line breaks that a typed path or value may hold, shown escaped so that an error stays one paragraph.
_LINE_BREAKS = str.maketrans({ch: repr(ch)[1:-1] for ch in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"hfgpt: warning: {message}\n"


def version_line() -> str:
    """hfgpt's version and those of the stack it runs on, read from package metadata (nothing is imported)."""
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"
    stack = ", ".join(f"{name} {version(name)}" for name in ("torch", "transformers", "accelerate", "datasets"))
    return f"hfgpt {version('hfgpt')} ({stack}, python {platform.python_version()})"


def _unknown_command(name: str) -> str:
    close = difflib.get_close_matches(name, list(COMMANDS), n=1, cutoff=0.5)
    hint = f" Did you mean `hfgpt {close[0]}`?" if close else ""
    return (f"unknown command {name!r}.{hint} The commands are {', '.join(COMMANDS)}; `hfgpt --help` says what "
            "each does.")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == "--version":
        print(version_line())
        return 0
    if argv[0] not in COMMANDS:
        print(f"hfgpt: error: {_unknown_command(argv[0])}", file=sys.stderr)
        return 2
    warnings.formatwarning = _one_line_warning
    # DeepSpeed still calls collectives that torch has renamed; that is not the user's to fix.
    warnings.filterwarnings("ignore", message=r"`torch\.distributed\.\w+` is deprecated")
    try:
        module, function = COMMANDS[argv[0]]
        getattr(import_module(f"hfgpt.commands.{module}"), function)(argv[1:])
    except HfGptError as error:
        if os.environ.get("RANK", "0") == "0":
            print(f"hfgpt: error: {str(error).translate(_LINE_BREAKS)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `hfgpt train --help | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


def end_process(code: int) -> NoReturn:
    """Leave the process with `code`, as the `hfgpt` command and recipes/train.py end. What is still alive dies with
    the process: frozen, it is spared the interpreter's collections at exit, which walked the ~450,000 objects of
    a training run's imports and took 1.2 s of each process's exit on a 2-core machine."""
    gc.freeze()
    sys.exit(code)


def console() -> NoReturn:
    """The `hfgpt` command."""
    end_process(main())


if __name__ == "__main__":
    console()
