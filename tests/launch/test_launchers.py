"""mpirun and srun environments become torch.distributed's, without overriding a launcher's."""

from __future__ import annotations

import pytest

from hfgpt.errors import HfGptError
from hfgpt.launch.launchers import adopt_launcher_environment, first_host, tasks_on_node


def test_open_mpi_ranks_on_one_machine_are_adopted():
    env = {"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "3",
           "OMPI_COMM_WORLD_LOCAL_SIZE": "4"}
    assert adopt_launcher_environment(env) == {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "3",
                                               "LOCAL_WORLD_SIZE": "4", "MASTER_ADDR": "127.0.0.1",
                                               "MASTER_PORT": "29500"}
    assert env["RANK"] == "3"


def test_mpich_and_slurm_tasks_are_adopted():
    mpich = {"PMI_RANK": "1", "PMI_SIZE": "2", "MASTER_ADDR": "10.0.0.5"}
    adopted = adopt_launcher_environment(mpich)
    assert adopted["RANK"] == "1" and "MASTER_ADDR" not in adopted and mpich["MASTER_ADDR"] == "10.0.0.5"
    srun = {"SLURM_PROCID": "5", "SLURM_STEP_NUM_TASKS": "7", "SLURM_LOCALID": "1", "SLURM_NODEID": "1",
            "SLURM_STEP_TASKS_PER_NODE": "4,3", "SLURM_STEP_NODELIST": "gpu[07-08]", "SLURM_NTASKS": "8",
            "SLURM_JOB_NODELIST": "gpu[01-08]"}
    adopted = adopt_launcher_environment(srun)  # the step's counts, not the job's
    assert (adopted["RANK"], adopted["WORLD_SIZE"], adopted["LOCAL_WORLD_SIZE"]) == ("5", "7", "3")
    assert adopted["MASTER_ADDR"] == "gpu07"


def test_a_batch_script_running_plain_python_is_not_taken_for_srun_tasks():
    """sbatch --ntasks=8 gives the batch script SLURM_PROCID=0 and SLURM_NTASKS=8, but no step variables:
    a plain `python` there is one process, and must not wait for seven more."""
    batch = {"SLURM_PROCID": "0", "SLURM_NTASKS": "8", "SLURM_LOCALID": "0", "SLURM_NTASKS_PER_NODE": "8",
             "SLURM_JOB_NODELIST": "gpu01"}
    assert adopt_launcher_environment(batch) == {} and "RANK" not in batch


def test_mpirun_across_machines_without_master_addr_is_refused():
    across = {"OMPI_COMM_WORLD_RANK": "4", "OMPI_COMM_WORLD_SIZE": "8", "OMPI_COMM_WORLD_LOCAL_RANK": "0",
              "OMPI_COMM_WORLD_LOCAL_SIZE": "4"}
    with pytest.raises(HfGptError, match="export MASTER_ADDR"):
        adopt_launcher_environment(across)
    assert adopt_launcher_environment({**across, "MASTER_ADDR": "node01"})["WORLD_SIZE"] == "8"


def test_a_launcher_that_already_spoke_wins_and_a_lone_job_is_left_alone():
    torchrun = {"RANK": "0", "WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4"}
    assert adopt_launcher_environment(torchrun) == {} and torchrun["RANK"] == "0"
    assert adopt_launcher_environment({"SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "1"}) == {}
    assert adopt_launcher_environment({}) == {}


def test_first_host_of_slurm_node_lists():
    assert first_host("gpu[07-09,12],cpu01") == "gpu07"
    assert first_host("node3") == "node3"
    assert first_host("a[1,3]") == "a1"


def test_tasks_on_node_expands_slurms_compressed_counts():
    assert [tasks_on_node("4(x2),3", node) for node in range(3)] == ["4", "4", "3"]
    assert tasks_on_node("8", 0) == "8"
