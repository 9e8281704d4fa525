"""`hfgpt plot` draws runs from their logs into a PNG; `hfgpt runs` lists runs one line each."""

from __future__ import annotations

import json

import pytest

from hfgpt.cli import main
from hfgpt.sharing.plots import plot_png

PNG = b"\x89PNG\r\n\x1a\n"


def fake_run(folder, losses, status="completed", parent=None):
    """A run's records as hfgpt writes them: train records every step, a validation every other."""
    folder.mkdir(parents=True)
    lines = []
    for step, loss in enumerate(losses, start=1):
        lines.append({"step": step, "split": "train", "loss": loss, "lr": 1e-3 / step, "tokens_per_s": 1000.0 + step,
                      "ms_per_step": 50.0, "tokens": 256 * step})
        if step % 2 == 0:
            lines.append({"step": step, "split": "valid", "loss": loss + 0.1, "ppl": 2.0, "acc": 0.5})
    (folder / "train_log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"step": 9, "spl')
    (folder / "run.json").write_text(json.dumps({
        "status": status, "mode": "train", "parent": parent, "config": {"training": {"max_steps": 10}},
        "updated": "2026-11-30T10:00:00+0000", "sessions": [
            {"started": "2026-11-30T09:00:00+0000", "ended": "2026-11-30T09:01:30+0000", "end_step": len(losses)}]}))
    return folder


@pytest.mark.parametrize("x", ["step", "tokens", "time"])
def test_plot_draws_one_or_more_runs(tmp_path, x):
    a, b = fake_run(tmp_path / "a", [4.0, 3.0, 2.5, 2.0]), fake_run(tmp_path / "b", [4.2, 3.5, 3.0])
    assert plot_png([a, b], x).startswith(PNG)


def test_the_plot_command_writes_into_the_run_or_where_asked(tmp_path, capsys, monkeypatch):
    a, b = fake_run(tmp_path / "a", [4.0, 3.0]), fake_run(tmp_path / "b", [4.0, 3.9])
    assert main(["plot", str(a)]) == 0 and (a / "loss.png").read_bytes().startswith(PNG)
    assert main(["plot", str(a), str(b), "--output", str(tmp_path / "both.png"), "--x", "tokens"]) == 0
    assert (tmp_path / "both.png").read_bytes().startswith(PNG)
    assert main(["plot", str(tmp_path)]) == 2 and "no train_log.jsonl" in capsys.readouterr().err


def test_an_output_gets_the_folders_it_lacks_and_a_refused_plot_leaves_none(tmp_path, capsys):
    """The rule of every --output (docs/sharing.md): missing folders are made, and removed again by a command
    that fails. A plot refused for a run with nothing to draw left the folders it had made for its output."""
    a = fake_run(tmp_path / "a", [4.0, 3.0])
    assert main(["plot", str(a), "--output", str(tmp_path / "no" / "such" / "dir" / "x.png")]) == 0
    assert (tmp_path / "no" / "such" / "dir" / "x.png").read_bytes().startswith(PNG)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "train_log.jsonl").write_text("")
    assert main(["plot", str(empty), "--output", str(tmp_path / "new" / "dir" / "x.png")]) == 2
    assert "Nothing to plot" in capsys.readouterr().err and not (tmp_path / "new").exists()


def test_runs_lists_one_line_per_run(tmp_path, capsys):
    fake_run(tmp_path / "a", [4.0, 3.0, 2.5, 2.0])
    fake_run(tmp_path / "exp" / "b", [4.0, 3.5], status="interrupted", parent={"source": "/x/final"})
    assert main(["runs", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "status", "steps", "best", "valid", "tokens", "time", "parent", "updated"]
    assert lines[1].split() == ["a", "completed", "4/10", "2.1000", "@4", "1,024", "1m30s", "-", "2026-11-30",
                                "10:00:00"]
    assert lines[2].split()[:4] == ["exp/b", "interrupted", "2/10", "3.6000"] and "/x/final" in lines[2]
    assert main(["runs", str(tmp_path / "none")]) == 2
