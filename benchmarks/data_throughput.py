"""How fast hfgpt turns a .txt file into packed Arrow blocks, next to the tokenizers library on its own.

    python benchmarks/data_throughput.py --generate-mb 100 --num-proc 2
    python benchmarks/data_throughput.py --corpus big.txt --num-proc 8 --tokenizer char

One run measures, each in a child process of its own, on the same corpus with the same tokenizer and the same
number of processes:
- hfgpt: `prepare_data` from the .txt file to the packed, sharded Arrow cache (reading, tokenizing, packing,
  writing), with a tokenizer given, so that tokenizer training is not timed;
- raw encode_batch: `num_proc` processes, each calling `Tokenizer.encode_batch` on batches of 1000 lines of its
  share of the file and keeping nothing (what the issue measured: the tokenizer's own speed);
- raw encode_batch_fast: the same with `encode_batch_fast` (no offsets), which hfgpt uses;
- raw encode_batch_fast on 4 KB pieces: the same on strings of about 4 KB cut at safe cuts, hfgpt's way, which
  the tokenizer encodes faster than lines: the tokenizer at its best, so hfgpt's own cost is the difference.
Speeds are MB of text per second of wall time. Peak RSS is sampled from /proc every 0.1 s over the child and
all its descendants: the peak of their sum (shared pages count once per process, so it errs high) and the
largest single process seen (`ru_maxrss` would not do: Linux keeps a spawned child's maxrss from before its
exec, that is, its parent's). A generated corpus is the lines of --text (tinyshakespeare beside the checkout by
default) shuffled and repeated (under /tmp, deleted afterwards unless --keep); the tokenizer trains on --text.
Set TOKENIZERS_PARALLELISM=false (the default here) so that every measurement uses exactly `--num-proc` cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from corpora import tinyshakespeare

MB = 1_000_000
RAW = {"raw": "raw encode_batch, lines", "raw-fast": "raw encode_batch_fast, lines",
       "raw-pieces": "raw encode_batch_fast, 4 KB"}


def generate(path: Path, megabytes: int, source: Path) -> None:
    """The lines of `source`, shuffled and repeated, to `megabytes` MB."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    rng, written = random.Random(0), 0
    with open(path, "w", encoding="utf-8") as out:
        while written < megabytes * MB:
            rng.shuffle(lines)
            block = "".join(lines)[: megabytes * MB - written]
            out.write(block)
            written += len(block.encode("utf-8"))


def tree_rss(pid: int) -> tuple[int, int]:
    """Resident bytes of `pid` and all its descendants, from /proc: (their sum, the largest one's)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            status = (proc / "status").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(proc.name))
        rss[int(proc.name)] = next((int(line.split()[1]) * 1024 for line in status.splitlines()
                                    if line.startswith("VmRSS:")), 0)
    total = largest = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        total, largest = total + rss.get(current, 0), max(largest, rss.get(current, 0))
        todo += children.get(current, [])
    return total, largest


def measure(args: list, env: dict[str, str]) -> dict:
    """Run this script as a child (`--child ...`), sampling its process tree's RSS; returns its result."""
    child = subprocess.Popen([sys.executable, __file__, *map(str, args)], env=env, stdout=subprocess.PIPE, text=True)
    peak = largest = 0
    while child.poll() is None:
        total, single = tree_rss(child.pid)
        peak, largest = max(peak, total), max(largest, single)
        time.sleep(0.1)
    output = child.stdout.read() if child.stdout else ""
    if child.returncode:
        raise SystemExit(f"child {args[:2]} failed with {child.returncode}")
    return {**json.loads(output.strip().splitlines()[-1]), "peak_tree_rss": peak, "peak_process_rss": largest}


def child_hfgpt(corpus: Path, tokenizer_file: Path, num_proc: int, seq_len: int, cache: Path) -> dict:
    from transformers import PreTrainedTokenizerFast

    from hfgpt.config import DataSection
    from hfgpt.data.prepare import prepare_data

    tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_file)
    cfg = DataSection(train=str(corpus), cache_dir=str(cache), num_proc=num_proc, valid_fraction=0.001)
    start = time.perf_counter()
    data = prepare_data(cfg, seq_len, log=lambda line: print(line, file=sys.stderr), tokenizer=tokenizer)
    seconds = time.perf_counter() - start
    shards = sorted(p.stat().st_size for p in data.cache_dir.glob("*.arrow"))
    return {"seconds": seconds, "tokens": data.train_tokens + data.valid_tokens, "shards": len(shards),
            "largest_shard": shards[-1]}


