#!/usr/bin/env bash
# The offline demo: sets up and builds if needed, renders a 200-image toy
# validation set, runs `clipes generate` with the bundled toy CLIP
# (models/), then `eval` and `visualize`. No weights or internet needed.
#
# Usage: scripts/demo.sh [OUT]        (default OUT = demo-out; DEMO_COUNT=200)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-demo-out}
COUNT=${DEMO_COUNT:-200}
BUILD=${BUILD_DIR:-build}

bash scripts/setup.sh
if [ ! -f "$BUILD/CMakeCache.txt" ]; then cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release; fi
cmake --build "$BUILD" -j"$(nproc)" --target clipes make_toy_dataset

echo "== rendering $COUNT toy validation images (seed 2) into $OUT/toy-val"
"$BUILD/make_toy_dataset" --out "$OUT/toy-val" --count "$COUNT" --seed 2 --split val

echo "== generating pseudo masks with the bundled toy CLIP"
"$BUILD/clipes" generate --model models/toy-clip.pt --vocab models/toy-vocab.txt.gz --classes toy \
  --dataset "$OUT/toy-val" --format voc --split val --out "$OUT/masks" --save-cams

echo "== evaluating against the toy ground truth"
"$BUILD/clipes" eval --pred "$OUT/masks" --gt "$OUT/toy-val" --split val --classes toy --json "$OUT/eval.json"

echo "== contact sheets (image, CAMs, refined CAMs, mask) for the first 20 images"
"$BUILD/clipes" visualize --out "$OUT/masks" --images "$OUT/toy-val/JPEGImages" --classes toy --limit 20

echo
echo "masks:        $OUT/masks/masks/   (class ids, VOC palette)"
echo "confidence:   $OUT/masks/confidence/"
echo "pictures:     $OUT/masks/vis/"
echo "eval report:  $OUT/eval.json"
