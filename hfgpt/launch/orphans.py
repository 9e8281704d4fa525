"""A training process whose launcher dies stops, instead of training on as an orphan; one whose peer dies says so.

`accelerate launch` and `torchrun` start each worker in a session of its own, so a SIGKILL to the launcher's
process group (an out-of-memory killer, a closed terminal's cleanup, `kill -9 -PGID`) reaches the launcher only;
its workers would live on, holding the run's lock and the devices' memory. A launched worker therefore asks the
kernel for a SIGTERM when its parent dies (hfgpt.lifetime), and SIGTERM is the stop that
`hfgpt.training.stopping.StopSignals` already handles: the processes agree on a step, checkpoint together and end
`interrupted`.

When one process dies (SIGKILL to a rank, a crash), the others meet it in their next collective: gloo raises at
once that the peer's connection closed (NCCL at its timeout), and the launcher, if alive, ends them too.
`lost_process` turns that error into a sentence naming the lost process: the step is not saved, the newest
checkpoint stays intact, and `continue` goes on from it exactly.
"""

from __future__ import annotations

import os
import signal

from ..lifetime import signal_at_parent_death


def stop_with_launcher(environ: dict[str, str] | None = None) -> bool:
    """Under a launcher (torchrun's or accelerate's TORCHELASTIC_RUN_ID, mpirun, srun), arrange a SIGTERM to this
    process when its parent dies; True when it was arranged."""
    environ = dict(os.environ) if environ is None else environ
    if not any(name in environ for name in ("TORCHELASTIC_RUN_ID", "OMPI_COMM_WORLD_RANK", "PMI_RANK",
                                            "SLURM_STEP_ID")):
        return False
    signal_at_parent_death(signal.SIGTERM)
    return True


LOST = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "NCCL communicator was aborted",
        "remote process exited", "Socket Timeout", "timed out")  # how gloo and NCCL say that a peer is gone


def lost_process(error: BaseException, rank: int, world_size: int, step: int) -> str:
    """A sentence for a collective that failed because another process of the run is gone; "" for other errors."""
    text = str(error)
    if world_size < 2 or not isinstance(error, RuntimeError) or not any(sign in text for sign in LOST):
        return ""
    others = f"process {1 - rank}" if world_size == 2 else f"another of the {world_size} processes (the launcher's " \
                                                          "log names which)"
    return (f"{others[0].upper()}{others[1:]} of this run is gone: process {rank} met its closed connection in a "
            f"collective after step {step} ({text.splitlines()[0][:160]}). That step is not saved, the newest "
            "checkpoint is intact, and `hfgpt continue` goes on from it exactly.")


__all__ = ["lost_process", "stop_with_launcher"]
