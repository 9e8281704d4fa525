"""`hfgpt generate MODEL`: sample text from a run or a saved model, with the KV cache."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def generate(argv: Sequence[str]) -> None:
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
