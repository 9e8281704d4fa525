"""Train from Python instead of the command line, then sample from the result.

    python examples/train_as_library.py path/to/text.txt
"""

import sys

from hfgpt.config_sources import build_config
from hfgpt.generation import generate_text, load_model
from hfgpt.trainer import train

if __name__ == "__main__":
    data = sys.argv[1] if len(sys.argv) > 1 else ""  # empty: the default standard-library corpus
    cfg = build_config(["--config", "shakespeare-char", "--data-path", data, "--max-steps", "300",
                        "--rundir", "runs/examples"])
    run_dir = train(cfg)
    model, tokenizer = load_model(run_dir)
    print(generate_text(model, tokenizer, prompt="\n", max_new_tokens=300, temperature=0.8, top_k=40))
