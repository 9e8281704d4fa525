"""Train from Python instead of the command line, then sample from the result.

    python examples/train_as_library.py [path/to/text.txt] [--any-hfgpt-flag VALUE ...]

Without a text file it trains on the default corpus (the Python standard library); extra flags override the
shakespeare-char preset's settings, as on the command line.
"""

import sys

from hfgpt.config import build_config
from hfgpt.inference.generation import generate_text, load_model
from hfgpt.training.trainer import train

if __name__ == "__main__":
    data = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else ""
    flags = sys.argv[2:] if data else sys.argv[1:]
    cfg = build_config(["--config", "shakespeare-char", "--data-path", data, "--max-steps", "300",
                        "--rundir", "runs/examples", *flags])
    run_dir = train(cfg)
    model, tokenizer, origin = load_model(run_dir)
    print(f"sampling from {origin}:")
    print(generate_text(model, tokenizer, prompt="\n", max_new_tokens=300, temperature=0.8, top_k=40))
