"""Training throughput of hfgpt's loop against plain PyTorch loops, in one run.

    python benchmarks/train_throughput.py [--data PATH] [--steps N] [--device cpu|cuda] [--preset NAME]

(a) the shipped preset (`shakespeare-char`: its shape, batch and whatever it and the defaults pick: precision
    auto, the optimizer kernel) through hfgpt's whole accelerate loop (metrics, logging; no evaluation, one
    checkpoint at the end),
(a') the same loop pinned to fp32 and the foreach optimizer,
(b) a minimal fp32 eager PyTorch loop over the same HfGptForCausalLM (forward, backward, clip, AdamW), and
(c) the same minimal loop over transformers' GPT2LMHeadModel of equal shape,
all on the same packed data and batch shape. Prints tokens/s of each and the ratios to (b); the last line is the
shipped fast path against the plain fp32 eager loop. The first `--warmup` steps of every contender are untimed.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from hfgpt.config import TrainConfig, config_from_dict
from hfgpt.data.batches import fetch_blocks
from hfgpt.data.prepare import prepare_data
from hfgpt.training.modes import train_setup
from hfgpt.training.setup import build_model
from hfgpt.training.trainer import run

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def benchmark_flags(args: argparse.Namespace, rundir: str, name: str, *extra: str) -> list[str]:
    return ["--config", args.preset, "--max-steps", str(args.warmup + args.steps), "--eval-every", "0",
            "--log-every", str(args.warmup), "--trackers", "none", "--no-progress-bar", "--sample-tokens", "0",
            "--ckpt-every", "0", "--device", args.device, "--rundir", rundir, "--run-name", name,
            *(["--data-path", str(args.data)] if args.data else []), *extra]


def hfgpt_loop(flags: list[str], warmup: int) -> tuple[float, TrainConfig]:
    """Tokens/s of hfgpt's own loop, read from its train_log.jsonl after the warmup window; and the config the
    run saved (with precision auto resolved)."""
    run_dir = run(train_setup(flags))
    records = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    timed = [r for r in records if r["split"] == "train" and r["step"] > warmup]
    steps = [r["step"] - p["step"] for p, r in zip([{"step": warmup}, *timed[:-1]], timed, strict=True)]
    seconds = sum(n * r["ms_per_step"] / 1000 for n, r in zip(steps, timed, strict=True))
    cfg = config_from_dict(tomllib.loads((run_dir / "config.toml").read_text()), "config.toml")
    return sum(steps) * cfg.training.batch_size * cfg.seq_len / seconds, cfg


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
    parser.add_argument("--preset", default="shakespeare-char")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as rundir:
        shipped, cfg = hfgpt_loop(benchmark_flags(args, rundir, "shipped"), args.warmup)
        fp32, _ = hfgpt_loop(benchmark_flags(args, rundir, "fp32", "--precision", "fp32", "--optimizer-kernel",
                                             "foreach"), args.warmup)
        data = prepare_data(cfg.data, cfg.seq_len, log=lambda message: None)
    t = cfg.training
    attention = cfg.model.attn_implementation
    cfg.model.attn_implementation = "sdpa"  # the plain loops: the fastest fp32 kernel, as a user would write them
    results = {f"(a) hfgpt, shipped ({t.precision}, {attention}, {t.optimizer_kernel}"
               f"{', compiled' if t.compile else ''})": shipped,
               "(a') hfgpt, fp32 foreach": fp32}
    torch.manual_seed(cfg.training.seed)
    results["(b) plain fp32 eager loop, HfGpt"] = plain_loop(build_model(cfg, data.tokenizer), cfg, data,
                                                             args.warmup, args.steps, args.device)
    torch.manual_seed(cfg.training.seed)
    results["(c) plain loop, GPT2LMHeadModel"] = plain_loop(gpt2_of_equal_shape(cfg, len(data.tokenizer)), cfg,
                                                            data, args.warmup, args.steps, args.device)
    m = cfg.model
    print(f"\n{args.preset}: {m.num_hidden_layers} layers, {m.num_attention_heads} heads, dim {m.hidden_size}, "
          f"context {cfg.seq_len}, batch {cfg.training.batch_size}, char vocab {len(data.tokenizer)}, {args.steps} "
          f"timed steps after {args.warmup}, device {args.device}, {torch.get_num_threads()} threads, load "
          f"{os.getloadavg()[0]:.2f}")
    reference = results["(b) plain fp32 eager loop, HfGpt"]
    print(f"{'contender':<46}{'tokens/s':>12}{'ratio to (b)':>15}")
    for name, tokens_per_s in results.items():
        print(f"{name:<46}{tokens_per_s:>12,.0f}{tokens_per_s / reference:>15.3f}")
    print(f"shipped fast path vs plain fp32 eager loop: {shipped / reference:.2f}x")


if __name__ == "__main__":
    main()
