"""Time to the first step of `hfgpt continue`, for a run stopped early and one stopped late: it should not grow
with the steps already done (the data order, the logs and the state are found, not replayed).

    python benchmarks/continue_latency.py [--steps 100 10000]

Each run trains a tiny model to its step count with one checkpoint at the end, then `hfgpt continue` runs in a
fresh process for one more step; the time from that process's start to its first logged step is measured, and
the last line puts the latest against the earliest.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = ["--hidden-size", "32", "--num-hidden-layers", "1", "--num-attention-heads", "2", "--seq-len", "32",
        "--max-position-embeddings", "32", "--batch-size", "4", "--eval-every", "0", "--sample-tokens", "0",
        "--trackers", "none", "--no-progress-bar", "--cpu-threads", "1", "--precision", "fp32"]


def hfgpt(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from hfgpt.cli import main; sys.exit(main(sys.argv[1:]))", *args]


def seconds_to_first_step(run_dir: Path, steps: int) -> float:
    """Wall seconds from starting `hfgpt continue` to its first training log line."""
    started = time.perf_counter()
    process = subprocess.Popen(hfgpt("continue", str(run_dir), "--max-steps", str(steps + 1), "--log-every", "1"),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    first = None
    for line in process.stdout or []:
        if first is None and line.startswith(f"step {steps + 1}/"):
            first = time.perf_counter() - started
    if process.wait() or first is None:
        raise SystemExit(f"continue of {run_dir} failed or logged no step")
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 10_000])
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as root:
        for steps in args.steps:
            name = f"at-{steps}"
            subprocess.run(hfgpt("train", *TINY, "--max-steps", str(steps), "--ckpt-every", str(steps), "--log-every",
                                 "50", "--rundir", root, "--run-name", name), check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            results[steps] = seconds_to_first_step(Path(root) / name, steps)
            print(f"continue at step {steps:>7,}: first step after {results[steps]:.2f} s", flush=True)
    first, last = results[args.steps[0]], results[args.steps[-1]]
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(f"time to first step, continue at step {args.steps[-1]:,} vs {args.steps[0]:,}: {last / first:.2f}x")


if __name__ == "__main__":
    main()
