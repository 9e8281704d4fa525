"""Kill training runs with SIGKILL at random moments, continue them, and check each ends bitwise equal
to an uninterrupted run. The test suite runs a handful; this runs as many as you like:

    python tests/kill_resume.py --runs 50 --kills 3
    python tests/kill_resume.py --preset all --runs 5     # each CPU preset as shipped (compile, threads, precision)

Without --preset the runs are the suite's tiny exact run (one thread, dropout, deterministic algorithms).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import run_hfgpt
from resume_helpers import CPU_PRESETS, Flags, assert_same_run, checked, exact_flags, kill_and_continue, preset_flags


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="runs to kill and continue")
    parser.add_argument("--kills", type=int, default=2, help="SIGKILLs per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", choices=[*CPU_PRESETS, "all"], help="run the preset as shipped instead; all: "
                        "each CPU preset in turn (the GPU presets need CUDA and a corpus of their size)")
    args = parser.parse_args()
    presets = CPU_PRESETS if args.preset == "all" else [args.preset] if args.preset else [None]
    failures = 0
    for preset in presets:
        if preset:
            print(f"== {preset}, as shipped", flush=True)
        failures += campaign(preset_flags(preset) if preset else exact_flags, args)
    return 1 if failures else 0


def campaign(run_flags: Flags, args: argparse.Namespace) -> int:
    """args.runs runs of one kind, killed and continued; prints each outcome; returns how many differed."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        checked(run_hfgpt(run_flags(root, "reference", 1), cwd=root))
        failures = struck_total = 0
        for index in range(args.runs):
            started = time.monotonic()
            run_dir, struck = kill_and_continue(root, f"run{index}", seed=args.seed + index, kills=args.kills,
                                                run_flags=run_flags)
            struck_total += struck
            try:
                assert_same_run(run_dir, root / "runs" / "reference")
                outcome = "bitwise equal"
            except AssertionError as error:
                failures += 1
                outcome = f"DIFFERENT: {error}"
            unusable = len(list((run_dir / "checkpoints").glob("*.unusable*")))
            print(f"run {index}: {struck} of {args.kills} kills struck a live run, {unusable} unusable "
                  "checkpoints set aside, "
                  f"{time.monotonic() - started:.1f} s: {outcome}", flush=True)
        print(f"{args.runs - failures}/{args.runs} runs ended bitwise equal to the uninterrupted run "
              f"after {struck_total} SIGKILLs in all", flush=True)
    return failures


if __name__ == "__main__":
    sys.exit(main())
