"""Training throughput of hfgpt's loop against plain PyTorch loops, in one run.

    python benchmarks/train_throughput.py [--data PATH] [--steps N] [--device cpu|cuda]

(a) hfgpt's accelerate loop (metrics, logging, evaluation and checkpoint only at the end),
(b) a minimal PyTorch loop over the same HfGptForCausalLM, and
(c) the same minimal loop over transformers' GPT2LMHeadModel of equal shape,
all on the same packed data and batch shape. Prints tokens/s of each and the ratios to (b).
The first `--warmup` steps of every contender are not timed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from hfgpt.config import TrainConfig
from hfgpt.data.batches import fetch_blocks
from hfgpt.data.prepare import prepare_data
from hfgpt.training.setup import build_model
from hfgpt.training.trainer import train

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def benchmark_config(args: argparse.Namespace, rundir: str) -> TrainConfig:
    cfg = TrainConfig()
    cfg.model.num_hidden_layers, cfg.model.num_attention_heads = args.layers, args.heads
    cfg.model.hidden_size, cfg.model.max_position_embeddings = args.dim, args.seq
    cfg.data.train = str(args.data) if args.data else ""
    cfg.data.tokenizer = "char"
    cfg.training.max_steps, cfg.training.batch_size = args.warmup + args.steps, args.batch
    cfg.training.device, cfg.training.eval_every, cfg.training.eval_batches = args.device, 0, 1
    cfg.logging.log_every, cfg.logging.trackers = args.warmup, ["none"]
    cfg.logging.progress_bar, cfg.logging.sample_tokens = False, 0
    cfg.run.rundir, cfg.run.run_name, cfg.checkpoint.ckpt_every = rundir, "bench", 0
    return cfg.validate()


def hfgpt_loop(cfg: TrainConfig, warmup: int) -> float:
    """Tokens/s of hfgpt's own loop, read from its train_log.jsonl after the warmup window."""
    run_dir = train(cfg)
    records = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    timed = [r for r in records if r["split"] == "train" and r["step"] > warmup]
    steps = [r["step"] - p["step"] for p, r in zip([{"step": warmup}, *timed[:-1]], timed, strict=True)]
    seconds = sum(n * r["ms_per_step"] / 1000 for n, r in zip(steps, timed, strict=True))
    return sum(steps) * cfg.training.batch_size * cfg.seq_len / seconds


def plain_loop(model: torch.nn.Module, cfg: TrainConfig, data, warmup: int, steps: int, device: str) -> float:
    """Tokens/s of the shortest honest loop: forward, backward, clip, AdamW step."""
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.training.lr, betas=(0.9, 0.95))
    rng = np.random.default_rng(0)
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        ids = rng.integers(0, len(data.train), cfg.training.batch_size)
        batch = {k: v.to(device) for k, v in fetch_blocks(data.train, ids, data.tokenizer.pad_token_id).items()}
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * cfg.training.batch_size * cfg.seq_len / (time.perf_counter() - start)


def gpt2_of_equal_shape(cfg: TrainConfig, vocab_size: int) -> GPT2LMHeadModel:
    config = GPT2Config(vocab_size=vocab_size, n_positions=cfg.model.max_position_embeddings,
                        n_embd=cfg.model.hidden_size, n_layer=cfg.model.num_hidden_layers,
                        n_head=cfg.model.num_attention_heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHAKESPEARE if SHAKESPEARE.is_file() else None)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as rundir:
        cfg = benchmark_config(args, rundir)
        data = prepare_data(cfg.data, cfg.seq_len, log=lambda message: None)
        results = {"(a) hfgpt loop": hfgpt_loop(cfg, args.warmup)}
    torch.manual_seed(cfg.training.seed)
    results["(b) plain loop, HfGpt"] = plain_loop(build_model(cfg, data.tokenizer), cfg, data,
                                                  args.warmup, args.steps, args.device)
    torch.manual_seed(cfg.training.seed)
    results["(c) plain loop, GPT2LMHeadModel"] = plain_loop(gpt2_of_equal_shape(cfg, len(data.tokenizer)), cfg,
                                                            data, args.warmup, args.steps, args.device)

    print(f"\n{args.layers} layers, {args.heads} heads, dim {args.dim}, context {args.seq}, batch {args.batch}, "
          f"char vocab {len(data.tokenizer)}, {args.steps} timed steps after {args.warmup}, "
          f"device {args.device}, {torch.get_num_threads()} threads")
    reference = results["(b) plain loop, HfGpt"]
    print(f"{'contender':<34}{'tokens/s':>12}{'ratio to (b)':>15}")
    for name, tokens_per_s in results.items():
        print(f"{name:<34}{tokens_per_s:>12,.0f}{tokens_per_s / reference:>15.3f}")


if __name__ == "__main__":
    main()
