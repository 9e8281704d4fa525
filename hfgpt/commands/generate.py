"""`hfgpt generate MODEL`: sample text from a run or a saved model, with the KV cache."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..config.fields import NOT_NEGATIVE, Bounds
from ..errors import HfGptError

# The sampling settings' valid values: --help shows them, and anything else is refused before the model loads.
BOUNDS = {"max_new_tokens": Bounds(low=1), "temperature": NOT_NEGATIVE, "top_k": NOT_NEGATIVE,
          "top_p": Bounds(low=0, high=1, low_open=True), "num_samples": Bounds(low=1)}


class _ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default in --help, as `hfgpt train --help` shows them, unless its help words it already."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if "default" in (action.help or "") else super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hfgpt generate", description="Sample text with the KV cache.",
                                     formatter_class=_ShowDefaults)
    parser.add_argument("model", help="a run directory (its final/, else best/, else newest checkpoint), one "
                                      "checkpoint, any save_pretrained folder, or a Hub id")
    parser.add_argument("--prompt", default="\n", help="text to continue; default: a newline")
    sampling = {"max_new_tokens": (int, 200, "tokens to generate after the prompt"),
                "temperature": (float, 0.8, "0 decodes greedily"),
                "top_k": (int, 0, "keep the k likeliest tokens; 0 keeps all"),
                "top_p": (float, 1.0, "nucleus sampling: keep the likeliest tokens that make up this share of "
                                      "the probability; 1 keeps all"),
                "num_samples": (int, 1, "samples to print, each with its own seed (--seed, --seed + 1, ...)")}
    for name, (kind, default, text) in sampling.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default,
                            help=f"{text}; {BOUNDS[name].describe()}")
    parser.add_argument("--seed", type=int, default=None, help="makes the samples reproducible; default: none")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="auto: cuda where there is a GPU, else cpu")
    return parser


def generate(argv: Sequence[str]) -> None:
    args = _parser().parse_args(argv)
    problems = [f"--{name.replace('_', '-')} {BOUNDS[name].describe()}, got {getattr(args, name)}"
                for name in BOUNDS if not BOUNDS[name].allows(getattr(args, name))]
    if problems:
        raise HfGptError(f"Invalid sampling settings: {'; '.join(problems)}. `hfgpt generate --help` shows each "
                         "setting's range.")

    from ..console import quiet_libraries
    from ..inference.generation import generate_text, load_model, pick_device

    quiet_libraries()
    model, tokenizer, origin = load_model(args.model, pick_device(args.device))
    print(f"generating from {origin}", file=sys.stderr)
    for index in range(args.num_samples):
        if index:
            print("-" * 40)
        print(generate_text(model, tokenizer, args.prompt, args.max_new_tokens, args.temperature,
                            args.top_k, args.top_p, None if args.seed is None else args.seed + index))
