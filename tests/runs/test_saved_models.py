"""Finding a trained model: a run's final/, best/ or newest good checkpoint, one checkpoint, a saved folder."""

from __future__ import annotations

import shutil

import pytest

from hfgpt.errors import HfGptError
from hfgpt.runs.saved_models import load_saved_model

pytestmark = pytest.mark.slow  # every test reads the session's trained run


def test_a_run_a_checkpoint_and_a_saved_folder_are_all_sources(trained_run):
    for source, expected in [(trained_run, "final"), (trained_run / "checkpoints" / "step_00000030", "step_00000030"),
                             (trained_run / "final", "final")]:
        model, tokenizer, origin = load_saved_model(str(source), "fork from")
        assert origin["source"].endswith(expected)
        assert model.config.hidden_size == 32 and tokenizer.eos_token_id is not None
    with pytest.raises(HfGptError, match="Cannot load a model to fork from"):
        load_saved_model(str(trained_run / "nothing-here"), "fork from")


def test_a_run_still_training_falls_back_to_best_then_its_newest_good_checkpoint(trained_run, tmp_path):
    run = tmp_path / "tiny"
    shutil.copytree(trained_run, run, symlinks=True)
    shutil.rmtree(run / "final")
    assert load_saved_model(str(run), "generate from")[2]["source"] == str((run / "best").resolve())
    shutil.rmtree(run / "best")
    (run / "checkpoints" / "step_00000060" / "model.safetensors").write_bytes(b"cut short")
    _, _, origin = load_saved_model(str(run), "generate from")
    assert origin["step"] == 30 and origin["source"].endswith("step_00000030")
    (run / "checkpoints" / "step_00000030" / "model.safetensors").unlink()
    with pytest.raises(HfGptError, match="no final/, no best/ and no complete checkpoint to generate from"):
        load_saved_model(str(run), "generate from")
