"""Processes started by `mpirun` or `srun` instead of `torchrun`/`accelerate launch`.

torch.distributed (and so accelerate) reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT. Open MPI, MPICH/Intel MPI and Slurm describe the same facts in their own variables;
this module copies them over when no launcher has set them, and never overrides one that has.
Slurm's step variables (SLURM_STEP_*) are read, not the job's: a batch script that runs plain
`python` sees SLURM_PROCID=0 and the job's SLURM_NTASKS, and would wait forever for the other ranks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, MutableMapping

from ..errors import HfGptError

_LAUNCHERS = {  # (rank, world size, local rank, local world size) variables of each launcher
    "mpirun (Open MPI)": ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                          "OMPI_COMM_WORLD_LOCAL_SIZE"),
    "mpirun (MPICH / Intel MPI)": ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"),
    "srun": ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", "SLURM_STEP_TASKS_PER_NODE"),
}


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list such as `gpu[07-09,12],cpu01` (what `scontrol show hostnames`
    would print first), without calling scontrol."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        return nodelist
    prefix, ranges = match.groups()
    return prefix + ranges.split(",")[0].split("-")[0] if ranges else prefix


def tasks_on_node(tasks_per_node: str, node: int) -> str:
    """The task count of node `node` in Slurm's compressed form: `4(x2),3` is 4, 4 and 3."""
    counts: list[str] = []
    for part in tasks_per_node.split(","):
        count, times = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip()).groups()
        counts += [count] * int(times or 1)
    return counts[node] if node < len(counts) else counts[0]


def _slurm_master(environ: Mapping[str, str]) -> str:
    nodelist = environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_JOB_NODELIST", "")
    if not nodelist:
        return "127.0.0.1"
    if shutil.which("scontrol"):
        shown = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True)
        if shown.returncode == 0 and shown.stdout.split():
            return shown.stdout.split()[0]
    return first_host(nodelist)


def adopt_launcher_environment(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Fill torch.distributed's variables from an MPI or srun launcher's; returns what was set."""
    if "RANK" in environ and "WORLD_SIZE" in environ:
        return {}  # torchrun, accelerate launch or the user already said
    spoken = [(name, names) for name, names in _LAUNCHERS.items() if names[0] in environ and names[1] in environ]
    if not spoken:
        return {}
    launcher, (rank, size, local_rank, local_size) = spoken[0]
    world = int(environ[size])
    if world <= 1:
        return {}
    local_world = environ.get(local_size, "")
    if launcher == "srun":
        local_world = local_world and tasks_on_node(local_world, int(environ.get("SLURM_NODEID", "0")))
        master = _slurm_master(environ)
    else:
        if local_world and int(local_world) < world and "MASTER_ADDR" not in environ:
            raise HfGptError(
                f"{launcher} started {world} processes on several machines ({local_world} on this one), but "
                "MASTER_ADDR is not set, so they cannot find each other; export MASTER_ADDR=<host of rank 0> "
                "(and MASTER_PORT if 29500 is taken) to every process, e.g. `mpirun -x MASTER_ADDR=node01 ...`.")
        master = "127.0.0.1"
    found = {
        "RANK": environ[rank], "WORLD_SIZE": str(world), "LOCAL_RANK": environ.get(local_rank, "0"),
        "LOCAL_WORLD_SIZE": local_world or "1", "MASTER_ADDR": master, "MASTER_PORT": "29500",
    }
    adopted = {key: value for key, value in found.items() if key not in environ}
    environ.update(adopted)
    return adopted
