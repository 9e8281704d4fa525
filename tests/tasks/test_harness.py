"""lm-evaluation-harness behind hfgpt's tasks: a name it does not know, a task that is not multiple choice, and
lm-eval not installed are each one sentence, before any training."""

from __future__ import annotations

import sys

import pytest
from helpers import import_or_unavailable

from hfgpt.errors import HfGptError
from hfgpt.tasks.harness import check_known, harness_task, lm_eval
from hfgpt.tasks.loading import load_tasks


def test_without_lm_eval_a_named_task_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # as if it were not installed: importing it fails
    with pytest.raises(HfGptError, match=r'pip install -e "\.\[eval\]"\. A local \.jsonl task needs nothing more'):
        lm_eval()
    with pytest.raises(HfGptError, match="need it installed"):
        load_tasks("hellaswag")


@pytest.mark.slow  # lm-eval indexes its thousands of task files: seconds
def test_a_task_lm_eval_does_not_know_is_refused_by_name():
    import_or_unavailable("lm_eval")
    with pytest.raises(HfGptError, match=r"knows no task 'hellaswagg'.*lm-eval ls tasks"):
        check_known(["hellaswag", "hellaswagg"])


@pytest.mark.slow  # lm-eval indexes its thousands of task files: seconds
def test_a_task_that_is_not_multiple_choice_is_refused(tmp_path):
    import_or_unavailable("lm_eval")
    (tmp_path / "echo.yaml").write_text("task: echo\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
                                        f"    test: {tmp_path / 'echo.jsonl'}\ntest_split: test\n"
                                        "output_type: generate_until\ndoc_to_text: '{{text}}'\n"
                                        "doc_to_target: '{{text}}'\n")
    (tmp_path / "echo.jsonl").write_text('{"text": "hello"}\n')
    with pytest.raises(HfGptError, match="'echo' is not a multiple-choice task"):
        harness_task("echo", task_dir=str(tmp_path))
