"""Helpers the tests share: small text corpora made on the spot, and running the training entry point.

Also tiny .txt/.jsonl/.parquet files, nanoGPT-style .bin shards, and `prepare_data` runs on them, for
test_data.py, test_sources.py and test_shards.py; damaging, planting and re-sealing checkpoint files; and
what a test does when a tool it needs is missing.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import importlib
import json
import os
import pickle
import random
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from warm_launch import WarmLauncher

from hfgpt.config import DataSection
from hfgpt.data.prepare import PreparedData, prepare_data
from hfgpt.runs.checkpoint import checkpoint_step
from hfgpt.runs.manifest import MANIFEST, write_manifest

REPO = Path(__file__).resolve().parents[1]

PANGRAMS = [
    "The quick brown fox jumps over the lazy dog.",
    "Pack my box with five dozen liquor jugs.",
    "How vexingly quick daft zebras jump!",
    "Sphinx of black quartz, judge my vow.",
]


def running_in_ci() -> bool:
    """Whether `CI` is set to a true value, as CI services and .ci/run set it."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose tool (DeepSpeed, mpirun, wandb) is missing here; in CI, where the dev extra installs
    every one, fail it instead, so that a broken install cannot pass as "skipped"."""
    if running_in_ci():
        pytest.fail(f"{reason} (CI is set: a test that CI can run fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def import_or_unavailable(name: str) -> ModuleType:
    """The module `name`, or `unavailable` when it cannot be imported."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        unavailable(f"{name} cannot be imported ({error}); the dev extra installs it")


def write_corpus(folder: Path, documents: int = 40) -> Path:
    """A small, learnable corpus: repetitive English lines, one .txt file per document."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(documents):
        lines = [PANGRAMS[(index + k) % len(PANGRAMS)] for k in range(12)]
        (folder / f"doc{index:03d}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


# accelerate launch configs under accelerate_configs/, by launcher name; "python" runs the script directly.
LAUNCH_CONFIGS = {"accelerate": "cpu.yaml", "ddp2": "cpu-2proc.yaml", "zero2": "zero2-cpu.yaml",
                  "zero3": "zero3-cpu.yaml", "fsdp": "fsdp-cpu.yaml"}


def launch_command(args: list[str], launcher: str = "python", processes: int = 0) -> list[str]:
    """The command of a launch; `processes`: another number than the launcher's config says."""
    script = str(REPO / "recipes" / "train.py")
    if launcher == "python":
        return [sys.executable, script, *args]
    config = str(REPO / "accelerate_configs" / LAUNCH_CONFIGS[launcher])
    count = ["--num_processes", str(processes)] if processes else []
    # port 0: a free one, so that launches of several processes in two xdist workers do not meet on 29500
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config, *count,
            "--main_process_port", "0", script, *args]


def free_port() -> str:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a rendezvous that names its port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def without_cache_dir(flags: list[str]) -> list[str]:
    """`flags` without their --cache-dir: the cache then comes from HFGPT_CACHE, as a machine's own may."""
    cache = flags.index("--cache-dir")
    return flags[:cache] + flags[cache + 2:]


# The environment launches start from: this pytest process's as tests/isolated_environment.py set it, not os.environ
# as in-process tests and libraries leave it (CUBLAS_WORKSPACE_CONFIG, KMP_DUPLICATE_LIB_OK, HF_XET_HIGH_PERFORMANCE,
# ...), so that a launch sees the same environment whichever tests ran before it.
SESSION_ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}


def launch_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a launch: the session's, with `env` over it."""
    return {**SESSION_ENV, **(env or {})}


def run_hfgpt(args: list[str], cwd: Path, launcher: str = "python", timeout: int = 600,
              env: dict[str, str] | None = None, processes: int = 0) -> subprocess.CompletedProcess:
    """Run recipes/train.py (plain, or under `accelerate launch` with one of LAUNCH_CONFIGS, on its number of
    processes or on `processes`) and capture its output. A plain launch, or `accelerate launch` and each process
    torchrun starts for it, is forked from a server that has made its imports already, where nothing would tell it
    from a cold one (tests/warm_launch.py)."""
    command, env = launch_command(args, launcher, processes), launch_env(env)
    if os.environ.get("HFGPT_TESTS_COLD") != "1":
        if launcher != "python":
            env["PYTHON_EXEC"] = str(warm_launcher().python)  # the interpreter torchrun starts each process with
        warm = warm_launcher().run(command, cwd, env, timeout)
        if warm is not None:
            return warm
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@functools.cache
def warm_launcher() -> WarmLauncher:
    """This pytest process's server, started by its first plain launch and stopped when the process ends."""
    launcher = WarmLauncher(launch_env())
    atexit.register(launcher.close)
    return launcher


