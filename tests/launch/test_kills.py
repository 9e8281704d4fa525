"""Kills across processes, a short campaign of `python tests/kill_resume.py --procs 2`: runs of 2 processes
SIGKILLed at random moments (checkpointing every step, so some kills strike inside a save), in one rank or in the
whole job at once, continue and end bitwise equal to their uninterrupted twin; under plain DDP a run that goes on
with 1 process and back ends within fp32 rounding of it."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import import_or_unavailable, run_hfgpt
from kills import PROCESSES, compare, elastic_flags, kill_and_continue
from resume_helpers import checked, exact_flags

pytestmark = [pytest.mark.slow, pytest.mark.whole_machine]  # launches of several processes


def twin(root: Path, launcher: str, flags=exact_flags) -> Path:
    """The uninterrupted run the killed ones are compared to."""
    checked(run_hfgpt(flags(root, "twin", 1), cwd=root, launcher=launcher))
    return root / "runs" / "twin"


# each engine's run killed in one way (seeds 3 and 1: struck after 4 and 3 of its 15 log lines); the DDP run below
# that changes its number of processes is killed in both, and the script strikes either at random
@pytest.mark.parametrize(("launcher", "victim", "seed"), [("ddp2", "job", 3), ("zero2", "rank", 1)])
def test_runs_killed_in_one_rank_or_the_whole_job_continue_bitwise(tmp_path, launcher, victim, seed):
    if launcher == "zero2":
        import_or_unavailable("deepspeed")
    reference = twin(tmp_path, launcher)
    killed = kill_and_continue(tmp_path, f"killed-{victim}", seed=seed, kills=1, launchers=(launcher,),
                               victims=(victim,))
    assert killed.struck >= 1, "a kill struck a live run"
    assert compare(killed, reference, PROCESSES[launcher]) == "bitwise equal"


@pytest.mark.machine_sensitive  # 1 process against 2, to a tolerance
def test_a_ddp_run_killed_and_continued_on_another_number_of_processes_stays_within_rounding(tmp_path):
    reference = twin(tmp_path, "ddp2", elastic_flags)
    killed = kill_and_continue(tmp_path, "elastic", seed=18, kills=2, run_flags=elastic_flags,
                               launchers=("ddp2", "python"), victims=("rank", "job"))
    assert killed.processes() == {1, 2}, killed.launchers
    outcome = compare(killed, reference, PROCESSES["ddp2"])
    print(f"launches {killed.launchers}: {outcome}")
    assert outcome.startswith("within"), outcome
