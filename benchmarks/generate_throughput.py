"""KV-cache decoding speed of hfgpt's model next to transformers' GPT2LMHeadModel holding the same weights.

    python benchmarks/generate_throughput.py [--layers 12 --heads 12 --dim 768] [--new-tokens 256] [--device cpu]
                                             [--static-cache] [--compile]

Both models are built from one hfgpt GPT-2-family model (bias, gelu_new) and GPT2LMHeadModel gets its weights by
hfgpt's own exporter, so they compute the same function; each then runs greedy `generate()` with the KV cache
from the same prompt batch after a warm-up, the two taking turns `--repeats` times (a shared machine's speed
drifts), and each one's median is reported. `--static-cache` preallocates the cache (`cache_implementation=
"static"`), which `--compile` needs to compile each model's forward once (torch.compile, fixed shapes). The greedy
tokens of the two are compared, so the speed is of the same work. The last line is hfgpt's speed over GPT-2's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from transformers import GPT2LMHeadModel

from hfgpt.exporters.gpt2 import gpt2_config, gpt2_state_dict
from hfgpt.models.hfgpt import HfGptConfig, HfGptForCausalLM


def decode_seconds(model: torch.nn.Module, prompt: torch.Tensor, new_tokens: int, static_cache: bool
                   ) -> tuple[float, torch.Tensor]:
    """The seconds of one greedy generation of `new_tokens`, and its tokens."""
    start = time.perf_counter()
    with torch.no_grad():
        output = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                                min_new_tokens=new_tokens, do_sample=False, use_cache=True, pad_token_id=0,
                                cache_implementation="static" if static_cache else None)
    if prompt.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--static-cache", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile each forward (needs --static-cache)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    torch.manual_seed(0)
    config = HfGptConfig(vocab_size=args.vocab, hidden_size=args.dim, num_hidden_layers=args.layers,
                         num_attention_heads=args.heads, max_position_embeddings=args.context, bias=True,
                         hidden_act="gelu_new", bos_token_id=0, eos_token_id=0, pad_token_id=0)
    ours = HfGptForCausalLM(config).eval()
    theirs = GPT2LMHeadModel(gpt2_config(config)).eval()
    theirs.load_state_dict(gpt2_state_dict(ours))
    if args.compile and not args.static_cache:
        parser.error("--compile needs --static-cache: a growing cache changes the shapes at every token")
    models = {"hfgpt HfGptForCausalLM": ours.to(args.device), "transformers GPT2LMHeadModel": theirs.to(args.device)}
    if args.compile:
        for model in models.values():
            model.forward = torch.compile(model.forward, dynamic=False)
    prompt = torch.randint(1, args.vocab, (args.batch, args.prompt_tokens), device=args.device)

    times: dict[str, list[float]] = {name: [] for name in models}
    outputs = {name: decode_seconds(model, prompt, args.new_tokens, args.static_cache)[1]  # warm-up (compiles)
               for name, model in models.items()}
    for _ in range(args.repeats):
        for name, model in models.items():
            times[name].append(decode_seconds(model, prompt, args.new_tokens, args.static_cache)[0])
    same = torch.equal(*outputs.values())
    cache = f"{'static' if args.static_cache else 'dynamic'} cache{', compiled' if args.compile else ''}"
    print(f"{args.layers} layers, {args.heads} heads, dim {args.dim}, vocab {args.vocab}, batch {args.batch}, prompt "
          f"{args.prompt_tokens} + {args.new_tokens} new tokens, {cache}, median of {args.repeats} taking turns, "
          f"device {args.device}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}; "
          f"same greedy tokens: {same}")
    speeds = {name: args.batch * args.new_tokens / statistics.median(seconds) for name, seconds in times.items()}
    for name, speed in speeds.items():
        print(f"{name:<30}{speed:>10,.0f} tokens/s")
    ours_speed, theirs_speed = speeds.values()
    print(f"hfgpt vs GPT2LMHeadModel, KV-cache decode: {ours_speed / theirs_speed:.2f}x")


if __name__ == "__main__":
    main()
