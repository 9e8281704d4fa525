"""`python recipes/train.py ...` for the tests, without paying for its imports at each launch.

A launch of the training script spends about 7 of its 7.5 seconds on a 2-core machine importing torch,
transformers (which imports scipy, torch._dynamo and torch's FSDP) and datasets; the suite makes hundreds, and
each process of a multi-process launch makes them again. So each pytest process keeps one server that has imported
them and forks a child per launch (`WarmLauncher.run`): a plain one, `accelerate launch` itself, and each process
that torchrun starts for it, when the launch's PYTHON_EXEC (the interpreter torchrun starts workers with) is this
server's `worker` client. The child is a new OS process that runs recipes/train.py (or accelerate's launch command)
as `__main__` with the launch's arguments, working directory, environment, CPU affinity and standard streams, and
leaves through the interpreter's
own exit (threads joined, atexit handlers run); what it shares with a cold launch is everything but the time the
imports took. A worker's client stands in for it before torchrun: it passes on the signals torchrun sends, SIGTERM
when torchrun dies (as hfgpt's own workers ask for), and exits as the child did; if the client dies, the server
kills the child.

Where a launch could see a difference, it starts cold instead, as a new interpreter: when its environment is not the
one the server imported under, but for the variables a launcher adds (a variable read at import, such as HF_HOME,
would be stale), when it is neither of those two programs, when tests start it themselves (the launches
tests/kills.py and test_orphans.py kill), and when HFGPT_TESTS_COLD=1 asks for every launch cold. Forked children
share the server's string hash seed where new interpreters each draw their own: the killed launches, of one and of
several processes, stay cold, and so keep checking that no result depends on it.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.util
import io
import json
import os
import re
import runpy
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

SCRIPT = Path(__file__).resolve().parents[1] / "recipes" / "train.py"
ACCELERATE_LAUNCH = "accelerate.commands.launch"  # `accelerate launch`, as tests/helpers.py starts it
# what recipes/train.py imports on its way through a run (hfgpt.cli imports each command's module when it is chosen;
# the plots import matplotlib's figure and its Agg backend). Not DeepSpeed, which accelerate imports where it is
# installed: a child forked after importing it hung until pytest's timeout, so each launch imports it itself.
IMPORTS = ("hfgpt.cli", "hfgpt.commands.train", "hfgpt.training.trainer", "hfgpt.training.modes",
           "matplotlib.figure", "matplotlib.backends.backend_agg", ACCELERATE_LAUNCH)
# What torchrun and `accelerate launch` add to a worker's environment; none of what the server imported reads them
# at import, only once a run starts. Of those read at an interpreter's start, the child applies OMP_NUM_THREADS
# (torch's threads) and PYTHONPATH (sys.path) itself.
LAUNCHER_VARIABLES = re.compile(
    r"RANK|LOCAL_RANK|WORLD_SIZE|LOCAL_WORLD_SIZE|GROUP_RANK|GROUP_WORLD_SIZE|ROLE_NAME|ROLE_RANK|ROLE_WORLD_SIZE"
    r"|MASTER_ADDR|MASTER_PORT|OMP_NUM_THREADS|PYTHONPATH|PYTHON_EXEC|PYTORCH_NVML_BASED_CUDA_CHECK"
    r"|TORCH_NCCL_ASYNC_ERROR_HANDLING|TORCHELASTIC_\w+|ACCELERATE_\w+|FSDP_\w+")
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
TORCHRUN_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)  # what torchrun ends workers with


class WarmLauncher:
    """The pytest process's side: one server, started at the first launch, gone when that process ends."""

    def __init__(self, env: dict[str, str]) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="hfgpt-warm-"))
        self.address = str(self.folder / "server")
        # PYTHON_EXEC for torchrun: each worker it starts asks this server for a fork (a Python script: a shell's
        # would set PWD, and the environment would no longer be the launch's)
        self.python = self.folder / "python"
        tests = str(Path(__file__).resolve().parent)
        self.python.write_text(f"#!{sys.executable} -I\nimport sys\nsys.path.insert(0, {tests!r})\n"
                               f"from warm_launch import worker\nworker({self.address!r}, sys.argv[1:])\n")
        self.python.chmod(0o755)
        # its stdin is a pipe that only this process holds: when it closes, the server ends
        self.server = subprocess.Popen([sys.executable, __file__, "--serve", self.address], env=env,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.server.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the warm launch server did not start (exit code {self.server.wait()})")

    def run(self, command: list[str], cwd: Path, env: dict[str, str],
            timeout: float) -> subprocess.CompletedProcess | None:
        """Run `command` ([python, recipes/train.py, *args]) in a forked child, as subprocess.run would; None where
        the server cannot serve it and it must start cold."""
        output = Path(tempfile.mkdtemp(dir=self.folder))
        try:
            with (open(os.devnull) as stdin, open(output / "stdout", "w") as stdout,
                  open(output / "stderr", "w") as stderr, socket.socket(socket.AF_UNIX) as connection):
                connection.connect(self.address)
                replies = Replies(connection)
                send_request(connection, command[1:], cwd, env, [stdin.fileno(), stdout.fileno(), stderr.fileno()])
                if replies.line() != "started":
                    return None
                connection.settimeout(timeout)
                try:
                    code, timed_out = int(replies.line()), False
                except TimeoutError:
                    connection.settimeout(None)
                    connection.sendall(f"signal {signal.SIGKILL.value}\n".encode())
                    code, timed_out = int(replies.line()), True
            stdout, stderr = ((output / name).read_text(errors="replace") for name in ("stdout", "stderr"))
        finally:
            shutil.rmtree(output)
        if timed_out:
            raise subprocess.TimeoutExpired(command, timeout, stdout, stderr)
        return subprocess.CompletedProcess(command, code, stdout, stderr)

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)


