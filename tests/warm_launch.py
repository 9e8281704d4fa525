"""`python recipes/train.py ...` for the tests, without paying for its imports at each launch.

A launch of the training script spends about 7 of its 7.5 seconds on a 2-core machine importing torch,
transformers (which imports scipy, torch._dynamo and torch's FSDP) and datasets; the suite makes hundreds. So
each pytest process keeps one server that has imported them and forks a child per launch. The child is a new OS
process that runs recipes/train.py as `__main__` with the launch's arguments, working directory, environment and
CPU affinity, its output in files, and leaves through the interpreter's own exit (threads joined, atexit
handlers run); what it shares with a cold launch is everything but the time the imports took.

Where a launch could see a difference, it is started cold instead, as a new interpreter: when its environment is
not the one the server imported under (a variable read at import, such as HF_HOME, would be stale), when it is not
the plain script (accelerate launch, torchrun), or when HFGPT_TESTS_COLD=1 asks for every launch cold. Forked
children share the server's string hash seed where new interpreters each draw their own: the launches the tests
kill (tests/kills.py) and the multi-process ones stay cold, and so keep checking that no result depends on it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import runpy
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "recipes" / "train.py"
# what recipes/train.py imports on its way through a run (hfgpt.cli imports each command's module when it is chosen;
# the plots import matplotlib's figure and its Agg backend). Not DeepSpeed, which accelerate imports where it is
# installed: a child forked after importing it hung until pytest's timeout, so each launch imports it itself.
IMPORTS = ("hfgpt.cli", "hfgpt.commands.train", "hfgpt.training.trainer", "hfgpt.training.modes",
           "matplotlib.figure", "matplotlib.backends.backend_agg")


class WarmLauncher:
    """The client: one server per pytest process, started at the first launch, gone when that process ends."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.folder = Path(tempfile.mkdtemp(prefix="hfgpt-warm-"))
        self.address = str(self.folder / "server")
        # its stdin is a pipe that only this process holds: when it closes, the server ends
        self.server = subprocess.Popen([sys.executable, __file__, self.address], env=env, stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True)
        if self.server.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the warm launch server did not start (exit code {self.server.wait()})")

    def serves(self, env: dict[str, str]) -> bool:
        return _imported_under(env) == _imported_under(self.env) and self.server.poll() is None

    def run(self, command: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        """Run `command` ([python, recipes/train.py, *args]) in a forked child, as subprocess.run would."""
        output = tempfile.mkdtemp(dir=self.folder)
        request = {"args": command[2:], "cwd": str(cwd), "env": env, "cores": sorted(os.sched_getaffinity(0)),
                   "stdout": f"{output}/stdout", "stderr": f"{output}/stderr"}
        with socket.socket(socket.AF_UNIX) as connection:
            connection.connect(self.address)
            connection.sendall(json.dumps(request).encode() + b"\n")
            connection.settimeout(timeout)
            try:
                status = connection.recv(64)
                timed_out = False
            except TimeoutError:
                connection.settimeout(None)
                connection.sendall(b"kill\n")
                status, timed_out = connection.recv(64), True
        stdout, stderr = (Path(request[name]).read_text(errors="replace") for name in ("stdout", "stderr"))
        shutil.rmtree(output)
        if timed_out:
            raise subprocess.TimeoutExpired(command, timeout, stdout, stderr)
        return subprocess.CompletedProcess(command, int(status), stdout, stderr)

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)


def _imported_under(env: dict[str, str]) -> dict[str, str]:
    """The variables that may matter to an import: all but the one pytest changes at each phase of each test."""
    return {name: value for name, value in env.items() if name != "PYTEST_CURRENT_TEST"}


def serve(address: str) -> None:
    """Import what a launch needs, then fork a child per request until stdin closes."""
    for module in IMPORTS:
        if importlib.util.find_spec(module.split(".")[0]) is not None:
            importlib.import_module(module)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(address)
    listener.listen()
    print("ready", flush=True)
    while True:
        readable, _, _ = select.select([listener, sys.stdin], [], [])
        if sys.stdin in readable:
            return
        connection, _ = listener.accept()
        with connection, connection.makefile("rb") as incoming:
            request = json.loads(incoming.readline())
            child = os.fork()
            if child == 0:
                listener.close()
                connection.close()
                sys.exit(launch(request))  # the interpreter's exit, as a cold launch ends
            connection.sendall(str(wait_or_kill(child, connection)).encode())


def wait_or_kill(child: int, connection: socket.socket) -> int:
    """The child's exit code (negative: the signal that ended it); a "kill" from the client ends its group."""
    exited = os.pidfd_open(child)
    try:
        readable, _, _ = select.select([exited, connection], [], [])
        if exited not in readable:
            os.killpg(child, signal.SIGKILL)
        return os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    finally:
        os.close(exited)


def launch(request: dict) -> int:
    """In the child: become the launch the request describes, run the script, return its exit code."""
    os.setpgid(0, 0)  # a group of its own, which a timeout ends with whatever the run started
    os.sched_setaffinity(0, request["cores"])
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path, mode in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY | os.O_CREAT),
                           (2, request["stderr"], os.O_WRONLY | os.O_CREAT)):
        opened = os.open(path, mode, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    sys.argv = [str(SCRIPT), *request["args"]]
    sys.path[0] = str(SCRIPT.parent)
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    except SystemExit as leaving:
        if leaving.code is None or isinstance(leaving.code, int):
            return leaving.code or 0
        print(leaving.code, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    serve(sys.argv[1])
