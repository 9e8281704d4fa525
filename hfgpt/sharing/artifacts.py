"""What a run leaves to be shared, at its end and for each upload: `loss.png` in the run and in final/ and
best/, and the model card (README.md) of each of them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import HubSection
from ..runs.model_folders import exported_step
from ..runs.rundir import ARCHITECTURE, LOSS_PLOT
from ..runs.summary import summarize
from .card import CARD, CardInput, build_card, card_for_folder, write_card
from .plots import plot_png, plot_runs


def write_run_artifacts(run_dir: Path, hub: HubSection, sample: str | None, repo_id: str = "") -> list[Path]:
    """loss.png into the run, then into final/ and best/ with a card each, for the Hub repo `repo_id` if the run
    pushes (the sample is final/'s model's, so best/'s card shows it only when best/ holds the same step).
    Returns the files written."""
    written = [plot_runs([run_dir], run_dir / LOSS_PLOT)]
    run = summarize(run_dir)
    final_step = exported_step(run_dir / "final")
    for name in ("final", "best"):
        folder = run_dir / name
        if not (folder / "config.json").is_file():
            continue
        shutil.copyfile(run_dir / LOSS_PLOT, folder / LOSS_PLOT)
        same = name == "final" or exported_step(folder) == final_step
        card = card_for_folder(folder, run, repo_id=repo_id, license=hub.license, sample=sample if same else None)
        written += [folder / LOSS_PLOT, write_card(folder, card)]
    return written


def snapshot_describer(run_dir: Path, hub: HubSection, repo_id: str) -> Callable[[dict[str, Any], int], None]:
    """What adds a card and the plot to an upload that has none (a checkpoint's model), in the upload thread."""

    def describe(files: dict[str, Any], step: int) -> None:
        if LOSS_PLOT not in files:
            files[LOSS_PLOT] = plot_png([run_dir])
        if CARD not in files:
            config = json.loads((run_dir / ARCHITECTURE / "config.json").read_text())
            card = CardInput(summarize(run_dir), step, config, files["model.safetensors"], repo_id=repo_id,
                             license=hub.license)
            files[CARD] = str(build_card(card)).encode()

    return describe
