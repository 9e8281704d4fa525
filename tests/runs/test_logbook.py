"""The logbook: one JSON line per record on the main process, cut back to a checkpoint's step on resume."""

from __future__ import annotations

import json
import sys

import pytest
from accelerate import Accelerator

from hfgpt.runs.logbook import SAMPLES_LOG, TRAIN_LOG, Logbook, format_record, truncate_jsonl


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def train_record(step: int) -> dict:
    return {"step": step, "split": "train", "loss": 2.0, "ppl": 7.39, "acc": 0.25, "lr": 1e-3, "grad_norm": 0.5,
            "tokens_per_s": 1234.0, "ms_per_step": 12.5}


def test_truncate_drops_later_steps_and_lines_cut_short(tmp_path):
    path = tmp_path / TRAIN_LOG
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in (1, 2, 3, 4)) + '{"step": 5, "lo')
    with open(path, "ab") as log:
        log.write(b"\n\xff\xfe{garbage\n")  # bytes that are not even UTF-8
    truncate_jsonl(path, 3)
    assert records(path) == [{"step": 1}, {"step": 2}, {"step": 3}]
    truncate_jsonl(tmp_path / "absent.jsonl", 3)  # a run that never logged: nothing to cut
    assert not (tmp_path / "absent.jsonl").exists()


def test_a_resumed_logbook_goes_on_from_the_checkpoint_step(tmp_path):
    accelerator = Accelerator(cpu=True)
    first = Logbook(accelerator, tmp_path, max_steps=6, start_step=0, progress_bar=False)
    for step in (1, 2, 3, 4):
        first.record(train_record(step))
        first.samples(step, [[step, step + 10]])
    first.close()

    resumed = Logbook(accelerator, tmp_path, max_steps=6, start_step=2, progress_bar=False)
    resumed.record(train_record(3))
    resumed.close()
    assert [r["step"] for r in records(tmp_path / TRAIN_LOG)] == [1, 2, 3]
    assert records(tmp_path / SAMPLES_LOG) == [{"step": 1, "blocks": [[1, 11]]}, {"step": 2, "blocks": [[2, 12]]}]
    assert all("time" in r for r in records(tmp_path / TRAIN_LOG))


def test_records_print_one_line_and_a_custom_line_replaces_it(tmp_path, capsys):
    logbook = Logbook(Accelerator(cpu=True), tmp_path, max_steps=100, start_step=0, progress_bar=False)
    logbook.record(train_record(7))
    logbook.record({"step": 8, "split": "skipped", "skipped_steps": 1}, line="step 8: skipped")
    printed = capsys.readouterr().out.splitlines()
    assert printed == [format_record(train_record(7), 100), "step 8: skipped"]
    assert printed[0].startswith("step   7/100 | train | loss 2.0000 | ppl 7.39 | acc 25.0% | lr 1.00e-03")


def test_validation_lines_leave_out_the_training_figures():
    line = format_record({"step": 10, "split": "valid", "loss": 1.5, "ppl": 4.48, "acc": 0.5}, 10)
    assert line == "step 10/10 | valid | loss 1.5000 | ppl 4.48 | acc 50.0%"


def test_a_number_that_is_not_finite_is_logged_as_null(tmp_path):
    logbook = Logbook(Accelerator(cpu=True), tmp_path, max_steps=6, start_step=0, progress_bar=False)
    logbook.record({**train_record(1), "grad_norm": float("nan"), "ppl": float("inf")})
    logbook.close()
    line = (tmp_path / TRAIN_LOG).read_text()
    assert "NaN" not in line and "Infinity" not in line
    assert json.loads(line)["grad_norm"] is None and json.loads(line)["ppl"] is None


def test_a_train_line_shows_mfu_when_the_record_has_it():
    assert format_record({**train_record(3), "mfu": 0.123}, 10).endswith("| 12.5 ms/step | mfu 12.3%")
    assert "mfu" not in format_record({**train_record(3), "mfu": 0.0}, 10)


@pytest.mark.parametrize("terminal", [True, False])
def test_the_bar_draws_on_a_terminal_and_a_log_file_gets_the_metric_lines_only(tmp_path, monkeypatch, capsys,
                                                                                terminal):
    """Redirected to a file (a log, CI, Slurm), tqdm's frames would be a line each between the metric lines."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    logbook = Logbook(Accelerator(cpu=True), tmp_path, max_steps=5, start_step=0, progress_bar=True)
    for step in range(1, 6):
        logbook.advance()
        logbook.record(train_record(step))
    logbook.close()
    captured = capsys.readouterr()
    assert captured.out.count("| train |") == 5
    assert ("5/5" in captured.err) == terminal
    assert captured.err == "" or terminal
