"""The speedrun's measure, in one run: the wall time two presets take to reach a validation loss.

    python benchmarks/speedrun.py [--baseline shakespeare-char] [--contender speedrun] [--data PATH]
        [--target 1.80] [--eval-every 50] [--valid-start 0.95] [--valid-chars 15360] [--rounds 3] [--device cpu|cuda]
        [-- FLAGS ...]

The text (by default tinyshakespeare, from benchmarks/corpora.py) is split once: --valid-chars characters from
--valid-start (a fraction of the text) on are the validation text, and what comes before them the training text,
given to both presets (--train, --valid), which evaluate every block of that same validation text (the same blocks
where their contexts are equal) every --eval-every steps. The defaults are the blocks shakespeare-char evaluates
when it trains on the whole file: the first 240 blocks of 64 characters (its 20 evaluation batches of 12) of the
last 5% it holds out, where it ends at validation loss 1.79; the very end of the play is harder (1.93 there).
Each preset trains as shipped otherwise, on --device, without checkpoints, best/, trackers or the sample at the
end; FLAGS after -- go to both (a toy run: -- --max-steps 20).

What is timed, for each run: the wall clock from just before this process calls hfgpt's `run()` to the `time`
stamp of a validation record in the run's train_log.jsonl. That takes in the launch (model, optimizer, the packed
data mapped from the cache), compiling (each run compiles anew after torch._dynamo.reset(), as a new process
would), the steps and the evaluations. Tokenizing and packing are not timed: an untimed one-step run of each
preset builds its tokenizer and packed data in the cache all later runs read, and fills torch.compile's caches as
a user's earlier run would. (run.json's session start has whole seconds only, so the script keeps its own clock.)
A run's time to the target is that of its first evaluation at or under --target; its full time, that of its last.

An ablation adds contestants: each `--variant "LABEL: FLAGS"` is the contender with FLAGS on top (such as
`--variant "no QK-norm: --no-qk-norm"`), timed in the same rounds and reported on a row of its own.

The two take turns, --rounds times (a shared machine's speed drifts by 20%), and each figure is the median over the
rounds. The loss each preset has reached at the baseline's (median) full time is interpolated linearly between its
evaluations (its last loss if it ended sooner; the median is over the rounds that had evaluated by then, n/a if
none had); a contender is not stopped at that time, so one run of each preset per round gives every figure. The
last line is the baseline's median time to the target over the contender's: above 1, the contender is faster.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from corpora import tinyshakespeare

from hfgpt.errors import HfGptError
from hfgpt.training.modes import train_setup
from hfgpt.training.trainer import run

EVERY_BLOCK = 1_000_000  # --eval-batches: more than any validation text here has, so each evaluation reads all


@dataclass
class Outcome:
    """One run's evaluations: seconds from its launch to each, and the validation loss of each."""

    seconds: list[float]
    losses: list[float]

    def time_to(self, target: float) -> float:
        return next((s for s, loss in zip(self.seconds, self.losses, strict=True) if loss <= target), math.inf)

    def loss_at(self, seconds: float) -> float:
        return float(np.interp(seconds, self.seconds, self.losses, left=math.nan))


def split_text(data: Path, valid_start: float, valid_chars: int, folder: Path) -> None:
    """train.txt and valid.txt in `folder`: `valid_chars` characters from the fraction `valid_start` of the text on
    are the validation text, everything before them the training text."""
    text = data.read_text(encoding="utf-8")
    start = int(len(text) * valid_start)
    if valid_chars <= 0 or start <= 0 or start + valid_chars > len(text):
        raise SystemExit(f"--valid-start {valid_start} and --valid-chars {valid_chars} must leave training text "
                         f"before the validation text and fit in the {len(text):,} characters of {data}.")
    (folder / "train.txt").write_text(text[:start], encoding="utf-8")
    (folder / "valid.txt").write_text(text[start:start + valid_chars], encoding="utf-8")


@dataclass
class Contestant:
    """A row of the report: its label, and the flags that choose its preset (and a variant's changes)."""

    label: str
    flags: list[str]


def contestants(args: argparse.Namespace) -> dict[str, Contestant]:
    """By role: the baseline, the contender and each --variant of the contender."""
    roles = {"baseline": Contestant(args.baseline, ["--config", args.baseline]),
             "contender": Contestant(args.contender, ["--config", args.contender])}
    for number, variant in enumerate(args.variant, start=1):
        label, _, flags = variant.partition(":")
        roles[f"variant-{number}"] = Contestant(f"{args.contender}, {label.strip()}",
                                                ["--config", args.contender, *flags.split()])
    return roles


def preset_flags(args: argparse.Namespace, contestant: Contestant, name: str, folder: Path) -> list[str]:
    every = str(args.eval_every)
    return [*contestant.flags, "--train", str(folder / "train.txt"), "--valid", str(folder / "valid.txt"),
            "--eval-every", every, "--eval-batches", str(EVERY_BLOCK), "--log-every", every, "--ckpt-every", "0",
            "--no-save-best", "--trackers", "none", "--no-progress-bar", "--sample-tokens", "0", "--device",
            args.device, "--rundir", str(folder / "runs"), "--run-name", name, "--cache-dir", str(folder / "cache"),
            *args.flags]


