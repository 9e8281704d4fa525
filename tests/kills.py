"""Runs SIGKILLed at random moments and continued: one process, or a launch of several (DDP, ZeRO-2) whose
kill strikes one rank or the whole job at once, optionally continued on another number of processes.

Shared by test_resume.py, test_kills.py and `python tests/kill_resume.py`, which runs as many as you like.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import REPO, alive, launch_command, launch_env, rank_pids, run_hfgpt
from resume_helpers import LOG_LINES, Flags, assert_same_run, checked, exact_flags, largest_relative_difference

PROCESSES = {"python": 1, "accelerate": 1, "ddp2": 2, "zero2": 2, "zero3": 2, "fsdp": 2}  # processes of each launcher
ELASTIC_TOLERANCE = 1e-5  # of each logged loss, relative: fp32 sums added in another order
PEER_TIMEOUT = 60  # seconds the other processes may take to stop after one of them is killed (gloo: under 1 s)


@dataclasses.dataclass
class KilledRun:
    """A run killed and continued until it completed, and what its kills met."""

    run_dir: Path
    struck: int = 0  # kills that met a live run (a run may finish before its kill)
    inside_saves: int = 0  # of those, kills that met a checkpoint half written
    launchers: list[str] = dataclasses.field(default_factory=list)  # each launch's, in order

    def processes(self) -> set[int]:
        """The numbers of processes its launches ran on."""
        return {PROCESSES[launcher] for launcher in self.launchers}


def elastic_flags(root: Path, name: str, ckpt_every: int = 4) -> list[str]:
    """exact_flags for runs that change their number of processes: 16 sequences per step in micro-batches of 8 on
    1 or 2 processes, fp32 and no dropout (each process's dropout stream is reseeded at a change)."""
    return [*exact_flags(root, name, ckpt_every), "--token-batch-size", "512", "--max-sentences-per-device", "8",
            "--dropout", "0", "--precision", "fp32"]


def kill_and_continue(root: Path, name: str, seed: int, kills: int = 1, ckpt_every: int = 1,
                      run_flags: Flags = exact_flags, launchers: tuple[str, ...] = ("python",),
                      victims: tuple[str, ...] = ("job",), in_saves: float = 0.0) -> KilledRun:
    """Start a run, SIGKILL it at random moments `kills` times (continuing after each), then let it finish.

    Each launch takes one of `launchers` at random; each kill strikes one of `victims`: "job" (the launcher and
    every rank at once, as a lost machine) or "rank" (one rank, whose peers must then stop by themselves). With
    probability `in_saves` a kill waits for a checkpoint to begin and strikes while it is written."""
    rng = random.Random(seed)
    pick = lambda options: options[0] if len(options) == 1 else rng.choice(options)  # noqa: E731
    plan = [(pick(launchers), pick(victims)) for _ in range(kills + 1)]  # drawn first: a function of the seed
    killed = KilledRun(root / "runs" / name)
    run_dir, flags = killed.run_dir, run_flags(root, name, ckpt_every)
    for attempt, (launcher, victim) in enumerate(plan):
        if (run_dir / "run.json").is_file() and json.loads((run_dir / "run.json").read_text())["status"] == "completed":
            return killed  # it finished before the kill
        resumable = (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").glob("step_*"))
        args = ["continue", str(run_dir)] if resumable else ["train", *flags, "--overwrite"]
        killed.launchers.append(launcher)
        if attempt == kills:
            checked(run_hfgpt(args, cwd=root, launcher=launcher))
            return killed
        log = run_dir / "train_log.jsonl"
        logged = log.read_text().count("\n") if log.is_file() else 0
        half_written = unsealed(run_dir)
        launch = subprocess.Popen(launch_command(args, launcher), cwd=root, env=launch_env(),
                                  start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.monotonic()
        target = logged + rng.randint(1, max(1, LOG_LINES - logged))  # the last one strikes the run's ending
        while launch.poll() is None and time.monotonic() - started < 120 \
                and not (log.is_file() and log.read_text().count("\n") >= target):
            time.sleep(0.002)  # wait until this attempt has logged up to its target (saving every step)
        if in_saves and rng.random() < in_saves:
            while launch.poll() is None and not unsealed(run_dir) - half_written and time.monotonic() - started < 120:
                time.sleep(0.001)  # until the next checkpoint is begun
            time.sleep(rng.uniform(0.0, 0.02))
        else:
            time.sleep(rng.uniform(0.0, 0.05))
        live = launch.poll() is None
        strike(launch, victim, rng)
        killed.struck += live
        killed.inside_saves += live and bool(unsealed(run_dir) - half_written)
    return killed


def compare(killed: KilledRun, reference: Path, reference_processes: int) -> str:
    """"bitwise equal", "within ..." for a run with a launch on another number of processes, or "DIFFERENT: why"."""
    try:
        if killed.processes() == {reference_processes}:
            assert_same_run(killed.run_dir, reference)
            return "bitwise equal"
        difference = largest_relative_difference(killed.run_dir, reference)
        assert difference < ELASTIC_TOLERANCE, f"a loss differs by {difference:.2e} relative"
        return f"within {difference:.1e} relative (another number of processes)"
    except AssertionError as error:
        return f"DIFFERENT: {error}"


def strike(launch: subprocess.Popen, victim: str, rng: random.Random) -> None:
    """SIGKILL one rank of `launch` (its peers must stop within PEER_TIMEOUT) or the whole job; return once no
    process of it is left."""
    ranks = rank_pids(launch.pid)
    if victim == "rank" and len(ranks) > 1:
        send_kill(ranks[rng.choice(sorted(ranks))])
        try:
            launch.wait(timeout=PEER_TIMEOUT)
        except subprocess.TimeoutExpired:
            strike(launch, "job", rng)
            raise AssertionError(f"a rank was killed and the others still ran {PEER_TIMEOUT} s later") from None
    else:
        for pid in (launch.pid, *ranks.values()):
            send_kill(pid)
        launch.wait()
    deadline = time.monotonic() + PEER_TIMEOUT
    while any(alive(pid) for pid in ranks.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in ranks.values()), "a rank outlived its job's kill"


def send_kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def unsealed(run_dir: Path) -> set[str]:
    """The checkpoint folders a save began and did not seal."""
    return {path.name for path in (run_dir / "checkpoints").glob(".step_*.tmp")}


# recipes/train.py, SIGKILLed inside the save of one checkpoint: after accelerate's save_state has written
# its files, before the manifest that would seal them (argv: the step, then the script and its arguments).
KILL_INSIDE_SAVE = """
import os, runpy, signal, sys
import hfgpt.runs.checkpoint

step, seal = int(sys.argv[1]), hfgpt.runs.checkpoint.write_manifest


def killed_before_sealing(folder, saved_step):
    if saved_step == step:
        os.kill(os.getpid(), signal.SIGKILL)
    seal(folder, saved_step)


hfgpt.runs.checkpoint.write_manifest = killed_before_sealing
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def kill_inside_save(root: Path, name: str, step: int) -> Path:
    """Start a run (checkpointing every step) that is SIGKILLed while it saves checkpoint `step`; returns its
    run directory, with the proof that the kill struck inside the save: the save's files without a seal."""
    script = str(REPO / "recipes" / "train.py")
    killed = subprocess.run([sys.executable, "-c", KILL_INSIDE_SAVE, str(step), script,
                             *exact_flags(root, name, ckpt_every=1)], cwd=root, capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    checkpoints = root / "runs" / name / "checkpoints"
    unsealed_folder = checkpoints / f".step_{step:08d}.tmp"
    assert (unsealed_folder / "model.safetensors").is_file() and not (unsealed_folder / "checkpoint.json").exists(), \
        f"the kill did not strike inside the save of step {step}"
    assert (checkpoints / "latest.txt").read_text().strip() == f"step_{step - 1:08d}"
    return root / "runs" / name
