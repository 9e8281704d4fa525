"""Training throughput of hfgpt's loop against plain PyTorch loops, in one run.

    python benchmarks/train_throughput.py [--data PATH] [--steps N] [--device cpu|cuda] [--preset NAME]

(a) the shipped preset (`shakespeare-char`: its shape, batch and whatever it and the defaults pick: precision
    auto, the optimizer kernel) through hfgpt's whole accelerate loop (metrics, logging; no evaluation, one
    checkpoint at the end),
(a') the same loop pinned to fp32 and the foreach optimizer,
(a") on the CPU, the shipped loop without torch's deterministic algorithms, which hfgpt always uses there (what
    they cost: a compiled model's embedding gradients are then summed by aten's index_put_ instead of atomic adds),
(b) a minimal fp32 eager PyTorch loop over the same HfGptForCausalLM (forward, backward, clip, AdamW), and
(c) the same minimal loop over transformers' GPT2LMHeadModel of equal shape,
all on the same packed data and batch shape. The first `--warmup` steps of every contender are untimed.

A shared machine's speed drifts by 20% and more over a minute, so the contenders take turns: `--rounds` rounds,
each timing every contender once. Prints each contender's median tokens/s over the rounds, its range, and the
ratio of medians to (b); the last line is the shipped fast path against the plain fp32 eager loop.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import torch
from corpora import tinyshakespeare
from transformers import GPT2Config, GPT2LMHeadModel

from hfgpt.config import TrainConfig, config_from_dict
from hfgpt.data.batches import fetch_blocks
from hfgpt.data.prepare import prepare_data
from hfgpt.launch import torch_settings
from hfgpt.training.modes import train_setup
from hfgpt.training.setup import build_model
from hfgpt.training.trainer import run


def benchmark_flags(args: argparse.Namespace, rundir: str, name: str, *extra: str) -> list[str]:
    return ["--config", args.preset, "--max-steps", str(args.warmup + args.steps), "--eval-every", "0",
            "--log-every", str(args.warmup), "--trackers", "none", "--no-progress-bar", "--sample-tokens", "0",
            "--ckpt-every", "0", "--device", args.device, "--rundir", rundir, "--run-name", name,
            *(["--data-path", str(args.data)] if args.data else []), *extra]


@contextlib.contextmanager
def without_deterministic_algorithms():
    """hfgpt's runs as they would be without torch's deterministic algorithms (not an option hfgpt offers on the
    CPU, where they keep a run bitwise reproducible): to measure what they cost."""
    chosen = torch_settings.uses_deterministic_algorithms
    torch_settings.uses_deterministic_algorithms = lambda training, use_cpu: False
    try:
        yield
    finally:
        torch_settings.uses_deterministic_algorithms = chosen


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


class PlainLoop:
    """The shortest honest loop: forward, backward, clip, AdamW step. Each call times `steps` more steps of the
    same model and optimizer, after `warmup` untimed ones."""

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, data, device: str) -> None:
        self.model, self.cfg, self.data, self.device = model.to(device).train(), cfg, data, device
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.training.lr, betas=(0.9, 0.95))
        self.rng = np.random.default_rng(0)

    def __call__(self, warmup: int, steps: int) -> float:
        start = 0.0
        batch_size, data = self.cfg.training.batch_size, self.data
        for step in range(warmup + steps):
            if step == warmup:
                self._synchronize()
                start = time.perf_counter()
            ids = self.rng.integers(0, len(data.train), batch_size)
            batch = fetch_blocks(data.train, ids, data.tokenizer.pad_token_id)
            loss = self.model(**{k: v.to(self.device) for k, v in batch.items()}).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self._synchronize()
        return steps * batch_size * self.cfg.seq_len / (time.perf_counter() - start)

    def _synchronize(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()


def gpt2_of_equal_shape(cfg: TrainConfig, vocab_size: int) -> GPT2LMHeadModel:
    config = GPT2Config(vocab_size=vocab_size, n_positions=cfg.model.max_position_embeddings,
                        n_embd=cfg.model.hidden_size, n_layer=cfg.model.num_hidden_layers,
                        n_head=cfg.model.num_attention_heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=tinyshakespeare())
    parser.add_argument("--preset", default="shakespeare-char")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    rounds: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as rundir:
        for number in range(args.rounds):
            shipped, cfg = hfgpt_loop(benchmark_flags(args, rundir, f"shipped-{number}"), args.warmup)
            fp32, _ = hfgpt_loop(benchmark_flags(args, rundir, f"fp32-{number}", "--precision", "fp32",
                                                 "--optimizer-kernel", "foreach"), args.warmup)
            with without_deterministic_algorithms():
                nondeterministic = [hfgpt_loop(benchmark_flags(args, rundir, f"nondeterministic-{number}"),
                                               args.warmup)[0]] if args.device == "cpu" else []
            if not rounds:
                t = cfg.training
                shipped_name = (f"(a) hfgpt, shipped ({t.precision}, {cfg.model.attn_implementation}, "
                                f"{t.optimizer_kernel}{', compiled' if t.compile else ''})")
                plain = plain_contenders(cfg, args.device)
                rounds = {shipped_name: [], "(a') hfgpt, fp32 foreach": [],
                          **({NONDETERMINISTIC: []} if nondeterministic else {}), **{name: [] for name in plain}}
            results = [shipped, fp32, *nondeterministic, *(loop(args.warmup, args.steps) for loop in plain.values())]
            for times, tokens_per_s in zip(rounds.values(), results, strict=True):
                times.append(tokens_per_s)
            print(f"round {number + 1}/{args.rounds}: " + ", ".join(f"{x:,.0f}" for x in results) + " tokens/s")
    m = cfg.model
    print(f"\n{args.preset}: {m.num_hidden_layers} layers, {m.num_attention_heads} heads, dim {m.hidden_size}, "
          f"context {cfg.seq_len}, batch {cfg.training.batch_size}, {args.steps} timed steps after {args.warmup} "
          f"per contender and round, {args.rounds} rounds, device {args.device}, {torch.get_num_threads()} threads, "
          f"load {os.getloadavg()[0]:.2f}")
    medians = {name: statistics.median(times) for name, times in rounds.items()}
    reference = medians[PLAIN_FP32]
    print(f"{'contender':<46}{'median tokens/s':>16}{'range':>20}{'ratio to (b)':>15}")
    for name, times in rounds.items():
        print(f"{name:<46}{medians[name]:>16,.0f}{f'{min(times):,.0f}-{max(times):,.0f}':>20}"
              f"{medians[name] / reference:>15.3f}")
    shipped = next(iter(medians.values()))
    if NONDETERMINISTIC in medians:
        print(f"deterministic algorithms (shipped) vs without: {shipped / medians[NONDETERMINISTIC]:.2f}x")
    print(f"shipped fast path vs plain fp32 eager loop: {shipped / reference:.2f}x")


PLAIN_FP32 = "(b) plain fp32 eager loop, HfGpt"
NONDETERMINISTIC = '(a") hfgpt, shipped, nondeterministic'


def plain_contenders(cfg: TrainConfig, device: str) -> dict[str, PlainLoop]:
    """(b) and (c), each on its own copy of the packed data's model shape, seeded alike."""
    data = prepare_data(cfg.data, cfg.seq_len, log=lambda message: None)
    cfg.model.attn_implementation = "sdpa"  # the plain loops: the fastest fp32 kernel, as a user would write them
    torch.manual_seed(cfg.training.seed)
    hfgpt_model = build_model(cfg, data.tokenizer)
    torch.manual_seed(cfg.training.seed)
    return {PLAIN_FP32: PlainLoop(hfgpt_model, cfg, data, device),
            "(c) plain loop, GPT2LMHeadModel": PlainLoop(gpt2_of_equal_shape(cfg, len(data.tokenizer)), cfg, data,
                                                         device)}

if __name__ == "__main__":
    main()
