"""Reading back what the trackers wrote, with their own formats: a W&B offline run's `.wandb` file (a log of
`wandb_internal_pb2.Record` protobufs in LevelDB's log framing: 32 KiB blocks of chunks, each a 7-byte header of
CRC, length and type) and Trackio's local SQLite database."""

from __future__ import annotations

import json
import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_BLOCK, _HEADER = 32768, 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _chunks(data: bytes) -> Iterator[bytes]:
    position, pending = _HEADER, b""  # after the file header b":W&B" + magic + version
    while position + _HEADER <= len(data):
        space = _BLOCK - position % _BLOCK
        _, length, kind = struct.unpack("<IHB", data[position:position + _HEADER])
        if space < _HEADER or (kind == 0 and length == 0):  # the block's padding
            position += space
            continue
        chunk = data[position + _HEADER:position + _HEADER + length]
        position += _HEADER + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk


def wandb_run(path: Path) -> dict[str, Any]:
    """The run (project, group, job type, id, name), config and history that an offline `.wandb` file holds."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data.startswith(b":W&B"), path
    found: dict[str, Any] = {"config": {}, "history": []}
    for raw in _chunks(data):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            found.update(project=run.project, group=run.run_group, job_type=run.job_type, id=run.run_id,
                         name=run.display_name)
        elif kind == "config":
            found["config"].update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            found["history"].append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                     for item in record.history.item})
    return found


def trackio_metrics(database: Path) -> list[tuple[str, int, dict[str, Any]]]:
    """(run name, step, metrics) of every row Trackio logged in a project's database."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT run_name, step, metrics FROM metrics ORDER BY id").fetchall()
    return [(name, step, json.loads(metrics)) for name, step, metrics in rows]