def launch(flags: list[str]) -> Outcome:
    """Train as `flags` say, in this process, and read the evaluations' times from the run's log."""
    torch._dynamo.reset()  # compile this run's model anew; inductor's caches stay as warm as on disk
    start = time.time()
    run_dir = run(train_setup(flags))
    records = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    evaluations = [record for record in records if record["split"] == "valid"]
    return Outcome([record["time"] - start for record in evaluations], [record["loss"] for record in evaluations])


def measure(args: argparse.Namespace, roles: dict[str, Contestant], folder: Path) -> dict[str, list[Outcome]]:
    """Every role's outcomes, the roles taking turns round by round, after the untimed run of each."""
    for role, contestant in roles.items():
        print(f"untimed: {contestant.label} tokenizes, packs and compiles once", flush=True)
        launch([*preset_flags(args, contestant, f"{role}-untimed", folder), "--max-steps", "1"])
    outcomes: dict[str, list[Outcome]] = {role: [] for role in roles}
    target = f"{args.target:.2f}"
    for number in range(1, args.rounds + 1):
        for role, contestant in roles.items():
            print(f"timed: {contestant.label}, round {number}", flush=True)
            outcomes[role].append(launch(preset_flags(args, contestant, f"{role}-{number}", folder)))
        print(f"round {number}/{args.rounds}: " + "; ".join(
            f"{contestant.label} {_seconds(o[-1].time_to(args.target))} to {target}, {o[-1].seconds[-1]:.1f} s in "
            f"all, final loss {o[-1].losses[-1]:.3f}" for contestant, o in zip(roles.values(), outcomes.values(),
                                                                               strict=True)))
    return outcomes


def report(args: argparse.Namespace, roles: dict[str, Contestant], outcomes: dict[str, list[Outcome]]) -> None:
    target = f"{args.target:.2f}"
    full = statistics.median(outcome.seconds[-1] for outcome in outcomes["baseline"])
    print(f"\n{args.data.name}, {args.valid_chars:,} characters from {args.valid_start:.0%} on for validation, "
          f"evaluated every {args.eval_every} steps; {args.rounds} rounds, medians; device {args.device}, "
          f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}")
    width = max(28, *(len(contestant.label) + 2 for contestant in roles.values()))
    print(f"{'preset':<{width}}{'time to ' + target:>14}{'range':>16}{'full run':>12}{f'loss at {full:.1f} s':>18}")
    medians = {}
    for role, contestant in roles.items():
        times = [outcome.time_to(args.target) for outcome in outcomes[role]]
        medians[role] = statistics.median(times)
        losses = [loss for outcome in outcomes[role] if not math.isnan(loss := outcome.loss_at(full))]
        loss = statistics.median(losses) if losses else math.nan
        print(f"{contestant.label:<{width}}{_seconds(medians[role]):>14}{f'{_seconds(min(times))}-{_seconds(max(times))}':>16}"
              f"{_seconds(statistics.median(o.seconds[-1] for o in outcomes[role])):>12}"
              f"{'n/a' if math.isnan(loss) else f'{loss:.3f}':>18}")
    if math.isinf(medians["baseline"]):
        raise SystemExit(f"{args.baseline} did not reach validation loss {target} in most rounds: give a higher "
                         "--target.")
    print(f"time to validation loss {target}: {args.contender} vs {args.baseline}: "
          f"{medians['baseline'] / medians['contender']:.2f}x")


def _seconds(seconds: float) -> str:
    return "never" if math.isinf(seconds) else f"{seconds:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="shakespeare-char", help="a preset name or TOML file")
    parser.add_argument("--contender", default="speedrun", help="a preset name or TOML file")
    parser.add_argument("--data", type=Path, default=tinyshakespeare(), required=tinyshakespeare() is None)
    parser.add_argument("--target", type=float, default=1.80, help="the validation loss to reach")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--valid-start", type=float, default=0.95, help="where the validation text starts, as a "
                        "fraction of the text")
    parser.add_argument("--valid-chars", type=int, default=15360, help="the validation text's length")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--variant", action="append", default=[], metavar='"LABEL: FLAGS"',
                        help="the contender with FLAGS on top, on a row of its own (an ablation); repeatable")
    parser.add_argument("flags", nargs="*", help="hfgpt flags for both presets' runs, after --")
    args = parser.parse_args()
    roles = contestants(args)
    with tempfile.TemporaryDirectory() as folder:
        split_text(args.data, args.valid_start, args.valid_chars, Path(folder))
        try:
            outcomes = measure(args, roles, Path(folder))
        except HfGptError as error:  # a preset that is not there, a flag that is wrong: hfgpt's own paragraph
            raise SystemExit(str(error)) from None
    report(args, roles, outcomes)


if __name__ == "__main__":
    main()
