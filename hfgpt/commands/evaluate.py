"""`hfgpt eval MODEL [--data FILE_OR_FOLDER | --dataset ID]`: loss, perplexity, accuracy and bits per byte of a
saved model on a text, measured as training measures its validation set.

The text goes through hfgpt's own data pipeline (`hfgpt.data.prepare.prepare_data`, with the model's tokenizer
and block length: the same sources as training, cached alike, tokenized and packed once, whole, as the blocks to
evaluate), and the measure is the training's own
(`hfgpt.training.evaluation.evaluate`). Without --data or --dataset, MODEL must be a run directory, and its own
validation blocks are measured: the same blocks, so the same loss, as the run's last validation.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import HfGptError
from ..files import strict_json


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hfgpt eval", description="Measure a saved model on a text: loss, "
                                     "perplexity, next-token accuracy and bits per byte (comparable across "
                                     "tokenizers).")
    parser.add_argument("model", help="a run directory (its final/, else best/), a checkpoint, a save_pretrained "
                                      "folder, or a Hub id")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", default="", help="text to measure: .txt/.jsonl/.parquet files or folders, "
                                                   "comma-separated, or a .bin shard folder; every block of it")
    source.add_argument("--dataset", default="", help="a Hub dataset id (or a local datasets folder)")
    parser.add_argument("--dataset-config", default="", help="the dataset's configuration name")
    parser.add_argument("--split", default="validation", help="the dataset's split (default: validation)")
    parser.add_argument("--text-column", default="text", help="the column holding the text (.jsonl, .parquet)")
    parser.add_argument("--seq-len", type=int, default=0, help="tokens per block; 0: the length the model was "
                                                               "trained with")
    parser.add_argument("--batch-size", type=int, default=8, help="blocks per forward pass")
    parser.add_argument("--batches", type=int, default=0, help="measure the first N batches only; 0: all")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                        help="auto, as training chooses it: bf16 where the hardware computes it natively, else fp32")
    parser.add_argument("--cache-dir", default="", help="where packed data is cached (default: as training)")
    parser.add_argument("--tasks", default="", help="downstream tasks instead of a text: .jsonl files of "
                                                    "multiple-choice items, or lm-evaluation-harness task names, "
                                                    "comma-separated")
    parser.add_argument("--limit", type=int, default=0, help="score the first N items of each task; 0: all")
    parser.add_argument("--task-dir", default="", help="a folder of your own lm-evaluation-harness task YAML files")
    parser.add_argument("--json", action="store_true", help="print one JSON object (with --tasks: one per task, "
                                                           "then their mean centred score)")
    parser.add_argument("--no-progress-bar", action="store_true")
    return parser


def evaluate_command(argv: Sequence[str]) -> None:
    args = _parser().parse_args(argv)
    if args.batch_size < 1 or args.batches < 0 or args.seq_len < 0:
        raise HfGptError("--batch-size must be at least 1, --batches and --seq-len must not be negative.")

    from ..console import quiet_libraries

    quiet_libraries(progress_bars=not args.no_progress_bar)
    if args.tasks:
        _print_tasks(score(args), args.json)
        return
    result = measure(args)
    if args.json:
        print(strict_json(result))  # a diverged model's NaN loss is null: strict parsers refuse NaN
    else:
        print(f"{result['model']} on {result['data']}: loss {result['loss']:.4f} | ppl {result['ppl']:.2f} | acc "
              f"{100 * result['acc']:.1f}% | {result['bpb']:.4f} bits per byte ({result['tokens']:,} tokens, "
              f"{result['bytes']:,} bytes, {result['blocks']:,} blocks of {result['seq_len']})")


def score(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """The model's scores on the tasks of --tasks: local ones by hfgpt's scorer, lm-eval's by lm-eval itself."""
    from ..inference.generation import pick_device
    from ..launch.processes import auto_precision, new_accelerator
    from ..runs.saved_models import load_saved_model
    from ..tasks.harness import harness_results
    from ..tasks.loading import names_of, split_tasks
    from ..tasks.scoring import score_tasks

    if args.data or args.dataset:
        raise HfGptError("--tasks scores downstream tasks, --data and --dataset measure a text; give one of them.")
    local, named = split_tasks(args.tasks, args.limit, args.task_dir)  # before the model loads
    model, tokenizer, _ = load_saved_model(args.model, "evaluate")
    device = pick_device(args.device)
    precision = auto_precision(args.precision, device == "cpu")
    accelerator = new_accelerator(cpu=device == "cpu", mixed_precision={"fp32": "no"}.get(precision, precision))
    model = accelerator.prepare_model(model, evaluation_mode=True)
    found = score_tasks(model, tokenizer, local, accelerator, args.batch_size, model.config.max_position_embeddings)
    if named:
        found |= harness_results(model, tokenizer, named, args.batch_size, args.limit, args.task_dir)
    return {name: found[name] for name in names_of(args.tasks)}


