"""`hfgpt export SOURCE --to gpt2|llama|gguf --output PATH`: a trained model in a form that runs without hfgpt,
a stock transformers folder (`GPT2LMHeadModel`, `LlamaForCausalLM`) or one GGUF file for llama.cpp
(`hfgpt.exporters` does the work). A stock folder uploads with `hfgpt push OUTPUT --repo-id NAME`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

TARGETS = ("gpt2", "llama", "gguf")  # hfgpt.exporters.TARGETS, spelled here so that --help imports no torch


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hfgpt export", description="Export a trained model to a stock "
                                     "transformers architecture (no trust_remote_code) or to GGUF for llama.cpp.")
    parser.add_argument("source", help="a run directory (its final/, else best/) or a folder hfgpt saved")
    parser.add_argument("--to", required=True, choices=TARGETS,
                        help="gpt2: learned positions, LayerNorm, plain MLP; llama: rotary positions, RMSNorm, gated "
                             "MLP; gguf: one .gguf file (llama.cpp's gpt2 or llama architecture), tokenizer inside")
    parser.add_argument("--output", required=True, help="a new folder (gpt2, llama) or file (gguf), in the folders "
                                                         "it lacks (made); never replaced")
    parser.add_argument("--dtype", default="", help="weights as f32, f16 or bf16 (folders), f32, f16 or q8_0 "
                                                   "(gguf); default f32")
    return parser


def export_command(argv: Sequence[str]) -> None:
    args = _parser().parse_args(argv)

    from ..console import quiet_libraries
    from ..exporters import export
    from ..runs.saved_models import saved_model_folder

    quiet_libraries()
    folder = saved_model_folder(Path(args.source), "export")
    print(f"exporting {folder} as {args.to} ...", file=sys.stderr)
    written = export(folder, args.to, args.output, args.dtype or "f32")
    size = sum(f.stat().st_size for f in written.rglob("*") if f.is_file()) if written.is_dir() else \
        written.stat().st_size
    print(f"exported: {written} ({size / 1e6:,.1f} MB)")
