#!/usr/bin/env bash
# Runs the README's examples as written, on the toy world (issue 27
# acceptance: "README examples all run as written").
#
#   bash scripts/readme-examples.sh [BUILD_DIR]     (default: build)
#
# Each fenced block of README.md that holds a clipes command runs in a fresh
# sandbox folder where the files the README names exist as toy stand-ins:
#   ViT-B-16.pt, M                    → models/toy-clip.pt (the committed toy CLIP)
#   bpe_simple_vocab_16e6.txt.gz, V   → models/toy-vocab.txt.gz
#   VOCdevkit/VOC2012 (and VOC2012)   → a toy VOC tree (make_toy_dataset, train and
#                                       val splits) whose 8 classes are renamed to
#                                       VOC's first 8 (aeroplane … cat, the same mask
#                                       values), so `--classes voc` fits it
#   photo.jpg, I                      → a toy image
#   ./build/…, clipes                 → the build folder's binaries
# A line ending in `\` continues. `clipes X ...` means "the options a previous
# example gave": `...` becomes `--model ViT-B-16.pt --vocab bpe_simple_vocab_16e6.txt.gz`,
# plus `--dataset VOC2012 --format voc` where the command names no input.
# Commands are run as written otherwise. Not run, with the reason printed:
# synopses (`[...]`, `a|b` alternatives), the CUDA build, Slurm/Kubernetes jobs
# and their paths (/data, /shared, /models), the long demo/test scripts,
# CLIP-DINOiser's heads file (no real heads exist offline), LSeg's released
# checkpoints (tests/test_lseg_segment.cpp runs the tiny one) and `export coco`
# (COCO-named images; the toy world is VOC-shaped).
# Exit 0 when every example that runs succeeds; the log names each command.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
BIN=$BUILD/clipes
[ -x "$BIN" ] || { echo "readme-examples: no clipes binary in $BUILD" >&2; exit 2; }
WORK=$(mktemp -d /tmp/clipes-readme.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# ---- the stand-ins ---------------------------------------------------------------
STAND=$WORK/stand-ins
mkdir -p "$STAND/VOCdevkit"
"$BUILD/make_toy_dataset" --out "$STAND/VOCdevkit/VOC2012" --count 6 --seed 4 --split train >/dev/null || exit 2
"$BUILD/make_toy_dataset" --out "$STAND/VOCdevkit/VOC2012" --count 6 --seed 5 --split val --start 100 >/dev/null || exit 2
i=0
for toy in circle square triangle star ring cross heart crescent; do
  voc=(aeroplane bicycle bird boat bottle bus car cat)
  sed -i "s|<name>$toy</name>|<name>${voc[$i]}</name>|" "$STAND"/VOCdevkit/VOC2012/Annotations/*.xml
  i=$((i + 1))
done
cp "$(ls "$STAND"/VOCdevkit/VOC2012/JPEGImages/* | head -n 1)" "$STAND/photo.jpg"  # decoded by content
# OUT for the blocks that start from an existing run (`clipes export ... OUT`).
"$BIN" -q generate --model "$ROOT/models/toy-clip.pt" --vocab "$ROOT/models/toy-vocab.txt.gz" \
  --dataset "$STAND/VOCdevkit/VOC2012" --format voc --split train --out "$STAND/run" || exit 2

setup_sandbox() {  # a fresh folder with the stand-ins linked in
  local dir=$1
  mkdir -p "$dir"
  ln -s "$ROOT/models/toy-clip.pt" "$dir/ViT-B-16.pt"
  ln -s "$ROOT/models/toy-clip.pt" "$dir/M"
  ln -s "$ROOT/models/toy-vocab.txt.gz" "$dir/bpe_simple_vocab_16e6.txt.gz"
  ln -s "$ROOT/models/toy-vocab.txt.gz" "$dir/V"
  ln -s "$STAND/VOCdevkit" "$dir/VOCdevkit"
  ln -s "$STAND/VOCdevkit/VOC2012" "$dir/VOC2012"
  ln -s "$STAND/photo.jpg" "$dir/photo.jpg"
  ln -s "$STAND/photo.jpg" "$dir/I"
  ln -s "$BUILD" "$dir/build"
  ln -s "$ROOT/scripts" "$dir/scripts"
  # A block whose first command reads OUT (export) gets the prepared run.
  if grep -m1 -E '^(\./build/)?clipes ' "$2" | grep -qE '^(\./build/)?clipes export'; then
    cp -r "$STAND/run" "$dir/OUT"
  fi
}

why_not_run() {  # prints the reason a command is not run, or nothing
  local c=$1
  case $c in
    *'['*) echo "a synopsis ([options])" ;;
    *'voc|coco'* | *'mmseg|'*) echo "a synopsis (alternatives)" ;;
    *build-cuda* | cmake*) echo "the CUDA build (README 'Using a GPU')" ;;
    *'/data/'* | *'/shared/'* | *'/models/'* | *SLURM* | *JOB_COMPLETION*) echo "a cluster job's paths" ;;
    'bash scripts/demo.sh'* | 'bash scripts/test.sh'*) echo "a long script (CI runs the tests)" ;;
    *'--heads last.pt'*) echo "needs CLIP-DINOiser's heads file" ;;
    *'export coco OUT'*) echo "needs a COCO-named run; the toy world is VOC-shaped (tests/test_training_export.cpp covers it)" ;;
    *'--device cuda'*) echo "needs a GPU" ;;
    *'--method lseg'*) echo "needs an LSeg checkpoint (the tiny fixture's head size needs --set vit_heads=2; tests/test_lseg_segment.cpp runs the command on it)" ;;
    *) ;;
  esac
}

expand() {  # the command as it runs: `...` and the clipes binary
  local c=$1
  if [[ $c == *' ... '* ]]; then
    local input=""
    [[ $c == *--dataset* || $c == *--image* ]] || input=" --dataset VOC2012 --format voc"
    c=${c/ ... / --model ViT-B-16.pt --vocab bpe_simple_vocab_16e6.txt.gz$input }
  fi
  [[ $c == clipes* ]] && c="./build/clipes${c#clipes}"
  echo "$c"
}

ran=0 failed=0 skipped=0 block=0
run_block() {  # run_block FILE: the commands of one fenced block, in one sandbox
  local file=$1 dir line cmd why
  block=$((block + 1))
  dir=$WORK/block-$block
  setup_sandbox "$dir" "$file"
  while IFS= read -r line || [ -n "$line" ]; do
    cmd=$line
    while [[ $cmd == *\\ ]] && IFS= read -r line; do cmd="${cmd%\\} ${line#"${line%%[![:space:]]*}"}"; done
    cmd=${cmd%%#*}                                  # a trailing comment
    cmd=${cmd%"${cmd##*[![:space:]]}"}             # trailing spaces
    [[ $cmd =~ ^(\./build/clipes|clipes|\./build/make_toy_dataset|bash\ scripts/|build-cuda/|cmake) ]] || continue
    why=$(why_not_run "$cmd")
    if [ -n "$why" ]; then
      echo "  skip: $cmd   ($why)"
      skipped=$((skipped + 1))
      continue
    fi
    cmd=$(expand "$cmd")
    ran=$((ran + 1))
    if (cd "$dir" && bash -c "$cmd") >"$dir/log-$ran.txt" 2>&1; then
      echo "  ok:   $cmd"
    else
      local rc=$?
      # eval's exit 1 means "scored, some predictions missing" (README
      # "Datasets and clipes eval"): not a failure of the example itself.
      if [ "$rc" = 1 ] && [[ $cmd == *' eval '* ]] && grep -q "have no prediction" "$dir/log-$ran.txt"; then
        echo "  ok:   $cmd   (exit 1: some images have no prediction, as documented)"
      else
        echo "  FAIL: $cmd   (exit $rc)"
        sed 's/^/        /' "$dir/log-$ran.txt" | tail -n 8
        failed=$((failed + 1))
      fi
    fi
  done <"$file"
}

# ---- the blocks of README.md, in order -----------------------------------------------
awk -v dir="$WORK" '
  /^```/ { if (inb) { close(f); inb = 0 } else { n++; f = sprintf("%s/readme-block-%03d.txt", dir, n); inb = 1; printf "" > f }; next }
  inb { print > f }
' "$ROOT/README.md"
for f in "$WORK"/readme-block-*.txt; do
  grep -qE '(^|[ /])clipes |make_toy_dataset' "$f" || continue
  echo "README block $(basename "$f" .txt | sed 's/readme-block-//'):"
  run_block "$f"
done
echo "readme-examples: $ran run, $failed failed, $skipped not run (reasons above)"
[ "$failed" = 0 ]