def child_pids(parent: int) -> list[int]:
    """The pids of `parent`'s children, a zombie among them too (read from /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def rank_pids(launcher_pid: int) -> dict[int, int]:
    """{rank: pid} of the training processes a launcher started (read from /proc)."""
    ranks = {}
    for pid in child_pids(launcher_pid):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        rank = [e for e in environ if e.startswith(b"RANK=")]
        if rank:
            ranks[int(rank[0][5:])] = pid
    return ranks


def alive(pid: int) -> bool:
    """Whether `pid` is a process that has not exited (a zombie waiting for its parent has)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def snapshot(root: Path) -> dict[str, tuple]:
    """Everything under `root`, without following links: each file's size, mtime and SHA-256, each link's
    target, each folder; two snapshots are equal only if nothing was added, removed or changed."""
    found: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            key = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[key] = ("link", os.readlink(path))
            elif path.is_dir():
                found[key] = ("folder",)
            else:
                stat = path.stat()
                found[key] = ("file", stat.st_size, stat.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return found


class _OpensAFile:
    """Unpickling this creates a file: the proof that a pickle ran code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant_pickle(path: Path, marker: Path) -> None:
    """Replace the file at `path` with a pickle whose loading, if it ran pickled code, would create `marker`;
    `torch.load(weights_only=True)` refuses it."""
    with open(path, "wb") as handle:
        pickle.dump({"state": _OpensAFile(marker)}, handle)


def flip_one_bit(path: Path) -> None:
    """Damage a file as a failing disk might: one bit in its middle flipped, its size unchanged."""
    data = path.read_bytes()
    middle = len(data) // 2
    path.write_bytes(data[:middle] + bytes([data[middle] ^ 0x10]) + data[middle + 1 :])


def reseal_checkpoint(folder: Path) -> None:
    """Write a checkpoint's manifest anew over its files as they are now, as anyone who can write the folder
    could: only the loader then stands between a planted file and the run."""
    (folder / MANIFEST).unlink()
    write_manifest(folder, checkpoint_step(folder))


TINY_MODEL_FLAGS = ["--dim", "32", "--heads", "2", "--layers", "2", "--seq", "32", "--batch", "8",
                    "--lr", "3e-3", "--warmup-steps", "5", "--log-every", "5", "--eval-every", "20",
                    "--eval-batches", "2", "--no-progress-bar", "--sample-tokens", "20"]


def tiny_run_flags(root: Path, name: str, *extra: str) -> list[str]:
    """Flags for a tiny run on a small corpus under `root`, logging every step, as `root/runs/<name>`."""
    corpus = write_corpus(root / "corpus", documents=10)
    return [*TINY_MODEL_FLAGS, "--train", str(corpus), "--trackers", "none", "--sample-tokens", "0",
            "--log-every", "1", "--rundir", str(root / "runs"), "--run-name", name, "--cache-dir",
            str(root / "cache"), *extra]


TIMING_FIELDS = ("time", "tokens_per_s", "ms_per_step", "mfu")  # what differs between two runs of the same math


def read_log(run_dir: Path, name: str = "train_log.jsonl") -> list[dict]:
    """The records of a run's train_log.jsonl (or another JSON-lines file of the run)."""
    return [json.loads(line) for line in (run_dir / name).read_text().splitlines()]


def untimed_log(run_dir: Path, name: str = "train_log.jsonl") -> list[dict]:
    """The records of a run's log without the fields that measure time."""
    return [{k: v for k, v in record.items() if k not in TIMING_FIELDS} for record in read_log(run_dir, name)]


def make_docs(n: int, seed: int = 0) -> list[str]:
    """Documents of very different lengths (1 to ~200 characters), some with unicode and newlines."""
    rng = np.random.default_rng(seed)
    words = ["alpha", "beta", "γάμμα", "日本", "😀", "\n", "\t", "x"]
    return [" ".join(rng.choice(words, size=int(rng.integers(1, 40)))) for _ in range(n)]


def write_jsonl(path: Path, docs: list[str], column: str = "text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({column: doc, "id": i}) + "\n" for i, doc in enumerate(docs)]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def write_parquet(path: Path, docs: list[str], column: str = "text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({column: docs, "id": list(range(len(docs)))}), path)
    return path


def write_txt(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def section(tmp_path: Path, **overrides) -> DataSection:
    """A data section reading from `tmp_path/data` and caching under `tmp_path/cache`."""
    return DataSection(datadir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"), **overrides)


def run(cfg: DataSection, seq_len: int = 16) -> tuple[PreparedData, list[str]]:
    """`prepare_data`, returning its log lines too."""
    logs: list[str] = []
    return prepare_data(cfg, seq_len, log=logs.append), logs


def stream(data: PreparedData) -> list[int]:
    """Every block of train then valid, concatenated, with the final padding stripped."""
    blocks = [data.train[list(range(len(data.train)))]["input_ids"]]
    if len(data.valid):
        blocks.append(data.valid[list(range(len(data.valid)))]["input_ids"])
    tokens = np.concatenate(blocks).reshape(-1).tolist()
    padded = len(tokens) - len(np.trim_zeros(np.array(tokens) != data.tokenizer.pad_token_id, "b"))
    assert padded == data.padded_tokens < data.seq_len
    return tokens[: len(tokens) - padded]


def expected(data: PreparedData, docs: list[str]) -> list[int]:
    """The token stream `docs` should pack to: each document's ids followed by EOS."""
    eos = data.tokenizer.eos_token_id
    return [t for doc in docs for t in [*data.tokenizer.encode(doc, add_special_tokens=False), eos]]


def write_char_shards(folder: Path, train: str, valid: str | None = None, dtype: str = "uint16",
                      **meta: object) -> dict[str, int]:
    """nanoGPT-style char shards of `train` (and `valid`) text: train.bin (val.bin) and meta.json.

    The vocabulary is the sorted characters of both texts, as nanoGPT's shakespeare_char writes it;
    `meta` entries override or add to meta.json's. Returns the character -> id map.
    """
    stoi = {char: i for i, char in enumerate(sorted(set(train + (valid or ""))))}
    folder.mkdir(parents=True, exist_ok=True)
    np.array([stoi[c] for c in train], dtype=dtype).tofile(folder / "train.bin")
    if valid is not None:
        np.array([stoi[c] for c in valid], dtype=dtype).tofile(folder / "val.bin")
    content = {"vocab_size": len(stoi), "dtype": dtype, "itos": {str(i): c for c, i in stoi.items()}, **meta}
    (folder / "meta.json").write_text(json.dumps(content), encoding="utf-8")
    return stoi


def play(seed: int, lines: int = 400, crlf: bool = False) -> str:
    """Text shaped like tinyshakespeare: speakers, verse lines, blank lines between speeches."""
    rng = random.Random(seed)
    words = ["the", "lord", "good", "sweet", "I", "thou", "my", "speak", "hear", "me", "Rome", "death", "love",
             "what's", "o'er", "'tis", "Citizen", "MENENIUS", "king", "naïve", "Æsop"]
    out = []
    while len(out) < lines:
        out.append(rng.choice(["First Citizen:", "MENENIUS:", "KING RICHARD III:", "ALL:"]))
        for _ in range(rng.randint(1, 6)):
            line = " ".join(rng.choice(words) for _ in range(rng.randint(1, 10)))
            out.append(line[:1].upper() + line[1:] + rng.choice([".", ",", "!", "?", ";", ":", ""]))
        out.append("")
    text = "\n".join(out)
    return text.replace("\n", "\r\n") if crlf else text


# A recorded token may lose a near-tie to its neighbour on a machine whose fp32 kernels round differently; the
# fixtures' logits are peaked (initializer_range 0.5: gaps of 1e-2 and more), and a wrongly loaded model misses
# by far more than this.
GREEDY_ATOL = 1e-4


def assert_greedy_up_to_rounding(model, recorded: list[list[int]], prompt_length: int) -> None:
    """Each token of `recorded` after the prompt, generated greedily on the machine that recorded it, is this
    model's greedy choice up to GREEDY_ATOL: fed the whole recorded sequence, the model gives it a logit within
    GREEDY_ATOL of the largest. (Compare the tokens exactly only where this process generated both.)"""
    sequence = torch.tensor(recorded)
    with torch.no_grad():
        logits = model(sequence).logits[:, prompt_length - 1:-1].double()
    chosen = logits.gather(-1, sequence[:, prompt_length:, None]).squeeze(-1)
    shortfall = (logits.max(-1).values - chosen).max().item()
    assert shortfall <= GREEDY_ATOL, f"a recorded token's logit is {shortfall:.3g} below the largest"
