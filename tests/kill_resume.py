"""Kill training runs with SIGKILL at random moments, continue them, and check each ends bitwise equal
to an uninterrupted run. The test suite runs a handful; this runs as many as you like:

    python tests/kill_resume.py --runs 50 --kills 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import run_hfgpt
from resume_helpers import assert_same_run, checked, exact_flags, kill_and_continue


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="runs to kill and continue")
    parser.add_argument("--kills", type=int, default=2, help="SIGKILLs per run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        checked(run_hfgpt(exact_flags(root, "reference", ckpt_every=1), cwd=root))
        failures = struck_total = 0
        for index in range(args.runs):
            started = time.monotonic()
            run_dir, struck = kill_and_continue(root, f"run{index}", seed=args.seed + index, kills=args.kills)
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
              f"after {struck_total} SIGKILLs in all")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
