"""Checkpoints: atomic saves with a verified manifest, the latest pointer, safe pruning, and resuming
from the newest usable checkpoint when newer ones are truncated, bit-flipped, deleted or planted, or their
RNG state does not load."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from helpers import flip_one_bit, plant_pickle, reseal_checkpoint

from hfgpt.errors import HfGptError
from hfgpt.models.hfgpt import HfGptConfig
from hfgpt.models.hfgpt.modeling_hfgpt import HfGptForCausalLM
from hfgpt.runs.checkpoint import (
    MANIFEST,
    checkpoint_problem,
    clear_leftovers,
    complete_checkpoints,
    load_newest_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from hfgpt.runs.state import TrainerState


def tiny_model(hidden: int = 16) -> HfGptForCausalLM:
    return HfGptForCausalLM(HfGptConfig(vocab_size=40, hidden_size=hidden, num_hidden_layers=1,
                                        num_attention_heads=2, max_position_embeddings=16))


@pytest.fixture
def trained(tmp_path):
    """A prepared model and optimizer that step between saves, so each checkpoint differs."""
    accelerator = Accelerator(cpu=True)
    model = tiny_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model, optimizer = accelerator.prepare(model, optimizer)

    def step_and_save(step: int) -> Path:
        loss = model(input_ids=torch.arange(8).view(1, 8), labels=torch.arange(8).view(1, 8)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return save_checkpoint(accelerator, tmp_path, TrainerState(identity={}, step=step))

    return accelerator, model, optimizer, step_and_save


def test_save_writes_a_complete_verified_checkpoint_and_moves_latest(trained, tmp_path):
    _, _, _, step_and_save = trained
    first = step_and_save(1)
    second = step_and_save(2)
    checkpoints = tmp_path / "checkpoints"
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step_00000001", "step_00000002"]
    assert checkpoint_problem(first) == checkpoint_problem(second) == ""
    manifest = json.loads((second / MANIFEST).read_text())
    assert {"model.safetensors", "optimizer.bin", "trainer_state.json"} <= set(manifest["files"])
    assert (checkpoints / "latest.txt").read_text().strip() == second.name
    assert (checkpoints / "latest").resolve() == second.resolve()
    assert not list(checkpoints.glob(".*")), "no temporary folder is left behind"


@pytest.mark.parametrize("damage", ["truncate", "bitflip", "delete"])
@pytest.mark.parametrize("victim", ["model.safetensors", "optimizer.bin", "random_states_0.pkl",
                                    "trainer_state.json", MANIFEST])
def test_every_damaged_file_is_detected_and_named(trained, tmp_path, victim, damage):
    accelerator, model, _, step_and_save = trained
    step_and_save(1)
    folder = step_and_save(2)
    path = folder / victim
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "bitflip":
        flip_one_bit(path)
    else:
        path.unlink()
    warnings = []
    assert load_newest_checkpoint(accelerator, tmp_path, model, warn=warnings.append)[0].name == "step_00000001"
    assert len(warnings) == 1 and "step_00000002" in warnings[0] and victim in warnings[0], warnings


def state_of(model, optimizer):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {i: {k: v.clone() for k, v in s.items()} for i, s in optimizer.state_dict()["state"].items()})


def test_continue_skips_a_corrupt_newest_checkpoint_with_a_warning(trained, tmp_path):
    accelerator, model, optimizer, step_and_save = trained
    step_and_save(1)
    weights, moments = state_of(model, optimizer)
    newest = step_and_save(2)
    data = (newest / "optimizer.bin").read_bytes()
    (newest / "optimizer.bin").write_bytes(data[:100])
    warnings = []
    folder, state = load_newest_checkpoint(accelerator, tmp_path, model, warn=warnings.append)
    assert folder.name == "step_00000001" and state.step == 1
    assert len(warnings) == 1 and "step_00000002" in warnings[0] and "optimizer.bin" in warnings[0]
    assert (tmp_path / "checkpoints" / "step_00000002.unusable").is_dir(), "set aside, not deleted"
    restored_weights, restored_moments = state_of(model, optimizer)
    assert all(torch.equal(restored_weights[k], v) for k, v in weights.items())
    assert all(torch.equal(restored_moments[i][k], v) for i, s in moments.items() for k, v in s.items())


def test_a_planted_pickle_is_refused_not_run(trained, tmp_path):
    accelerator, model, _, step_and_save = trained
    step_and_save(1)
    newest = step_and_save(2)
    marker = tmp_path / "pwned"
    plant_pickle(newest / "optimizer.bin", marker)
    reseal_checkpoint(newest)
    assert checkpoint_problem(newest) == ""
    warnings = []
    folder, _ = load_newest_checkpoint(accelerator, tmp_path, model, warn=warnings.append)
    assert folder.name == "step_00000001"
    assert not marker.exists(), "the pickle payload ran"
    assert "failed to load" in warnings[0]


def test_an_rng_state_that_does_not_load_sets_the_checkpoint_aside(trained, tmp_path):
    """accelerate loads random_states_0.pkl inside `except Exception`: a refused file leaves the RNG as it was,
    and only the saved fingerprint tells."""
    accelerator, model, _, step_and_save = trained
    step_and_save(1)
    saved_with_step_1 = torch.get_rng_state()
    newest = step_and_save(2)
    plant_pickle(newest / "random_states_0.pkl", tmp_path / "pwned")
    reseal_checkpoint(newest)
    torch.manual_seed(12345)  # the RNG a fresh launch would have
    warnings = []
    folder, _ = load_newest_checkpoint(accelerator, tmp_path, model, warn=warnings.append)
    assert folder.name == "step_00000001"
    assert len(warnings) == 1 and "step_00000002" in warnings[0], warnings
    assert "RNG state did not load from random_states_0.pkl" in warnings[0]
    assert (tmp_path / "checkpoints" / "step_00000002.unusable").is_dir()
    assert torch.equal(torch.get_rng_state(), saved_with_step_1)


def test_a_checkpoint_saved_without_rng_fingerprints_loads_as_before(trained, tmp_path):
    accelerator, model, _, step_and_save = trained
    newest = step_and_save(1)
    state = json.loads((newest / "trainer_state.json").read_text())
    del state["rng_fingerprints"]
    (newest / "trainer_state.json").write_text(json.dumps(state))
    reseal_checkpoint(newest)
    warnings = []
    assert load_newest_checkpoint(accelerator, tmp_path, model, warn=warnings.append)[0] == newest
    assert warnings == []


def test_a_checkpoint_of_another_shape_is_named_and_skipped(trained, tmp_path):
    accelerator, model, _, step_and_save = trained
    step_and_save(1)
    other = Accelerator(cpu=True)
    foreign = other.prepare(tiny_model(hidden=32))
    save_checkpoint(other, tmp_path, TrainerState(identity={}, step=5))
    warnings = []
    folder, _ = load_newest_checkpoint(accelerator, tmp_path, model, warn=warnings.append)
    assert folder.name == "step_00000001"
    assert "shape" in warnings[0] and "step_00000005" in warnings[0]
    del foreign


def test_no_usable_checkpoint_is_one_clear_error(trained, tmp_path):
    accelerator, model, _, step_and_save = trained
    folder = step_and_save(1)
    (folder / "model.safetensors").unlink()
    with pytest.raises(HfGptError, match=r"no checkpoint to continue from.*model\.safetensors is missing"):
        load_newest_checkpoint(accelerator, tmp_path, model, warn=lambda message: None)


def test_a_step_set_aside_twice_keeps_both_copies(trained, tmp_path):
    """A run resumed from step 1 after step 2 was set aside writes step 2 again; if that one breaks too,
    both broken copies are kept and the error still comes as one clear message."""
    accelerator, model, _, step_and_save = trained
    step_and_save(1)
    (step_and_save(2) / "model.safetensors").write_bytes(b"broken")
    assert load_newest_checkpoint(accelerator, tmp_path, model, warn=lambda message: None)[0].name == "step_00000001"
    (step_and_save(2) / "model.safetensors").unlink()
    (tmp_path / "checkpoints" / "step_00000001" / "model.safetensors").unlink()
    warnings = []
    with pytest.raises(HfGptError, match="no checkpoint to continue from"):
        load_newest_checkpoint(accelerator, tmp_path, model, warn=warnings.append)
    assert "set aside as step_00000002.unusable.2" in warnings[0]
    with pytest.raises(HfGptError, match=r"set aside every one as unusable: step_00000001\.unusable, "):
        load_newest_checkpoint(accelerator, tmp_path, model, warn=warnings.append)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith("step_")) == [
        "step_00000001.unusable", "step_00000002.unusable", "step_00000002.unusable.2"]


def test_pruning_keeps_the_newest_the_best_and_the_resume_point(trained, tmp_path):
    _, _, _, step_and_save = trained
    for step in range(1, 7):
        step_and_save(step)
    pruned = prune_checkpoints(tmp_path, keep_last=2, protected=(2, 3))
    assert [p.name for p in pruned] == ["step_00000001", "step_00000004"]
    assert [p.name for p in complete_checkpoints(tmp_path)] == \
        ["step_00000002", "step_00000003", "step_00000005", "step_00000006"]
    assert prune_checkpoints(tmp_path, keep_last=0) == []


def test_keep_last_one_always_leaves_a_complete_checkpoint(trained, tmp_path):
    """Pruning runs only after the new checkpoint is renamed into place and pointed at."""
    _, _, _, step_and_save = trained
    for step in range(1, 4):
        step_and_save(step)
        assert all(checkpoint_problem(p) == "" for p in complete_checkpoints(tmp_path))
        prune_checkpoints(tmp_path, keep_last=1)
        assert [p.name for p in complete_checkpoints(tmp_path)] == [f"step_{step:08d}"]


def test_a_full_disk_leaves_the_previous_checkpoint_intact(trained, tmp_path, monkeypatch):
    _, _, _, step_and_save = trained
    first = step_and_save(1)
    import accelerate.checkpointing

    real_save = accelerate.checkpointing.save

    def fill_the_disk(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        Path(f).write_bytes(Path(f).read_bytes()[:10])  # the write got this far
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))

    monkeypatch.setattr(accelerate.checkpointing, "save", fill_the_disk)
    with pytest.raises(OSError, match="No space left on device"):
        step_and_save(2)
    assert [p.name for p in complete_checkpoints(tmp_path)] == [first.name]
    assert checkpoint_problem(first) == ""
    assert (tmp_path / "checkpoints" / "latest.txt").read_text().strip() == first.name
    assert not list((tmp_path / "checkpoints").glob(".step_*")), "the partial save was removed"


def test_leftovers_of_an_interrupted_save_are_cleared(tmp_path):
    (tmp_path / "checkpoints" / ".step_00000009.tmp").mkdir(parents=True)
    assert [p.name for p in clear_leftovers(tmp_path)] == [".step_00000009.tmp"]
    assert not (tmp_path / "checkpoints" / ".step_00000009.tmp").exists()


def test_pruning_deletes_only_sealed_checkpoints_never_a_look_alike(trained, tmp_path):
    """A step_N folder without a manifest, a step_N link and an odd name are not hfgpt's checkpoints."""
    _, _, _, step_and_save = trained
    checkpoints = tmp_path / "checkpoints"
    (checkpoints / "step_00000001").mkdir(parents=True)  # no manifest: not a checkpoint hfgpt sealed
    (checkpoints / "step_00000001" / "notes.txt").write_text("mine")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.txt").write_text("keep")
    (checkpoints / "step_00000002").symlink_to(precious, target_is_directory=True)
    (checkpoints / "step_3").mkdir()
    for step in (4, 5, 6):
        step_and_save(step)
    assert [p.name for p in prune_checkpoints(tmp_path, keep_last=1)] == ["step_00000004", "step_00000005"]
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "latest", "latest.txt", "step_00000001", "step_00000002", "step_00000006", "step_3"]
    assert (checkpoints / "step_00000001" / "notes.txt").read_text() == "mine"
    assert (precious / "data.txt").read_text() == "keep"


def test_clearing_leftovers_removes_only_hfgpt_staging_names(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    for name in (".step_00000009.tmp", ".step_00000003.deleting", ".step_notes", ".step_00000001.backup",
                 ".step_7.tmp"):
        (checkpoints / name).mkdir(parents=True)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.txt").write_text("keep")
    (checkpoints / ".step_00000004.tmp").symlink_to(precious, target_is_directory=True)
    assert [p.name for p in clear_leftovers(tmp_path)] == [".step_00000003.deleting", ".step_00000009.tmp"]
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        ".step_00000001.backup", ".step_00000004.tmp", ".step_7.tmp", ".step_notes"]
    assert (precious / "data.txt").read_text() == "keep"