def send_request(connection: socket.socket, argv: list[str], cwd: Path | str, env: dict[str, str],
                 streams: list[int]) -> None:
    """Ask for a launch of `python *argv`, its stdin, stdout and stderr the file descriptors `streams`."""
    request = {"argv": argv, "cwd": str(cwd), "env": env, "cores": sorted(os.sched_getaffinity(0))}
    socket.send_fds(connection, [json.dumps(request).encode() + b"\n"], streams)


class Replies:
    """The server's replies to a request, a line each: "started" or "cold", then the child's exit code."""

    def __init__(self, connection: socket.socket) -> None:
        self.connection, self.pending = connection, b""

    def line(self) -> str:
        while b"\n" not in self.pending:
            received = self.connection.recv(64)
            if not received:
                raise ConnectionError("the warm launch server closed the connection")
            self.pending += received
        line, self.pending = self.pending.split(b"\n", 1)
        return line.decode()


def worker(address: str, argv: list[str]) -> NoReturn:
    """A worker of torchrun's (PYTHON_EXEC): forked by the server, or this interpreter's cold start if it cannot."""
    connection = socket.socket(socket.AF_UNIX)
    replies = Replies(connection)
    try:
        connection.connect(address)
        send_request(connection, argv, os.getcwd(), dict(os.environ), [0, 1, 2])
        started = replies.line() == "started"
    except OSError:
        started = False
    if not started:
        os.execv(sys.executable, [sys.executable, *argv])
    for signum in TORCHRUN_SIGNALS:
        signal.signal(signum, lambda signum, _: connection.sendall(f"signal {signum}\n".encode()))
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:  # torchrun died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)
    code = int(replies.line())
    if code < 0:  # end as the child did, by its signal, so that torchrun reports the same
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


class Launch:
    """A running child: its pid, a pidfd that becomes readable when it exits, and its client's connection."""

    def __init__(self, pid: int, connection: socket.socket) -> None:
        self.pid, self.exited, self.connection, self.client_gone = pid, os.pidfd_open(pid), connection, False

    def forward(self) -> None:
        """The client's "signal N" to the child's process group; a client that is gone takes the child with it."""
        message = self.connection.recv(1 << 10)
        self.client_gone = not message
        for signum in [int(line.split()[1]) for line in message.decode().splitlines()] or [signal.SIGKILL]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signum)

    def finish(self) -> None:
        """Reap the child and tell its client how it ended."""
        os.close(self.exited)
        with self.connection, contextlib.suppress(OSError):  # a client that is gone needs no answer
            self.connection.sendall(f"{os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])}\n".encode())

    def close_in_child(self) -> None:
        os.close(self.exited)
        self.connection.close()


