"""A ZeRO checkpoint loaded on another number of processes, through DeepSpeed's universal checkpoint.

ZeRO-2 and ZeRO-3 save each rank's slice of the flattened fp32 weights and Adam moments, and DeepSpeed loads
those files only on as many processes as wrote them. Its universal checkpoint (`deepspeed.checkpoint.
ds_to_universal`) rewrites them per parameter, whole, and an engine configured with `checkpoint.load_universal`
cuts them for its own ranks. hfgpt converts the newest checkpoint beside it, into a hidden folder that looks like
the checkpoint to accelerate's `load_state`, loads it, and removes it: the checkpoint itself is never changed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import torch
from accelerate import Accelerator

from ..files import remove_made

_VIEW = re.compile(r"\.step_\d{8,}\.universal")
ENGINE_FOLDER = "pytorch_model"  # where accelerate's save_state lets DeepSpeed write a checkpoint's engine files


def load_universal(accelerator: Accelerator) -> None:
    """Have the DeepSpeed engine that `accelerator.prepare` builds load universal checkpoints."""
    accelerator.state.deepspeed_plugin.deepspeed_config.setdefault("checkpoint", {})["load_universal"] = True


def load_resharded(accelerator: Accelerator, folder: Path, engine: torch.nn.Module) -> None:
    """`accelerator.load_state` of the ZeRO checkpoint `folder`, saved by another number of processes, into the
    prepared DeepSpeed `engine`."""
    with universal_view(accelerator, folder) as view:
        accelerator.load_state(str(view))
        restore_group_settings(engine.optimizer.param_groups, view / ENGINE_FOLDER)
    separate_steps(engine.optimizer.optimizer)


def restore_group_settings(groups: list[dict], universal: Path) -> None:
    """Each parameter group's saved settings (its learning rate, weight decay, betas), group by group: ZeRO-3's
    universal loading gives every group the first group's, and the group without weight decay would decay."""
    saved = torch.load(universal / "zero" / "optimizer_state.pt", map_location="cpu", weights_only=False)
    saved_groups = saved.get("optimizer_state_dict", saved)["param_groups"]  # ZeRO-3's nest; ZeRO-2's do not
    if len(saved_groups) != len(groups):
        raise ValueError(f"the checkpoint has {len(saved_groups)} parameter groups and the optimizer {len(groups)}")
    for group, settings in zip(groups, saved_groups, strict=True):
        group.update({key: value for key, value in settings.items() if key != "params"})


def separate_steps(optimizer: torch.optim.Optimizer) -> None:
    """ZeRO-3's universal loading gives the state of every parameter group one shared `step` tensor, which Adam then
    advances once per group at each step: the second group's bias correction would run ahead. Each gets its own."""
    for state in optimizer.state.values():
        if torch.is_tensor(state.get("step")):
            state["step"] = state["step"].clone()


@contextlib.contextmanager
def universal_view(accelerator: Accelerator, folder: Path) -> Iterator[Path]:
    """A folder like the checkpoint `folder`, its engine files converted to DeepSpeed's universal form, while the
    body loads it; every process enters, the main one converts (the run folder is shared, as checkpoints need)."""
    view = folder.parent / f".{folder.name}.universal"
    if accelerator.is_main_process:
        remove_made(view, _VIEW, ignore_errors=True)  # a crash during an earlier load left it
        view.mkdir()
        for entry in folder.iterdir():
            if entry.name != ENGINE_FOLDER:
                os.symlink(entry.resolve(), view / entry.name)
        convert_to_universal(folder / ENGINE_FOLDER, view / ENGINE_FOLDER)
    accelerator.wait_for_everyone()
    try:
        yield view
    finally:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            remove_made(view, _VIEW, ignore_errors=True)


def convert_to_universal(engine_files: Path, output: Path) -> None:
    """DeepSpeed's own conversion, in this process (one worker: no pool to start), its progress output kept."""
    from deepspeed.checkpoint import ds_to_universal

    args = argparse.Namespace(input_folder=str(engine_files), output_folder=str(output), num_extract_workers=1,
                              num_merge_workers=1, keep_temp_folder=False, strict=True,
                              inject_missing_state=True)  # a model without tensor parallelism records no info
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        ds_to_universal.main(args)


__all__ = ["load_resharded", "load_universal"]
