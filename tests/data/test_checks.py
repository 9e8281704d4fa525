"""Damage that only a whole read finds: a bad line deep in a .jsonl, a damaged row group inside a .parquet. Every
way in (packed, streamed, a local dataset folder, the command line) names the file and the place, in one paragraph.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from helpers import make_docs, run, section, write_jsonl

from hfgpt.cli import main
from hfgpt.config import TrainConfig
from hfgpt.data.batches import BatchLayout
from hfgpt.data.feed import StreamBatches
from hfgpt.data.prepare import prepare_data
from hfgpt.errors import HfGptError

GOOD_LINES = 6000  # more lines than pyarrow parses in one block, so that its own "in row N" is not the line


def jsonl_with(path: Path, bad: str, before: int = GOOD_LINES) -> Path:
    """`before` good lines, then `bad` as the line after them, then one more good line."""
    write_jsonl(path, make_docs(before))
    with open(path, "a", encoding="utf-8") as file:
        file.write(bad + "\n" + json.dumps({"text": "after"}) + "\n")
    return path


def damaged_parquet(path: Path, group: int) -> Path:
    """Four row groups of 100 documents; one byte in the middle of row group `group`'s text column flipped."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": [f"document {i} " * 30 for i in range(400)]}), path, row_group_size=100)
    chunk = pq.ParquetFile(path).metadata.row_group(group).column(0)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(path.read_bytes())
    data[start + chunk.total_compressed_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


BAD_LINE = rf"line {GOOD_LINES + 1} is not valid JSON \(Expecting value, column 10: '{{\"text\": broken}}'\)"
CASES = {
    "broken line": (lambda root: jsonl_with(root / "a.jsonl", '{"text": broken}'), BAD_LINE),
    "not an object": (lambda root: jsonl_with(root / "a.jsonl", '["text", "a list"]'),
                      rf"line {GOOD_LINES + 1} holds a JSON array, not an object"),
    "cut short": (lambda root: jsonl_with(root / "a.jsonl", '{"text": "no end'),
                  rf"line {GOOD_LINES + 1} is not valid JSON \(Unterminated string"),
    "damaged row group": (lambda root: damaged_parquet(root / "a.parquet", group=2),
                          r"row group 2 of 4 \(rows 200 to 299\) is damaged \("),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("streaming", [False, True])
def test_a_damaged_file_is_named_with_the_place(tmp_path, case, streaming) -> None:
    make, place = CASES[case]
    path = make(tmp_path / "data")
    with pytest.raises(HfGptError, match=rf"^{path} cannot be read: {place}") as caught:
        run(section(tmp_path, train=path.name, streaming=streaming), seq_len=8)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("value", "kind"), [({"x": 1}, "object"), (["x"], "array"), (5, "number")])
def test_a_row_whose_text_is_not_a_string_is_named(tmp_path, value, kind) -> None:
    """datasets reads such a column as JSON values; the advice to pick another column would be wrong."""
    jsonl_with(tmp_path / "data" / "a.jsonl", json.dumps({"text": value}))
    # datasets 5 reads such a column (as its Json feature), datasets 4 fails on the line: each is named its way
    with pytest.raises(HfGptError, match=rf"Column 'text' of --train a\.jsonl holds text in some rows and not in "
                                         rf"others: row {GOOD_LINES} \(counted from 0\) holds a JSON {kind}\.|"
                                         rf"a\.jsonl cannot be read: line {GOOD_LINES + 1} holds a JSON {kind} as its "
                                         "'text'"):
        run(section(tmp_path, train="a.jsonl"), seq_len=8)


def test_a_damaged_file_in_a_local_dataset_folder_is_named(tmp_path) -> None:
    jsonl_with(tmp_path / "data" / "mydata" / "train.jsonl", '{"text": broken}')
    with pytest.raises(HfGptError, match=rf"mydata/train\.jsonl cannot be read: {BAD_LINE}"):
        run(section(tmp_path, dataset="mydata"), seq_len=8)


def test_a_bad_line_met_while_a_streamed_run_trains_is_named(tmp_path) -> None:
    """Past the text that the tokenizer and the validation blocks read: the training stream finds it."""
    folder = tmp_path / "data" / "corpus"
    write_jsonl(folder / "validation.jsonl", make_docs(8, seed=9))
    write_jsonl(folder / "train.jsonl", make_docs(40))
    cfg = section(tmp_path, dataset="corpus", valid_split="validation", streaming=True)
    tokenizer = run(cfg, seq_len=8)[0].tokenizer
    jsonl_with(folder / "train.jsonl", '{"text": broken}', before=40)
    batches = StreamBatches(prepare_data(cfg, 8, log=lambda line: None, tokenizer=tokenizer), BatchLayout(2, 1, 1),
                            TrainConfig(), 0, [], torch.device("cpu"))
    try:
        with pytest.raises(HfGptError, match=r"train\.jsonl cannot be read: line 41 is not valid JSON"):
            for step in range(1000):
                batches.micro_batch(step, 0)
    finally:
        batches.close()


def test_the_command_line_says_it_in_one_paragraph(tmp_path, monkeypatch, capsys) -> None:
    """The issue's repro: a 97-line traceback, exit status 1."""
    monkeypatch.chdir(tmp_path)
    Path("bad.jsonl").write_text('{"text": "hello world"}\n{"text": broken\n')
    flags = ["--data-path", "bad.jsonl", "--layers", "1", "--dim", "32", "--heads", "2", "--seq", "32",
             "--max-steps", "20", "--cache-dir", "cache", "--trackers", "none"]
    assert main(["train", *flags]) == 2
    err = capsys.readouterr().err
    assert err == (f"hfgpt: error: {tmp_path}/bad.jsonl cannot be read: line 2 is not valid JSON (Expecting value, "
                   "column 10: '{\"text\": broken'). Each line of a .jsonl file is one JSON object, such as "
                   '{"text": "..."}: fix that line, or leave the file out.\n')