def _raw_worker(corpus: str, start: int, end: int, tokenizer_file: str, how: str) -> int:
    """Tokens of the lines that start in `[start, end]` of the file, encoded as `how` says (see RAW)."""
    from tokenizers import Tokenizer

    from hfgpt.data.chunking import pieces

    tokenizer = Tokenizer.from_file(tokenizer_file)
    encode = tokenizer.encode_batch if how == "raw" else tokenizer.encode_batch_fast
    tokens = 0
    with open(corpus, "rb") as file:
        file.seek(start)
        if start:
            file.readline()  # the line that began before `start` belongs to the worker before
        while file.tell() <= end and (lines := file.readlines(min(1 << 20, end + 1 - file.tell()))):
            texts = [line.decode("utf-8") for line in lines]
            if how == "raw-pieces":
                texts = pieces("".join(texts))
            for batch in range(0, len(texts), 1000):
                tokens += sum(len(e.ids) for e in encode(texts[batch:batch + 1000], add_special_tokens=False))
    return tokens


def child_raw(corpus: Path, tokenizer_file: Path, num_proc: int, how: str) -> dict:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    size = corpus.stat().st_size
    bounds = [size * i // num_proc for i in range(num_proc + 1)]
    start = time.perf_counter()
    with ProcessPoolExecutor(num_proc, mp_context=get_context("spawn")) as pool:
        tokens = sum(pool.map(_raw_worker, [str(corpus)] * num_proc, bounds[:-1], [b - 1 for b in bounds[1:]],
                              [str(tokenizer_file)] * num_proc, [how] * num_proc))
    return {"seconds": time.perf_counter() - start, "tokens": tokens}


def child_tokenizer(kind: str, vocab_size: int, folder: Path, text: Path) -> dict:
    from hfgpt.data.tokenization import train_tokenizer

    tokenizer = train_tokenizer(kind, [text.read_text(encoding="utf-8")], vocab_size)
    tokenizer.save_pretrained(folder)
    return {"tokens": len(tokenizer)}


def run_child(argv: list[str]) -> None:
    kind = argv[0]
    if kind == "tokenizer":
        result = child_tokenizer(argv[1], int(argv[2]), Path(argv[3]), Path(argv[4]))
    elif kind == "hfgpt":
        result = child_hfgpt(Path(argv[1]), Path(argv[2]), int(argv[3]), int(argv[4]), Path(argv[5]))
    else:
        result = child_raw(Path(argv[1]), Path(argv[2]), int(argv[3]), kind)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="a .txt file to measure on")
    parser.add_argument("--generate-mb", type=int, default=100, help="else generate a corpus of this many MB")
    parser.add_argument("--text", type=Path, default=tinyshakespeare(),
                        help="the text the tokenizer trains on and a generated corpus repeats; default: "
                             "tinyshakespeare.txt in shared/data/ beside the checkout")
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--tokenizer", choices=("bpe", "char"), default="bpe")
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--keep", action="store_true", help="keep the generated corpus and the packed cache")
    parser.add_argument("--raw", nargs="*", default=list(RAW), choices=list(RAW), help="the raw measurements")
    options = parser.parse_args()
    if options.text is None or not options.text.is_file():
        parser.error(f"no text to train the tokenizer on ({options.text or 'shared/data/ has no tinyshakespeare.txt'}"
                     "): give --text FILE")
    work = Path(tempfile.mkdtemp(prefix="hfgpt-throughput-", dir=options.workdir))
    try:
        report(options, work)
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)


def report(options: argparse.Namespace, work: Path) -> None:
    """Everything heavy runs in children: this process stays small, so it inflates no measurement."""
    corpus = options.corpus
    if corpus is None:
        corpus = work / f"corpus-{options.generate_mb}mb.txt"
        generate(corpus, options.generate_mb, options.text)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": os.environ.get("TOKENIZERS_PARALLELISM", "false")}
    vocabulary = measure(["--child", "tokenizer", options.tokenizer, options.vocab_size, work / "tokenizer",
                          options.text], env)
    common = [corpus, work / "tokenizer" / "tokenizer.json", options.num_proc]
    size = corpus.stat().st_size
    print(f"corpus {corpus} ({size / MB:,.0f} MB), tokenizer {options.tokenizer} ({vocabulary['tokens']} tokens), "
          f"--num-proc {options.num_proc}, seq_len {options.seq_len}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    results = {name: measure(["--child", how, *common], env) for how, name in RAW.items() if how in options.raw}
    results["hfgpt text -> packed Arrow"] = measure(["--child", "hfgpt", corpus, work / "tokenizer",
                                                     options.num_proc, options.seq_len, work / "cache"], env)
    hfgpt = results["hfgpt text -> packed Arrow"]
    for name, result in results.items():
        ratio = "" if result is hfgpt else f"   hfgpt speed / this = {result['seconds'] / hfgpt['seconds']:.2f}x"
        print(f"{name:27s} {result['seconds']:7.1f} s {size / MB / result['seconds']:6.2f} MB/s "
              f"{result['tokens']:>12,} tokens   peak RSS {result['peak_tree_rss'] / 2**30:5.2f} GiB all processes, "
              f"{result['peak_process_rss'] / 2**30:5.2f} GiB largest{ratio}", flush=True)
    print(f"hfgpt wrote {hfgpt['shards']} shard(s), the largest {hfgpt['largest_shard'] / 2**20:,.0f} MiB; "
          f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        run_child(sys.argv[2:])
    else:
        main()
