#!/usr/bin/env bash
# The full Fashion-MNIST protocol on one GPU: 70k images, 10 seeds trained at once.
# Usage: GMMJAX_FASHION_MNIST_DIR=/path/to/idx bash experiments/vade/run_fashion_mnist.sh OUT_DIR [KEY=VALUE ...]
# Checkpoints stay in a scratch workdir; results.json, metrics and PNGs are copied to OUT_DIR.
set -euo pipefail
out=${1:?usage: run_fashion_mnist.sh OUT_DIR [KEY=VALUE ...]}
shift
work=${VADE_WORKDIR:-$(mktemp -d)}
sets=(--set progress=False)
for kv in "$@"; do sets+=(--set "$kv"); done
python -m experiments.vade.main --config fashion_mnist --workdir "$work" "${sets[@]}" 2>&1 | tee "$work/log.txt"
mkdir -p "$out"
cp "$work"/results.json "$work"/*.png "$work"/log.txt "$out"/
for phase in pretrain joint; do cp "$work/$phase/metrics.jsonl" "$out/${phase}_metrics.jsonl"; done