def _print_tasks(found: dict[str, dict[str, float]], as_json: bool) -> None:
    mean = sum(scores["centred"] for scores in found.values()) / len(found)
    for name, scores in found.items():
        print(strict_json({"task": name, **scores}) if as_json else
              f"{name}: acc {100 * scores['acc']:.1f}% | acc_norm {100 * scores['acc_norm']:.1f}% | centred "
              f"{scores['centred']:.3f} (chance {100 * scores['chance']:.1f}%, {scores['items']:,} items)")
    print(strict_json({"tasks": len(found), "centred": mean}) if as_json else f"mean centred score: {mean:.3f}")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Load, prepare and evaluate as `args` say; the figures as one dict."""
    from tqdm.auto import tqdm

    from ..console import bars_shown
    from ..data.batches import BatchLayout
    from ..data.prepare import prepare_data
    from ..data.token_bytes import target_bytes, token_byte_lengths
    from ..inference.generation import pick_device
    from ..launch.processes import attention_kernel, auto_precision, new_accelerator
    from ..runs.saved_models import load_saved_model
    from ..training.evaluation import evaluate, evaluated_blocks

    model, tokenizer, origin = load_saved_model(args.model, "evaluate")
    cfg, batch, what = _data_config(args, model, tokenizer)
    device = pick_device(args.device)
    precision = auto_precision(args.precision, device == "cpu")
    model.set_attn_implementation(attention_kernel("auto", device == "cpu", precision))  # as training chooses it
    accelerator = new_accelerator(cpu=device == "cpu", mixed_precision={"fp32": "no"}.get(precision, precision))
    data = prepare_data(cfg.data, cfg.seq_len, log=lambda line: print(line, file=sys.stderr), tokenizer=tokenizer,
                        evaluate="--data" if args.data or args.dataset else "")  # the text once, as validation blocks
    layout = BatchLayout(batch, 1, accelerator.num_processes)
    if not args.batches and not cfg.training.eval_batches:  # every block
        cfg.training.eval_batches = max(1, math.ceil(len(data.valid) / layout.global_batch))
    model = accelerator.prepare_model(model, evaluation_mode=True)
    size = evaluated_blocks(len(data.valid), cfg, layout)
    tokens, text_bytes = target_bytes(data.valid, size, token_byte_lengths(data.tokenizer), tokenizer.pad_token_id)
    if not text_bytes:
        raise HfGptError(f"{what} is too short to measure: a model predicts each token from the ones before it, so "
                         f"a text's first token is only context, and after it this one holds no text to predict "
                         f"({tokens} token(s) to predict, none of them text), hence no bits per byte. Give it at "
                         "least two tokens of text.")
    steps = -(-math.ceil(size / layout.micro_batch) // layout.world_size)
    bar = lambda batches: tqdm(batches, total=steps, desc="evaluating", file=sys.stderr,  # noqa: E731
                               disable=not (bars_shown(not args.no_progress_bar) and accelerator.is_main_process))
    result = evaluate(model, data, cfg, layout, accelerator, progress=bar)
    return {"model": origin["source"], "data": what, **result, "tokens": tokens, "bytes": text_bytes,
            "blocks": size, "seq_len": cfg.seq_len}


def _data_config(args: argparse.Namespace, model: Any, tokenizer: Any) -> tuple[Any, int, str]:
    """(the config whose data section and validation settings say what to measure, blocks per batch, a name)."""
    from ..config import TrainConfig, config_from_dict
    from ..runs.summary import summarize

    context = model.config.max_position_embeddings
    if not (args.data or args.dataset):
        run = Path(args.model)
        if not (run / "config.toml").is_file():
            raise HfGptError(f"hfgpt eval needs --data or --dataset, or a run directory as MODEL (its validation "
                             f"blocks are measured); {args.model} is not one.")
        summary = summarize(run)
        cfg = config_from_dict(summary.config, str(run / "run.json"))
        batch = (summary.tokens_per_step or cfg.seq_len) // cfg.seq_len  # the run's global batch
        cfg.training.eval_batches = args.batches or cfg.training.eval_batches
        return cfg, batch, f"the validation blocks of the run {run} (as its training measured them)"
    cfg = TrainConfig()
    cfg.data.text_column, cfg.data.cache_dir = args.text_column, args.cache_dir
    if args.data:
        cfg.data.train = cfg.data.valid = args.data
    else:
        cfg.data.dataset, cfg.data.dataset_config = args.dataset, args.dataset_config
        cfg.data.train_split = cfg.data.valid_split = args.split
    trained = getattr(tokenizer, "model_max_length", 0) or 0
    cfg.data.seq_len = args.seq_len or (trained if 0 < trained <= context else context)
    cfg.model.max_position_embeddings = context
    if cfg.data.seq_len > context:
        raise HfGptError(f"--seq-len {cfg.data.seq_len} is longer than the model's context ({context} tokens).")
    cfg.training.eval_batches = args.batches
    return cfg, args.batch_size, args.data or f"{args.dataset} ({args.split})"
