#!/usr/bin/env bash
# The standard benchmark set (issue #5), fp32 and bf16, random-init ViT-B/16
# unless MODEL=path is given: 512×384 with K = 1, 2, 4; 640×480 with K = 2;
# 1024×768; and a 4000×3000 photo (capped by --max-tokens, default 2500).
# Writes bench-<precision>.json beside the printed tables.
#
# Usage: scripts/bench.sh [BUILD_DIR]      env: MODEL, RUNS (default 3), OUT (default bench-out)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
RUNS=${RUNS:-3}
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
cmake --build "$BUILD" -j"$(nproc)" --target clipes >/dev/null
MODEL_ARGS=()
if [ -n "${MODEL:-}" ]; then MODEL_ARGS=(--model "$MODEL"); fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
for precision in fp32 bf16; do
  echo
  echo "=== $precision"
  "$BUILD/clipes" bench "${MODEL_ARGS[@]}" --precision "$precision" --runs "$RUNS" --warmup 1 \
    --case 512x384:1 --case 512x384:2 --case 512x384:4 --case 640x480:2 --case 1024x768:2 --case 4000x3000:2 \
    --json "$OUT/bench-$precision.json"
done
