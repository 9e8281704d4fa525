"""A child process that must not outlive its parent asks to be signalled when the parent dies: on Linux the
kernel does it (`prctl(PR_SET_PDEATHSIG)`), elsewhere a thread checks the parent every POLL_SECONDS. Training
processes ask for SIGTERM, so that they stop as a preemption would (hfgpt.launch.orphans); tokenizing workers for
SIGKILL, having nothing to save (hfgpt.data.encoding)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
POLL_SECONDS = 2.0


def signal_at_parent_death(signum: signal.Signals) -> None:
    """Have `signum` sent to this process when its parent dies, also when the parent is gone already."""
    parent = os.getppid()
    if not sys.platform.startswith("linux") or ctypes.CDLL(None, use_errno=True).prctl(
            PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        threading.Thread(target=_watch, args=(parent, signum), daemon=True, name="hfgpt-parent-watch").start()
    if parent == 1 or os.getppid() != parent:  # the parent died before the request was made
        os.kill(os.getpid(), signum)


def _watch(parent: int, signum: signal.Signals) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    os.kill(os.getpid(), signum)


__all__ = ["signal_at_parent_death"]
