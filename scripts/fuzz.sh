#!/usr/bin/env bash
# libFuzzer harnesses (fuzz/fuzz_*.cpp) with ASan + UBSan: build, then run each.
#
#   bash scripts/fuzz.sh [SECONDS_PER_HARNESS] [HARNESS...]   (default 600 s, all; 0 = build only)
#
# Builds into build-fuzz/ with clang (installed with apt-get when missing),
# compiling only the torch-free sources each harness needs. Corpora grow in
# build-fuzz/corpus/<name> (kept between runs), seeds are regenerated in
# build-fuzz/seeds/<name> (scripts/fuzz_seeds.py, partly from ../shared),
# crash inputs land in build-fuzz/artifacts/<name>/. Prints one line per
# harness (executions, coverage, verdict) and exits non-zero if any crashed.
#
# Environment: FUZZ_PARALLEL (harnesses at once, default 1), FUZZ_NICE (nice
# level for compiles and runs, default 19), CLIPES_SHARED (../shared),
# CLIPES_FUZZ_VOCAB (vocabulary for fuzz_bpe), CXX_FUZZ (clang++).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SECONDS_PER=${1:-600}
shift || true
ALL=(bpe bpe_vocab labels coco_mask npy safetensors zip label_png class_file torch_save)
if [[ $# -gt 0 ]]; then HARNESSES=("$@"); else HARNESSES=("${ALL[@]}"); fi
OUT=$ROOT/build-fuzz
SHARED=${CLIPES_SHARED:-$ROOT/../shared}
PARALLEL=${FUZZ_PARALLEL:-1}
NICE="nice -n ${FUZZ_NICE:-19}"
CXX=${CXX_FUZZ:-clang++}
export CLIPES_FUZZ_VOCAB=${CLIPES_FUZZ_VOCAB:-$SHARED/fixtures/clip/bpe_simple_vocab_16e6.txt.gz}

# ---- toolchain ------------------------------------------------------------------
fuzzer_works() {
  command -v "$CXX" >/dev/null 2>&1 || return 1
  local probe; probe=$(mktemp -d)
  echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe/p.cpp"
  "$CXX" -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" >/dev/null 2>&1
  local rc=$?
  rm -rf "$probe"
  return $rc
}
if ! fuzzer_works; then
  echo "fuzz.sh: installing clang and libFuzzer (clang, libclang-rt-dev)" >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  # Debian 12: libFuzzer ships in libclang-rt-14-dev; newer releases use other versions.
  $SUDO apt-get install -y -qq clang libclang-rt-14-dev >/dev/null 2>&1 ||
    $SUDO apt-get install -y -qq clang libclang-rt-dev >/dev/null
  fuzzer_works || { echo "fuzz.sh: $CXX cannot build -fsanitize=fuzzer binaries" >&2; exit 2; }
fi

# ---- build ----------------------------------------------------------------------
CXXFLAGS=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
          -Wall -Wextra -Wno-unused-parameter -I"$ROOT/include")
for pkg in opencv4 libxml-2.0 libpng libzip libpcre2-8; do
  # shellcheck disable=SC2207
  CXXFLAGS+=($(pkg-config --cflags "$pkg" 2>/dev/null | sed 's/-I/-isystem /g'))
done

declare -A SOURCES LIBS MAXLEN DICT
# Every harness needs strings.cpp (error.h's file_error uses printable());
# file_checks.cpp where it exists (atomic_file.cpp calls into it).
UTIL="src/util/strings.cpp"
[[ -f src/util/file_checks.cpp ]] && UTIL="$UTIL src/util/file_checks.cpp"
SOURCES[bpe]="src/text/bpe_tokenizer.cpp src/util/atomic_file.cpp $UTIL"
LIBS[bpe]="-lpcre2-8 -lxml2 -lz";                MAXLEN[bpe]=2048
SOURCES[bpe_vocab]=${SOURCES[bpe]};              LIBS[bpe_vocab]=${LIBS[bpe]}; MAXLEN[bpe_vocab]=16384
SOURCES[labels]="src/data/labels_parser.cpp src/data/safe_path.cpp $UTIL"
LIBS[labels]="";                                 MAXLEN[labels]=4096; DICT[labels]=fuzz/json.dict
SOURCES[coco_mask]="src/data/coco_mask.cpp src/util/atomic_file.cpp $UTIL"
LIBS[coco_mask]="-lopencv_core";                 MAXLEN[coco_mask]=4096
SOURCES[npy]="src/io/npy_header.cpp src/io/npy_pickle.cpp src/io/pickle_machine.cpp $UTIL"
LIBS[npy]="";                                    MAXLEN[npy]=8192; DICT[npy]=fuzz/npy.dict
SOURCES[safetensors]="src/model/safetensors_header.cpp $UTIL"
LIBS[safetensors]="";                            MAXLEN[safetensors]=8192; DICT[safetensors]=fuzz/json.dict
SOURCES[zip]="src/util/zip_integrity.cpp $UTIL"
LIBS[zip]="-lzip";                               MAXLEN[zip]=16384
SOURCES[label_png]="src/io/indexed_png.cpp src/util/atomic_file.cpp $UTIL"
LIBS[label_png]="-lpng16 -lopencv_core";         MAXLEN[label_png]=16384
SOURCES[class_file]="src/text/class_config.cpp src/util/atomic_file.cpp $UTIL"
LIBS[class_file]="";                             MAXLEN[class_file]=8192; DICT[class_file]=fuzz/json.dict
SOURCES[torch_save]="src/model/torch_save_pickle.cpp src/io/pickle_machine.cpp $UTIL"
LIBS[torch_save]="";                             MAXLEN[torch_save]=16384; DICT[torch_save]=fuzz/pickle.dict

mkdir -p "$OUT/obj" "$OUT/bin"
# Object files are shared between harnesses; a header change rebuilds all.
newest_header=$(find "$ROOT/include" -name '*.h' -newer "$OUT/obj" -print -quit 2>/dev/null || true)
[[ -n "$newest_header" ]] && rm -f "$OUT"/obj/*.o
touch "$OUT/obj"
compile() {  # source (relative) → object path on stdout
  local src=$1 obj extra=()
  obj=$OUT/obj/$(echo "$src" | tr '/' '_').o
  # pycocotools parity needs unfused floating point, as in CMakeLists.txt.
  [[ $src == src/data/coco_mask.cpp ]] && extra=(-ffp-contract=off)
  if [[ ! -f $obj || $ROOT/$src -nt $obj ]]; then
    $NICE "$CXX" "${CXXFLAGS[@]}" "${extra[@]}" -fsanitize=fuzzer-no-link -c "$ROOT/$src" -o "$obj" >&2
  fi
  echo "$obj"
}
for name in "${HARNESSES[@]}"; do
  [[ -n ${SOURCES[$name]+x} ]] || { echo "fuzz.sh: unknown harness '$name' (have: ${ALL[*]})" >&2; exit 2; }
  objs=()
  for src in ${SOURCES[$name]}; do objs+=("$(compile "$src")"); done
  bin=$OUT/bin/fuzz_$name
  if [[ ! -f $bin || fuzz/fuzz_$name.cpp -nt $bin || -n $(find "${objs[@]}" -newer "$bin" -print -quit) ]]; then
    echo "fuzz.sh: building fuzz_$name" >&2
    # shellcheck disable=SC2086
    $NICE "$CXX" "${CXXFLAGS[@]}" -fsanitize=fuzzer "fuzz/fuzz_$name.cpp" "${objs[@]}" ${LIBS[$name]} -o "$bin"
  fi
done

# ---- seeds ------------------------------------------------------------------------
for name in "${HARNESSES[@]}"; do rm -rf "${OUT:?}/seeds/$name"; done
if command -v python3 >/dev/null 2>&1; then
  python3 scripts/fuzz_seeds.py "$OUT/seeds" "$SHARED" "${HARNESSES[@]}"
else
  echo "fuzz.sh: no python3, starting from empty corpora" >&2
fi

if [[ $SECONDS_PER -eq 0 ]]; then echo "fuzz.sh: built (0 seconds: nothing run)" >&2; exit 0; fi

# ---- run ----------------------------------------------------------------------------
# halt_on_error + -fno-sanitize-recover: the first finding stops the run and
# leaves its input in artifacts/. detect_leaks stays on (LeakSanitizer).
export ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
run_one() {
  local name=$1 corpus=$OUT/corpus/$1 art=$OUT/artifacts/$1 log=$OUT/logs/$1.log dict=()
  mkdir -p "$corpus" "$art" "$OUT/logs" "$OUT/seeds/$name"
  [[ -n ${DICT[$name]+x} ]] && dict=(-dict="$ROOT/${DICT[$name]}")
  local rc=0 start=$SECONDS
  touch "$OUT/logs/$name.start"
  $NICE "$OUT/bin/fuzz_$name" -max_total_time="$SECONDS_PER" -timeout=20 -rss_limit_mb=2048 \
    -max_len="${MAXLEN[$name]}" -print_final_stats=1 -artifact_prefix="$art/" "${dict[@]}" \
    "$corpus" "$OUT/seeds/$name" >"$log" 2>&1 || rc=$?
  echo "$rc" >"$OUT/logs/$name.rc"
  echo $((SECONDS - start)) >"$OUT/logs/$name.secs"
}
echo "fuzz.sh: running ${#HARNESSES[@]} harness(es) for ${SECONDS_PER}s each, $PARALLEL at a time" >&2
running=0
for name in "${HARNESSES[@]}"; do
  rm -f "$OUT/logs/$name.rc" "$OUT/logs/$name.secs"
  run_one "$name" &
  running=$((running + 1))
  if [[ $running -ge $PARALLEL ]]; then wait -n || true; running=$((running - 1)); fi
done
wait

# ---- report -------------------------------------------------------------------------
failed=0
printf '%-12s %8s %12s %8s %8s  %s\n' harness seconds executions cov ft result
for name in "${HARNESSES[@]}"; do
  log=$OUT/logs/$name.log
  rc=$(cat "$OUT/logs/$name.rc" 2>/dev/null || echo 99)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" 2>/dev/null | tail -1 || true)
  secs=$(cat "$OUT/logs/$name.secs" 2>/dev/null || true)
  cov=$( (grep -o 'cov: [0-9]*' "$log" || true) | tail -1 | cut -d' ' -f2)
  ft=$( (grep -o 'ft: [0-9]*' "$log" || true) | tail -1 | cut -d' ' -f2)
  artifacts=$(find "$OUT/artifacts/$name" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) \
                 -newer "$OUT/logs/$name.start" 2>/dev/null | head -3 | tr '\n' ' ' || true)
  result=ok
  if [[ $rc -ne 0 ]]; then
    result="CRASH (exit $rc) ${artifacts:-see $log}"
    failed=1
  fi
  printf '%-12s %8s %12s %8s %8s  %s\n' "$name" "${secs:-?}" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$result"
  if [[ $rc -ne 0 ]]; then
    (grep -m3 -E 'ERROR: |runtime error|property violated|deadly signal|terminate called' "$log" || true) | sed 's/^/    /'
  fi
done
exit $failed
