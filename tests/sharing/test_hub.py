"""Pushing to the Hub with `hfgpt push` and while training, and continuing or forking from the Hub.

Only the network is faked, at the `huggingface_hub` boundary (tests/fake_hub.py): HfApi's create_repo,
create_branch and create_commit record what they are asked; hfgpt's commit operations, cards and files are
real. Downloads use huggingface_hub's own offline mode over a cache laid out as a download leaves it. The
offline and no-network cases use no fake at all: HF_HUB_OFFLINE, and an endpoint where nothing listens.
"""

from __future__ import annotations

import io
import json

import pytest
from fake_hub import FakeHub, cache_as_downloaded, online
from helpers import read_log, snapshot, tiny_run_flags
from huggingface_hub import ModelCard, constants
from huggingface_hub.repocard_data import model_index_to_eval_results

from hfgpt.cli import main
from hfgpt.exporters import export
from hfgpt.runs.checkpoint import complete_checkpoints
from hfgpt.sharing.publish import sample_in
from hfgpt.training.modes import train_setup
from hfgpt.training.trainer import run

MODEL_FILES = {"README.md", "loss.png", "config.json", "configuration_hfgpt.py", "modeling_hfgpt.py",
               "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
RUN_FILES = {"config.toml", "run.json", "train_log.jsonl", "tokenizer/tokenizer.json",
             "tokenizer/tokenizer_config.json", "architecture/config.json", "architecture/configuration_hfgpt.py"}
CHECKPOINT_FILES = {"checkpoint.json", "model.safetensors", "optimizer.bin", "random_states_0.pkl",
                    "trainer_state.json"}


@pytest.fixture
def hub(monkeypatch) -> FakeHub:
    return FakeHub().install(monkeypatch)


def test_push_uploads_final_with_its_card_and_plot_in_one_commit(tiny_run, hub, capsys):
    before = snapshot(tiny_run)
    assert main(["push", str(tiny_run), "--repo-id", "me/tiny", "--private", "--commit-message", "first"]) == 0
    assert hub.repos == [("me/tiny", True)] and len(hub.commits) == 1
    commit = hub.commits[0]
    assert (commit.repo_id, commit.message, commit.revision) == ("me/tiny", "first", None)
    assert set(commit.files) == MODEL_FILES | {"metrics.json"}
    local, pushed = (ModelCard(text) for text in ((tiny_run / "final" / "README.md").read_text(),
                                                   commit.files["README.md"].decode()))
    assert pushed.data == local.data and pushed.data.license == "mit", "the metadata as the run wrote it"
    assert 'from_pretrained("me/tiny", trust_remote_code=True)' in pushed.text, "loaded from the repo"
    assert "path/to/this/folder" in local.text and sample_in(pushed.content) == sample_in(local.content)
    assert commit.files["model.safetensors"] == (tiny_run / "final" / "model.safetensors").read_bytes()
    assert json.loads(commit.files["config.json"])["auto_map"]["AutoModelForCausalLM"] == \
        "modeling_hfgpt.HfGptForCausalLM"
    assert "pushed: https://" in capsys.readouterr().out and snapshot(tiny_run) == before, "nothing local changes"


def test_push_with_checkpoints_holds_what_continue_needs(tiny_run, hub):
    assert main(["push", str(tiny_run), "--repo-id", "me/tiny", "--include-checkpoints", "--revision", "v1"]) == 0
    files = set(hub.commits[0].files)
    checkpoints = {f"checkpoints/{c.name}/{name}" for c in complete_checkpoints(tiny_run) for name in CHECKPOINT_FILES}
    assert files == MODEL_FILES | {"metrics.json"} | RUN_FILES | checkpoints
    assert hub.branches == [("me/tiny", "v1")] and hub.commits[0].revision == "v1"


def test_a_folder_without_a_card_gets_one(tiny_run, hub, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    for path in (tiny_run / "final").iterdir():
        if path.name not in ("README.md", "loss.png", "metrics.json"):
            (folder / path.name).write_bytes(path.read_bytes())
    assert main(["push", str(folder), "--repo-id", "me/plain", "--license", "apache-2.0"]) == 0
    card = ModelCard(hub.commits[0].files["README.md"].decode())
    assert card.data.license == "apache-2.0" and 'from_pretrained("me/plain", trust_remote_code=True)' in card.text


def test_an_export_pushes_with_a_card_that_loads_it_without_hfgpt(tiny_run, hub, tmp_path):
    folder = export(tiny_run / "final", "gpt2", tmp_path / "gpt2")
    assert main(["push", str(folder), "--repo-id", "me/stock"]) == 0
    files = hub.commits[-1].files
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(files)
    card = ModelCard(files["README.md"].decode())
    assert 'from_pretrained("me/stock")' in card.text and "trust_remote_code=True" not in card.text
    assert "custom_code" not in card.data.tags and json.loads(files["config.json"])["model_type"] == "gpt2"

    with pytest.warns(UserWarning, match="tanh approximation"):
        gguf_file = export(tiny_run / "final", "gguf", tmp_path / "tiny-f16.gguf", dtype="f16")
    assert main(["push", str(gguf_file), "--repo-id", "me/tiny-gguf"]) == 0
    files = hub.commits[-1].files
    assert set(files) == {"tiny-f16.gguf", "README.md"} and files["tiny-f16.gguf"] == gguf_file.read_bytes()
    card = ModelCard(files["README.md"].decode())
    assert "llama-cli -hf me/tiny-gguf" in card.text and "gguf" in card.data.tags


@pytest.mark.parametrize(("setting", "message"), [
    ("offline", "HF_HUB_OFFLINE is set"), ("no token", "there is no Hugging Face token. Set HF_TOKEN, or log in"),
    ("bad id", "'a/b/c' is not a valid Hub repo id"),
])
def test_a_push_that_cannot_work_is_one_sentence_and_changes_nothing(tiny_run, hub, monkeypatch, capsys, setting,
                                                                      message):
    if setting == "offline":
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    elif setting == "no token":
        monkeypatch.delenv("HF_TOKEN")
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tiny_run / "no-token-here"))
    before = snapshot(tiny_run)
    assert main(["push", str(tiny_run), "--repo-id", "a/b/c" if setting == "bad id" else "me/tiny"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hfgpt: error: ") and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not hub.commits and snapshot(tiny_run) == before


@pytest.mark.parametrize("offline", [False, True])
def test_a_push_of_a_folder_that_is_not_there_says_so_first(hub, tmp_path, monkeypatch, capsys, offline):
    """It complained of the token or the network, which cannot be what is wrong with a path that is not there."""
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-here"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    assert main(["push", str(tmp_path / "does-not-exist"), "--repo-id", "me/x"]) == 2
    assert capsys.readouterr().err == (f"hfgpt: error: {tmp_path}/does-not-exist does not exist; give a run "
                                       "directory, its final/ or best/, or any save_pretrained folder.\n")
    assert not hub.repos and not hub.commits


def test_continuing_a_hub_id_offline_that_the_cache_lacks_says_to_unset_offline(tmp_path, monkeypatch, capsys):
    """With HF_HUB_OFFLINE=1 already set, it said "set HF_HUB_OFFLINE=1 to work without it"."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)
    assert main(["continue", "me/not-there"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after "downloading the run ..."
    assert err.startswith("hfgpt: error: Cannot download the run pushed to me/not-there: HF_HUB_OFFLINE is set, so "
                          f"huggingface_hub reads only its cache ({tmp_path}/hub-cache), and the cache holds no "
                          "copy of it. Unset HF_HUB_OFFLINE to download it") and "set HF_HUB_OFFLINE=1" not in err
    assert not (tmp_path / "runs").exists()


def test_no_network_is_one_clear_error(tiny_run, monkeypatch, capsys):
    """The real huggingface_hub, against an endpoint where nothing listens."""
    online(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_tests")
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    assert main(["push", str(tiny_run), "--repo-id", "me/tiny"]) == 2
    err = capsys.readouterr().err
    assert "Cannot create the Hub repo me/tiny: the Hub at http://127.0.0.1:9 cannot be reached" in err


@pytest.mark.slow  # trains in this process
def test_training_pushes_every_save_in_the_background_and_final_at_the_end(tmp_path, hub):
    """A snapshot waiting behind an upload is replaced by a newer one, so the step-8 save may or may not get
    a commit of its own before final/'s; what each commit holds is exact either way."""
    hub.failures = 1  # the first upload fails: a warning, and the next save uploads again
    with pytest.warns(UserWarning, match=r"the upload of step 4 to the Hub repo me/live failed"):
        run_dir = run(train_setup(tiny_run_flags(tmp_path, "live", "--max-steps", "8", "--ckpt-every", "4",
                                                 "--eval-every", "4", "--push-to-hub", "--hub-model-id", "me/live",
                                                 "--hub-strategy", "checkpoint")))
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    *saves, final = hub.commits
    step8 = {f"checkpoints/step_00000008/{name}" for name in CHECKPOINT_FILES}
    assert len(saves) <= 1 and all(set(save.files) == MODEL_FILES | RUN_FILES | step8 for save in saves)
    assert set(final.files) == MODEL_FILES | {"metrics.json"} | RUN_FILES | step8
    assert final.message == "hfgpt: live at step 8" and not final.deleted
    assert final.files["model.safetensors"] == (run_dir / "final" / "model.safetensors").read_bytes()
    assert final.files["README.md"] == (run_dir / "final" / "README.md").read_bytes()
    assert b'from_pretrained("me/live", trust_remote_code=True)' in final.files["README.md"]
    for commit in hub.commits:  # the card of a checkpoint's model names its step's validation
        _, results = model_index_to_eval_results(ModelCard(commit.files["README.md"].decode()).data.to_dict()
                                                 ["model-index"])
        assert results[0].metric_value == round(valid_loss(run_dir, 8), 6)


def valid_loss(run_dir, step):
    return next(r["loss"] for r in read_log(run_dir) if r["split"] == "valid" and r["step"] == step)


@pytest.mark.slow  # trains in this process
def test_the_checkpoint_strategy_keeps_only_the_latest_checkpoint_on_the_hub(tmp_path, hub):
    run(train_setup(tiny_run_flags(tmp_path, "ckpt", "--max-steps", "8", "--ckpt-every", "4", "--eval-every", "4",
                                   "--push-to-hub", "--hub-model-id", "me/ckpt", "--hub-strategy", "checkpoint")))
    pushed_step4 = [c for c in hub.commits if "checkpoints/step_00000004/model.safetensors" in c.files]
    deleted = [path for c in hub.commits for path in c.deleted]
    assert deleted == (["checkpoints/step_00000004/"] if pushed_step4 else [])
    assert "checkpoints/step_00000008/model.safetensors" in hub.commits[-1].files


@pytest.mark.slow  # trains in this process
def test_every_save_pushes_the_model_without_the_run(tmp_path, hub):
    run(train_setup(tiny_run_flags(tmp_path, "each", "--max-steps", "8", "--ckpt-every", "4", "--eval-every", "4",
                                   "--push-to-hub", "--hub-model-id", "me/each", "--hub-strategy", "every_save")))
    assert all(set(c.files) - {"metrics.json"} == MODEL_FILES for c in hub.commits) and 2 <= len(hub.commits) <= 3


def test_a_push_run_stops_before_any_work_when_it_cannot_push(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    flags = tiny_run_flags(tmp_path, "never", "--push-to-hub", "--hub-model-id", "me/never")
    assert main(["train", *flags]) == 2
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "never").exists() and not (tmp_path / "cache").exists()
    assert main(["train", *tiny_run_flags(tmp_path, "x", "--push-to-hub")]) == 2
    assert "--push-to-hub needs --hub-model-id" in capsys.readouterr().err


@pytest.mark.slow  # trains in this process
def test_continue_and_fork_take_a_hub_id(tiny_run, hub, tmp_path, monkeypatch, capsys):
    """Push with checkpoints, then resume on 'another machine': the Hub cache holds what a download leaves."""
    assert main(["push", str(tiny_run), "--repo-id", "me/tiny", "--include-checkpoints"]) == 0
    cache = tmp_path / "hub-cache"
    cache_as_downloaded(cache, "me/tiny", hub.commits[0].files)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    assert main(["continue", "me/tiny", "--rundir", "elsewhere", "--max-steps", "10"]) == 0
    resumed = tmp_path / "elsewhere" / "tiny"
    assert json.loads((resumed / "run.json").read_text())["sessions"][-1]["start_step"] == 8
    assert json.loads((resumed / "final" / "metrics.json").read_text())["step"] == 10
    assert main(["generate", "me/tiny", "--max-new-tokens", "5", "--seed", "1"]) == 0
    assert main(["fork", "me/tiny", "--max-steps", "2", "--rundir", "forks", "--run-name", "f", "--trackers", "none",
                 "--train", str(tiny_run.parent.parent / "corpus"), "--cache-dir", str(tmp_path / "c"),
                 "--no-progress-bar", "--sample-tokens", "0"]) == 0
    parent = json.loads((tmp_path / "forks" / "f" / "run.json").read_text())["parent"]
    assert parent["source"] == "me/tiny"


def test_continue_from_a_hub_repo_without_checkpoints_says_how_to_push_them(tiny_run, hub, tmp_path, monkeypatch,
                                                                            capsys):
    cache_as_downloaded(tmp_path / "hub-cache", "me/model-only", {"config.json": b"{}"})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)
    assert main(["continue", "me/model-only"]) == 2
    assert "holds no run to continue" in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_png_is_what_the_card_shows(tiny_run, hub):
    assert main(["push", str(tiny_run), "--repo-id", "me/tiny"]) == 0
    png = io.BytesIO(hub.commits[0].files["loss.png"])
    assert png.read(8) == b"\x89PNG\r\n\x1a\n" and "](loss.png)" in hub.commits[0].files["README.md"].decode()


@pytest.mark.parametrize("name", ["me/" + "x" * 300, "runs/" + "x" * 300])
def test_a_path_too_long_to_look_up_is_a_missing_run_not_a_traceback(tmp_path, monkeypatch, capsys, name):
    """Found by the property test of run names: in a folder that exists, a name too long to look up made the
    Hub-id check's exists() raise."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / name.partition("/")[0]).mkdir()
    assert main(["continue", name]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hfgpt: error: ") and "Traceback" not in err and err.count("\n") == 1
