#!/usr/bin/env bash
# The offline demo: sets up and builds if needed, renders a 200-image toy
# validation set, runs `clipes generate` with the bundled toy CLIP
# (models/), then `eval` and `visualize`, and ends with what each stage adds
# (the key lines of scripts/ablation.sh on the same images). No weights or
# internet needed.
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

echo "== contact sheets (image, mask, ground truth and errors, CAMs, refined CAMs) for the first 20 images"
"$BUILD/clipes" visualize --out "$OUT/masks" --limit 20

miou() { grep -o '"miou": *[0-9.eE+-]*' "$1" | head -1 | sed 's/.*: *//'; }
echo "== what each stage adds (the same $COUNT images)"
"$BUILD/clipes" -q generate --model models/toy-clip.pt --vocab models/toy-vocab.txt.gz --classes toy \
  --dataset "$OUT/toy-val" --format voc --split val --out "$OUT/no-caa" --no-caa
"$BUILD/clipes" -q eval --pred "$OUT/no-caa" --gt "$OUT/toy-val" --split val --classes toy --json "$OUT/no-caa.json" >/dev/null
"$BUILD/clipes" -q segment --model models/toy-clip.pt --vocab models/toy-vocab.txt.gz --classes toy \
  --templates "a photo of a {}." --method maskclip --dataset "$OUT/toy-val" --format voc --split val --out "$OUT/segment"
"$BUILD/clipes" -q eval --pred "$OUT/segment" --gt "$OUT/toy-val" --split val --classes toy --json "$OUT/segment.json" >/dev/null
printf '  %-52s %s\n' "softmax-GradCAM, true labels (generate --no-caa)" "$(miou "$OUT/no-caa.json")" \
  "+ attention affinity, CAA (generate, the default)" "$(miou "$OUT/eval.json")" \
  "no labels at all (segment --method maskclip)" "$(miou "$OUT/segment.json")"
echo "  (mIoU; scripts/ablation.sh 500 gives every row, docs/ablation.md the committed table)"

echo
echo "masks:        $OUT/masks/masks/   (class ids, VOC palette)"
echo "confidence:   $OUT/masks/confidence/"
echo "pictures:     $OUT/masks/vis/"
echo "eval report:  $OUT/eval.json"
