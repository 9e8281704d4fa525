"""recipes/train.py with every tokenizer training and every tokenizing of a split written to a log by rank: which
process of which machine tokenized what. Shared by test_prepare_once.py and test_multinode.py."""

from __future__ import annotations

from pathlib import Path

from helpers import REPO

# recipes/train.py, with every tokenizer training and every tokenizing of a split written to a log by rank.
RECORDING = """
import os, runpy, sys
import hfgpt.data.texts, hfgpt.data.tokenization

log, train_tokenizer, encode_tasks = sys.argv[1], hfgpt.data.tokenization.train_tokenizer, hfgpt.data.texts.encode_tasks


def record(what):
    with open(log, "a") as handle:
        handle.write(f"{os.environ.get('RANK', '0')} {what}\\n")


def recorded_training(kind, *args, **kwargs):
    record(f"trains a {kind} tokenizer")
    return train_tokenizer(kind, *args, **kwargs)


def recorded_tokenizing(tasks, args, num_proc, total, desc, progress):
    record(desc)
    return encode_tasks(tasks, args, num_proc, total, desc, progress)


hfgpt.data.tokenization.train_tokenizer, hfgpt.data.texts.encode_tasks = recorded_training, recorded_tokenizing
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
WORK = ["trains a char tokenizer", "tokenizing train", "tokenizing valid"]


def recorder(root: Path) -> list[str]:
    (root / "recording.py").write_text(RECORDING)
    return [str(root / "recording.py"), str(root / "log.txt"), str(REPO / "recipes" / "train.py")]


def logged(root: Path) -> list[str]:
    return sorted((root / "log.txt").read_text().splitlines())
