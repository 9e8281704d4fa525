"""Pushing to the Hub while a run trains (`--push-to-hub`), as transformers' Trainer does: the model at the end
(`--hub-strategy end`), after every checkpoint save (`every_save`), or that and the latest resumable checkpoint
(`checkpoint`), so that another machine can `hfgpt continue` from the Hub.

`preflight` runs before any data is read: a bad repo id, offline mode, no token, no network or no write access
stop the launch at once with one sentence, not after hours of training. Then uploads run in one background
thread on the main process and never block or break training: a failed upload is a warning, and the next save
uploads everything again. Each upload is a complete snapshot, so a newer save replaces one still waiting.
Its files are opened when the save is handed over, so a checkpoint pruned or a best/ replaced while the
upload runs is still read whole (POSIX keeps an open file readable after its name is gone).
"""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path
from typing import IO, Any

from tqdm.auto import tqdm

from ..collectives import first_failure
from ..config import HubSection
from ..errors import HfGptError
from ..models import hfgpt as model_package
from ..runs.checkpoint import CHECKPOINTS, complete_checkpoints
from ..runs.rundir import ARCHITECTURE, TOKENIZER
from .hub import Upload, check_can_push, ensure_repo, folder_files, run_files, upload

MODEL_CODE = ("configuration_hfgpt.py", "modeling_hfgpt.py")
AUTO_MAP = {"AutoConfig": "configuration_hfgpt.HfGptConfig", "AutoModelForCausalLM": "modeling_hfgpt.HfGptForCausalLM"}


def preflight(hub: HubSection, main: bool) -> str:
    """Check (and create) the repo of a push run before any work; every process calls it. Returns the full id."""
    if not hub.push_to_hub:
        return ""
    check_can_push(hub.hub_model_id)
    repo_id, failure = hub.hub_model_id, ""
    if main:
        try:
            repo_id = ensure_repo(hub.hub_model_id, hub.hub_private)
        except HfGptError as error:
            failure = f"--push-to-hub: {error} Training did not start."
    failure = first_failure(failure)
    if failure:
        raise HfGptError(failure)
    return repo_id


def checkpoint_model(run_dir: Path, checkpoint: Path) -> Upload:
    """A loadable model folder made of a checkpoint's weights and the run's architecture and tokenizer."""
    config = json.loads((run_dir / ARCHITECTURE / "config.json").read_text())
    config["auto_map"] = {**config.get("auto_map", {}), **AUTO_MAP}
    generation = {key: config.get(key) for key in ("bos_token_id", "eos_token_id", "pad_token_id")}
    files: Upload = {"config.json": json.dumps(config, indent=2).encode(), "model.safetensors":
                     checkpoint / "model.safetensors",
                     "generation_config.json": json.dumps({"_from_model_config": True, **generation}).encode()}
    code = Path(model_package.__file__).parent
    files |= {name: code / name for name in MODEL_CODE}
    return files | folder_files(run_dir / TOKENIZER)


def opened(files: Upload) -> dict[str, bytes | IO[bytes]]:
    """The files opened now (see the module docstring); bytes stay as they are."""
    return {name: open(content, "rb") if isinstance(content, Path) else content for name, content in files.items()}


def close(files: dict[str, Any]) -> None:
    for content in files.values():
        if hasattr(content, "close"):
            content.close()


class HubPusher:
    """The background uploads of one launch (main process only; on the others every call does nothing).

    `describe(files, step)` adds the model card and plot to a snapshot; it runs in the upload thread."""

    def __init__(self, run_dir: Path, hub: HubSection, repo_id: str, main: bool, describe: Any) -> None:
        self.run_dir, self.hub, self.repo_id, self.main, self.describe = run_dir, hub, repo_id, main, describe
        self.pushed_checkpoint = ""  # the checkpoint folder of the last upload that succeeded
        self.failures = 0
        self._pending: tuple[int, dict[str, Any], str] | None = None
        self._wake, self._stop = threading.Condition(), False
        self._thread = threading.Thread(target=self._work, name="hfgpt-hub-upload", daemon=True)
        if main:
            self._thread.start()

    def after_save(self, step: int) -> None:
        """Hand over the checkpoint saved at `step` (every_save, checkpoint); returns at once."""
        if not self.main or self.hub.hub_strategy == "end":
            return
        checkpoint = self.run_dir / CHECKPOINTS / f"step_{step:08d}"
        if not (checkpoint / "model.safetensors").is_file():  # DeepSpeed keeps sharded weights
            return
        try:
            files = checkpoint_model(self.run_dir, checkpoint)
            if self.hub.hub_strategy == "checkpoint":
                files |= run_files(self.run_dir, [checkpoint])
            self._submit(step, files, checkpoint.name if self.hub.hub_strategy == "checkpoint" else "")
        except (OSError, ValueError) as error:  # a file gone or unreadable: this save is not pushed, training goes on
            warnings.warn(f"step {step} is not pushed to the Hub repo {self.repo_id} ({error}); the next save "
                          "tries again.", stacklevel=2)

    def finish(self, folder: Path | None, step: int) -> None:
        """Upload `folder` (final/; None: nothing more) after what is under way, and wait for every upload
        to end. With `checkpoint`, the newest checkpoint and the run's records as they ended go with it."""
        if not self.main:
            return
        if folder is not None:
            files: Upload = folder_files(folder)
            newest = complete_checkpoints(self.run_dir)[-1:] if self.hub.hub_strategy == "checkpoint" else []
            files |= run_files(self.run_dir, newest) if newest else {}
            self._submit(step, files, newest[0].name if newest else "")
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join()

    def _submit(self, step: int, files: Upload, checkpoint: str) -> None:
        with self._wake:
            if self._pending is not None:  # never started: the newer snapshot holds everything it had
                close(self._pending[1])
            self._pending = (step, opened(files), checkpoint)
            self._wake.notify()

    def _work(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._stop:
                    self._wake.wait()
                if self._pending is None:
                    return
                step, files, checkpoint = self._pending
                self._pending = None
            try:
                self._upload(step, files, checkpoint)
            finally:
                close(files)

    def _upload(self, step: int, files: dict[str, Any], checkpoint: str) -> None:
        stale = [f"{CHECKPOINTS}/{self.pushed_checkpoint}"] if checkpoint and self.pushed_checkpoint and \
            self.pushed_checkpoint != checkpoint else []
        try:
            self.describe(files, step)
            upload(self.repo_id, files, f"hfgpt: {self.run_dir.name} at step {step}", deleted=stale)
        except Exception as error:  # never break training: say it, and the next save tries again
            self.failures += 1
            warnings.warn(f"the upload of step {step} to the Hub repo {self.repo_id} failed ({error}); the next save "
                          f"uploads again, and `hfgpt push {self.run_dir} --repo-id {self.repo_id}` pushes by hand.",
                          stacklevel=1)
            return
        self.pushed_checkpoint = checkpoint or self.pushed_checkpoint
        tqdm.write(f"pushed step {step} to the Hub repo {self.repo_id}")
