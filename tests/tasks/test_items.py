"""A task as the user writes it: one JSON item per line, each checked, each mistake named by file and line; and the
comma-separated --tasks value, local files and lm-evaluation-harness names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hfgpt.errors import HfGptError
from hfgpt.tasks.items import Item, read_task, task_names

GOOD = {"context": "2 + 2 =", "choices": ["4", "5", "22"], "label": 0}


def write(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_a_task_file_is_its_items_and_blank_lines_are_skipped(tmp_path):
    path = write(tmp_path / "sums.jsonl", json.dumps(GOOD), "", json.dumps({**GOOD, "label": 2, "id": "q2"}))
    task = read_task("sums", path)
    assert task.items == (Item("2 + 2 =", ("4", "5", "22"), 0), Item("2 + 2 =", ("4", "5", "22"), 2))
    assert task.chance == pytest.approx(1 / 3) and task.origin == str(path)
    assert len(read_task("sums", path, limit=1).items) == 1


@pytest.mark.parametrize(("line", "words"), [
    ('{"context": "x", "choices": ["a", "b"], "label": 0', ["line 2 is not valid JSON", "column"]),
    ('["x", ["a", "b"], 0]', ["line 2 is not an item", "context, choices and label"]),
    ('{"context": "x", "choices": ["a", "b"]}', ["line 2 is not an item"]),
    ('{"context": "x", "choices": ["a", "b"], "label": 2}', ["line 2: label 2 is not the index", "0 to 1"]),
    ('{"context": "x", "choices": ["a", "b"], "label": true}', ["label True"]),
    ('{"context": "x", "choices": ["a", " "], "label": 0}', ["line 2: choice 1 is empty"]),
    ('{"context": "x", "choices": ["a"], "label": 0}', ["at least two strings"]),
    ('{"context": 3, "choices": ["a", "b"], "label": 0}', ["context must be a string"]),
])
def test_a_bad_line_is_named_by_file_and_line(tmp_path, line, words):
    path = write(tmp_path / "bad.jsonl", json.dumps(GOOD), line)
    with pytest.raises(HfGptError) as caught:
        read_task("bad", path)
    message = str(caught.value)
    assert str(path) in message and all(word in message for word in words), message


def test_a_missing_or_empty_task_file_says_what_a_task_is(tmp_path):
    with pytest.raises(HfGptError, match=r"does not exist.*one per line"):
        read_task("gone", tmp_path / "gone.jsonl")
    with pytest.raises(HfGptError, match="holds no item"):
        read_task("empty", write(tmp_path / "empty.jsonl", ""))


def test_tasks_are_local_files_by_their_stem_or_name_or_lm_eval_names(tmp_path):
    write(tmp_path / "facts.jsonl", json.dumps(GOOD))
    names = task_names("facts.jsonl, hellaswag,mine=facts.jsonl,arc_easy", tmp_path)
    assert [(n.name, n.path) for n in names] == [("facts", (tmp_path / "facts.jsonl").resolve()), ("hellaswag", None),
                                                 ("mine", (tmp_path / "facts.jsonl").resolve()), ("arc_easy", None)]
    with pytest.raises(HfGptError, match="Two tasks are named 'facts'"):
        task_names("facts.jsonl,facts.jsonl", tmp_path)