def serve(address: str) -> None:
    """Import what a launch needs, then fork a child per request, several at once, until stdin closes."""
    imported_under = dict(os.environ)
    for module in IMPORTS:
        if importlib.util.find_spec(module.split(".")[0]) is not None:
            importlib.import_module(module)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(address)
    listener.listen()
    print("ready", flush=True)
    running: list[Launch] = []
    while True:
        exits = {launch.exited: launch for launch in running}
        clients = {launch.connection: launch for launch in running if not launch.client_gone}
        readable, _, _ = select.select([listener, sys.stdin, *exits, *clients], [], [])
        if sys.stdin in readable:
            return
        for ready in readable:
            if ready in exits:
                exits[ready].finish()
                running.remove(exits[ready])
            elif ready in clients and clients[ready] in running:  # not finished a moment ago
                clients[ready].forward()
            elif ready is listener:
                connection, _ = listener.accept()
                child = start(connection, imported_under, listener, running)
                if child is None:
                    connection.close()
                else:
                    running.append(Launch(child, connection))


def start(connection: socket.socket, imported_under: dict[str, str], listener: socket.socket,
          running: list[Launch]) -> int | None:
    """Fork the child a request asks for and return its pid; None (and "cold" to the client) where the launch is
    not the script, or its environment is not the server's up to what a launcher adds."""
    message, streams, _, _ = socket.recv_fds(connection, 1 << 16, 3)
    while not message.endswith(b"\n"):
        message += connection.recv(1 << 16)
    request = json.loads(message)
    script = script_arguments(request["argv"], request["cwd"])
    child = os.fork() if script is not None and launched_alike(request["env"], imported_under) else None
    if child == 0:
        connection.close()
        listener.close()
        for launch in running:
            launch.close_in_child()
        sys.exit(run_script(request, streams, *script))  # the interpreter's exit, as a cold launch ends
    for stream in streams:
        os.close(stream)
    connection.sendall(b"cold\n" if child is None else b"started\n")
    return child


def script_arguments(argv: list[str], cwd: str) -> tuple[bool, list[str]] | None:
    """(unbuffered, what follows the options) of `python *argv` when it runs recipes/train.py or
    `-m accelerate.commands.launch` with no option but -u."""
    unbuffered = argv[:1] == ["-u"]
    rest = argv[1:] if unbuffered else argv
    if rest[:2] == ["-m", ACCELERATE_LAUNCH] or (rest and Path(cwd, rest[0]).resolve() == SCRIPT):
        return unbuffered, rest
    return None


def launched_alike(env: dict[str, str], imported_under: dict[str, str]) -> bool:
    """Whether `env` differs from the server's own only in variables a launcher added (and in the one that pytest
    changes at each phase of each test)."""
    changed = {name for name in env.keys() | imported_under.keys() if env.get(name) != imported_under.get(name)}
    return all(name == "PYTEST_CURRENT_TEST" or (LAUNCHER_VARIABLES.fullmatch(name) and name not in imported_under)
               for name in changed)


def run_script(request: dict, streams: list[int], unbuffered: bool, argv: list[str]) -> int:
    """In the child: become the launch the request describes, run the script, return its exit code."""
    os.setpgid(0, 0)  # a group of its own, which a timeout or a forwarded signal ends with what the run started
    os.sched_setaffinity(0, request["cores"])
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, stream in enumerate(streams):
        os.dup2(stream, fd)
        os.close(stream)
    if unbuffered:  # python -u
        sys.stdout, sys.stderr = (io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), write_through=True)
                                  for fd in (1, 2))
    if "OMP_NUM_THREADS" in os.environ and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    module = argv[1] if argv[0] == "-m" else None
    sys.argv = [module, *argv[2:]] if module else argv  # runpy puts the module's file first
    sys.path[0] = os.getcwd() if module else os.path.dirname(os.path.abspath(argv[0]))
    sys.path[1:1] = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    try:
        if module:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as leaving:
        if leaving.code is None or isinstance(leaving.code, int):
            return leaving.code or 0
        print(leaving.code, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve(sys.argv[2])
    else:
        worker(sys.argv[1], sys.argv[2:])
