"""Where metrics go: the console (beside a tqdm bar), `train_log.jsonl` and accelerate's trackers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from tqdm.auto import tqdm

from ..console import bars_shown
from ..files import replace_text, strict_json

TRAIN_LOG = "train_log.jsonl"
SAMPLES_LOG = "samples.jsonl"


def truncate_jsonl(path: Path, step: int) -> None:
    """Drop records after `step` (written by a run that died before its next checkpoint), so a resumed
    log has no step twice; the file is replaced atomically."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():  # damage only fails json
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line + "\n")
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by the crash
    replace_text(path, "".join(kept))


def format_record(record: dict[str, Any], max_steps: int) -> str:
    """One console line for a train, validation or task record."""
    parts = [f"step {record['step']:>{len(str(max_steps))}}/{max_steps}", record["split"]]
    if "loss" not in record:  # a task's scores, or their mean
        parts += [f"acc {100 * record['acc']:.1f}%", f"acc_norm {100 * record['acc_norm']:.1f}%"] if "acc" in record \
            else []
        parts += [f"centred {record['centred']:.3f}"]
        parts += [f"chance {100 * record['chance']:.1f}% of {record['items']:,} items"] if "chance" in record else []
        return " | ".join(parts)
    parts += [f"loss {record['loss']:.4f}", f"ppl {record['ppl']:.2f}", f"acc {100 * record['acc']:.1f}%"]
    if record["split"] == "train":
        parts += [f"lr {record['lr']:.2e}", f"gnorm {record['grad_norm']:.3f}",
                  f"{record['tokens_per_s']:,.0f} tok/s", f"{record['ms_per_step']:.1f} ms/step"]
        parts += [f"mfu {100 * record['mfu']:.1f}%"] if record.get("mfu") else []
    return " | ".join(parts)


class Logbook:
    """Writes records on the main process only; other processes hold a silent logbook."""

    def __init__(self, accelerator: Accelerator, run_dir: Path, max_steps: int, start_step: int,
                 progress_bar: bool):
        self.accelerator = accelerator
        self.max_steps = max_steps
        self.main = accelerator.is_main_process
        self.log_path = run_dir / TRAIN_LOG
        self.samples_path = run_dir / SAMPLES_LOG
        if self.main and start_step:
            truncate_jsonl(self.log_path, start_step)
            truncate_jsonl(self.samples_path, start_step)
        self.bar = tqdm(total=max_steps, initial=start_step, disable=not (self.main and bars_shown(progress_bar)),
                        dynamic_ncols=True, desc="training")

    def print(self, message: str) -> None:
        if self.main:
            tqdm.write(message)

    def advance(self) -> None:
        self.bar.update(1)

    def record(self, record: dict[str, Any], line: str = "") -> None:
        """Log one record everywhere (numbers are plain floats, already synced) and print `line`, by default
        the record's metrics. In train_log.jsonl a number that is not finite is null."""
        record = {**record, "time": round(time.time(), 3)}
        self.accelerator.log({f"{record['split']}/{k}": v for k, v in record.items()
                              if isinstance(v, (int, float)) and k not in ("step", "time")}, step=record["step"])
        if self.main:
            with open(self.log_path, "a", encoding="utf-8") as log_file:
                log_file.write(strict_json(record) + "\n")
            self.print(line or format_record(record, self.max_steps))

    def samples(self, step: int, blocks_per_process: list[list[int]]) -> None:
        """Record which training blocks each process read in `step` (with --log-samples)."""
        if self.main:
            with open(self.samples_path, "a", encoding="utf-8") as samples_file:
                samples_file.write(json.dumps({"step": step, "blocks": blocks_per_process}) + "\n")

    def close(self) -> None:
        self.bar.close()
