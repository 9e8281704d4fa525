"""The `hfgpt` command: `train`, `continue RUN_DIR`, `fork SOURCE` and `generate MODEL --prompt TEXT`.

User mistakes (`HfGptError`) print one paragraph and exit with status 2, without a traceback.
A run stopped by SIGTERM/SIGINT checkpoints and exits with status 0; its run.json says "interrupted".
"""

from __future__ import annotations

import argparse
import difflib
import os
import platform
import sys
import warnings
from collections.abc import Sequence
from importlib import metadata

from .errors import HfGptError

USAGE = """usage: hfgpt COMMAND ...

commands:
  train [flags]            train a new model (hfgpt train --help lists every flag)
  continue RUN_DIR [flags] resume a run from its newest complete checkpoint, exactly where it stopped
  fork SOURCE [flags]      a new run from a run, checkpoint, save_pretrained folder or Hub id's weights
  generate MODEL [opts]    sample text from a run directory or a saved model folder

  hfgpt COMMAND --help     the options of one command; hfgpt --version: the versions in use
"""


def _training(mode: str):
    def start(argv: Sequence[str]) -> None:
        if "-h" in argv or "--help" in argv:  # the flag reference needs the config schema only, not torch
            from .config_sources import USAGES, format_help

            print(format_help(f"hfgpt {mode}", USAGES[mode]))
            return
        from . import modes
        from .trainer import run

        run(getattr(modes, f"{mode}_setup")(argv))
    return start


def _generate(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="hfgpt generate", description="Sample text with the KV cache.")
    parser.add_argument("model", help="a run directory (its final/, else best/, else newest checkpoint), one "
                                         "checkpoint, any save_pretrained folder, or a Hub id")
    parser.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 means greedy decoding")
    parser.add_argument("--top-k", type=int, default=0, help="keep the k likeliest tokens; 0 keeps all")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling threshold")
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="auto: cuda where there is a GPU, else cpu")
    args = parser.parse_args(argv)

    from .console import quiet_libraries
    from .generation import generate_text, load_model, pick_device

    quiet_libraries()
    model, tokenizer, origin = load_model(args.model, pick_device(args.device))
    print(f"generating from {origin}", file=sys.stderr)
    for index in range(args.num_samples):
        if index:
            print("-" * 40)
        print(generate_text(model, tokenizer, args.prompt, args.max_new_tokens, args.temperature,
                            args.top_k, args.top_p, None if args.seed is None else args.seed + index))


COMMANDS = {"train": _training("train"), "continue": _training("continue"), "fork": _training("fork"),
            "generate": _generate}


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
        COMMANDS[argv[0]](argv[1:])
    except HfGptError as error:
        if os.environ.get("RANK", "0") == "0":
            print(f"hfgpt: error: {str(error).translate(_LINE_BREAKS)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
