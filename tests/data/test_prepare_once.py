"""Several processes share one cache, and only one of them tokenizes: two processes on one machine, and two
"machines" (two torchrun launches on this one, of two processes each) with a shared or a node-local cache."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, free_port, launch_env, without_cache_dir
from recording import WORK, logged, recorder
from resume_helpers import checked, exact_flags

pytestmark = [pytest.mark.slow, pytest.mark.whole_machine]  # launches of several processes

def short_run(root: Path, name: str) -> list[str]:
    flags = exact_flags(root, name)
    flags[flags.index("--max-steps") + 1] = "2"
    return without_cache_dir(flags)


def test_two_processes_on_one_machine_tokenize_once(tmp_path):
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(REPO / "accelerate_configs" / "cpu-2proc.yaml"), "--main_process_port", "0", *recorder(tmp_path),
               *short_run(tmp_path, "two")]
    result = checked(subprocess.run(command, cwd=tmp_path, env=launch_env({"HFGPT_CACHE": str(tmp_path / "cache")}),
                                    capture_output=True, text=True, timeout=300))
    assert "1 accumulation x 2 process(es)" in result.stdout
    assert logged(tmp_path) == sorted(f"0 {what}" for what in WORK)  # rank 1 found all of it in the cache


@pytest.mark.parametrize("caches", ["shared", "node-local"])
def test_on_two_machines_the_first_process_of_each_tokenizes_only_into_a_node_local_cache(tmp_path, caches):
    port = free_port()
    launches = []
    for node in (0, 1):
        cache = tmp_path / ("cache" if caches == "shared" else f"cache-of-node-{node}")
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(node),
                   "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", port,
                   *recorder(tmp_path), *short_run(tmp_path, caches)]
        launches.append(subprocess.Popen(command, cwd=tmp_path, env=launch_env({"HFGPT_CACHE": str(cache)}),
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for launch in launches:
        stdout, stderr = launch.communicate(timeout=300)
        checked(subprocess.CompletedProcess(launch.args, launch.returncode, stdout, stderr))
    ranks = ["0"] if caches == "shared" else ["0", "2"]  # rank 2 is the first process of machine 1
    assert logged(tmp_path) == sorted(f"{rank} {what}" for rank in ranks for what in WORK)
