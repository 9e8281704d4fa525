#!/usr/bin/env bash
# The GPU figures: GPT-2 124M (the gpt2-small preset: bf16, torch.compile, sdpa/flash attention) on one GPU for
# 200 steps (tokens/s, MFU, peak memory), then each launch config that fits one device (gpu.yaml, fsdp.yaml,
# zero3.yaml with one process) for 20 steps, stopped at 10 and continued.
#
#   bash benchmarks/gpu.sh [--data FILE_OR_FOLDER] [--out DIR] [-- FLAGS]
#   bash benchmarks/gpu.sh --dry-run    # the same steps on the CPU with a tiny model, so the script cannot rot
#
# FLAGS after -- go to every run: the speed records' recipe on GPT-2 124M, for instance
#   bash benchmarks/gpu.sh -- --optimizer muon --qk-norm --hidden-act relu2 --zero-init-output-projections \
#       --no-tie-word-embeddings --document-masking    # (docs/configuration.md, "The speedrun preset")
#
# Without --data it trains on the default corpus (the Python standard library), which is enough for speed.
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0
data=()
extra=()
out="${TMPDIR:-/tmp}/hfgpt-gpu-bench"
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --data) data=(--data-path "$2"); shift ;;
        --out) out="$2"; shift ;;
        --) shift; extra=("$@"); break ;;
        *) echo "gpu.sh: unknown option $1 (--dry-run, --data FILE, --out DIR, -- FLAGS)" >&2; exit 2 ;;
    esac
    shift
done
rm -rf "$out" && mkdir -p "$out"

if [ "$dry_run" = 1 ]; then
    model=(--hidden-size 32 --num-hidden-layers 2 --num-attention-heads 2 --max-position-embeddings 32
           --token-batch-size 256 --max-sentences-per-device 8 --tokenizer char --device cpu --precision fp32
           --cpu-threads 1)
    steps=4; short=4; stop=2; configs=(cpu.yaml zero3-cpu.yaml)
else
    model=(--config gpt2-small --compile)
    steps=200; short=20; stop=10; configs=(gpu.yaml fsdp.yaml zero3.yaml)
fi
common=("${model[@]}" "${data[@]}" "${extra[@]}" --eval-every 0 --sample-tokens 0 --trackers none --no-progress-bar
        --log-every 10 --rundir "$out/runs" --cache-dir "$out/cache")

memory_sampler() {  # the largest GPU memory use seen, every 0.5 s, into $out/peak_mib
    local peak=0 used
    while true; do
        used=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 2>/dev/null | head -1 || echo 0)
        [ "${used:-0}" -gt "$peak" ] && peak=$used && echo "$peak" > "$out/peak_mib"
        sleep 0.5
    done
}

summary() {  # tokens/s and MFU of a run's last logged training window
    python - "$1" <<'PY'
import json, sys
from pathlib import Path
records = [json.loads(line) for line in (Path(sys.argv[1]) / "train_log.jsonl").read_text().splitlines()]
last = [r for r in records if r["split"] == "train"][-1]
print(f"step {last['step']}: loss {last['loss']:.4f}, {last['tokens_per_s']:,.0f} tokens/s, "
      f"mfu {100 * last.get('mfu', 0):.1f}%, {last['ms_per_step']:.1f} ms/step")
PY
}

echo "== one device, $steps steps: ${model[*]}"
sampler=""
if [ "$dry_run" = 0 ]; then memory_sampler & sampler=$!; fi
accelerate launch --config_file "accelerate_configs/${configs[0]}" recipes/train.py "${common[@]}" \
    --max-steps "$steps" --run-name single > "$out/single.log" 2>&1 || { tail -40 "$out/single.log"; exit 1; }
[ -n "$sampler" ] && kill "$sampler"
grep -E "^(device|model|batch|memory|mfu counts)" "$out/single.log" || true
summary "$out/runs/single"
[ -f "$out/peak_mib" ] && echo "peak GPU memory: $(cat "$out/peak_mib") MiB (nvidia-smi)"

for config in "${configs[@]}"; do
    name="${config%.yaml}"
    echo "== $config, one process: $short steps, stopped at $stop and continued"
    accelerate launch --config_file "accelerate_configs/$config" --num_processes 1 recipes/train.py "${common[@]}" \
        --max-steps "$short" --stop-at-step "$stop" --run-name "$name" > "$out/$name.log" 2>&1 \
        || { tail -40 "$out/$name.log"; exit 1; }
    accelerate launch --config_file "accelerate_configs/$config" --num_processes 1 recipes/train.py \
        continue "$out/runs/$name" >> "$out/$name.log" 2>&1 || { tail -40 "$out/$name.log"; exit 1; }
    grep -E "^continuing from" "$out/$name.log" || { echo "$config: the run did not continue"; exit 1; }
    summary "$out/runs/$name"
done
echo "gpu.sh: done; logs and runs in $out"
