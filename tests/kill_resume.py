"""Kill training runs with SIGKILL at random moments, continue them, and check each ends bitwise equal
to an uninterrupted run. The test suite runs a handful; this runs as many as you like:

    python tests/kill_resume.py --runs 50 --kills 3
    python tests/kill_resume.py --preset all --runs 5     # each CPU preset as shipped (compile, threads, precision)
    python tests/kill_resume.py --procs 2 --runs 20       # DDP on 2 processes: one rank or the whole job killed
    python tests/kill_resume.py --procs 2 --engine zero2  # DeepSpeed ZeRO-2 on 2 processes (fsdp: FSDP2)
    python tests/kill_resume.py --procs 2 --elastic       # each launch on 1 or 2 processes, at random
    python tests/kill_resume.py --procs 2 --in-saves 0.5  # half the kills strike while a checkpoint is written

Without --preset the runs are the suite's tiny exact run (one thread, dropout, deterministic algorithms). A run
that continued on another number of processes (--elastic) is compared to its twin within fp32 rounding (1e-5 of
each loss, fp32 and no dropout), since its sums are added in another order; every other run bitwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import run_hfgpt
from kills import PROCESSES, compare, elastic_flags, kill_and_continue
from resume_helpers import CPU_PRESETS, Flags, checked, exact_flags, preset_flags


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="runs to kill and continue")
    parser.add_argument("--kills", type=int, default=2, help="SIGKILLs per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", choices=[*CPU_PRESETS, "all"], help="run the preset as shipped instead; all: "
                        "each CPU preset in turn (the GPU presets need CUDA and a corpus of their size)")
    parser.add_argument("--procs", type=int, choices=[1, 2], default=1, help="processes per launch")
    parser.add_argument("--engine", choices=["ddp", "zero2", "fsdp"], default="ddp", help="with --procs 2: plain "
                        "DDP, DeepSpeed ZeRO-2 or FSDP")
    parser.add_argument("--victim", choices=["rank", "job", "any"], default="any", help="with --procs 2: what a "
                        "kill strikes: one rank, the launcher and every rank at once, or either at random")
    parser.add_argument("--in-saves", type=float, default=0.0, help="the share of kills that wait for a checkpoint "
                        "to begin and strike while it is written (the others strike at any moment)")
    parser.add_argument("--elastic", action="store_true", help="with --procs 2 and DDP: each launch on 1 or 2 "
                        "processes at random")
    args = parser.parse_args()
    if args.procs == 1 and (args.elastic or args.engine != "ddp"):
        parser.error("--elastic and --engine need --procs 2")
    if args.elastic and args.engine != "ddp":
        parser.error("--elastic needs --engine ddp: its 1-process launches run the script directly (elastic ZeRO and "
                     "FSDP: tests/launch/test_distributed.py)")
    presets = CPU_PRESETS if args.preset == "all" else [args.preset] if args.preset else [None]
    failures = 0
    for preset in presets:
        if preset:
            print(f"== {preset}, as shipped", flush=True)
        failures += campaign(preset_flags(preset) if preset else run_flags(args), args)
    return 1 if failures else 0


def run_flags(args: argparse.Namespace) -> Flags:
    return elastic_flags if args.elastic else exact_flags


def launchers(args: argparse.Namespace) -> tuple[str, ...]:
    """The launchers each launch picks among; the first is the uninterrupted twin's."""
    if args.procs == 1:
        return ("python",)
    several = "ddp2" if args.engine == "ddp" else args.engine
    return (several, "python") if args.elastic else (several,)


def campaign(flags: Flags, args: argparse.Namespace) -> int:
    """args.runs runs of one kind, killed and continued; prints each outcome; returns how many differed."""
    victims = ("job",) if args.procs == 1 else ("rank", "job") if args.victim == "any" else (args.victim,)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        checked(run_hfgpt(flags(root, "reference", 1), cwd=root, launcher=launchers(args)[0]))
        failures = struck_total = inside_saves = 0
        for index in range(args.runs):
            started = time.monotonic()
            killed = kill_and_continue(root, f"run{index}", seed=args.seed + index, kills=args.kills,
                                       run_flags=flags, launchers=launchers(args), victims=victims,
                                       in_saves=args.in_saves)
            struck_total += killed.struck
            inside_saves += killed.inside_saves
            outcome = compare(killed, root / "runs" / "reference", PROCESSES[launchers(args)[0]])
            failures += outcome.startswith("DIFFERENT")
            unusable = len(list((killed.run_dir / "checkpoints").glob("*.unusable*")))
            print(f"run {index}: {killed.struck} of {args.kills} kills struck a live run ({killed.inside_saves} "
                  f"inside a save), launches {' '.join(killed.launchers)}, {unusable} unusable checkpoints set "
                  f"aside, {time.monotonic() - started:.1f} s: {outcome}", flush=True)
        print(f"{args.runs - failures}/{args.runs} runs ended equal to the uninterrupted run after {struck_total} "
              f"SIGKILLs in all ({inside_saves} inside a save)", flush=True)
    return failures


if __name__ == "__main__":
    sys.exit(main())
