#!/usr/bin/env bash
# Compiles every library and command source once more with clang (syntax only,
# no precompiled header), using the flags of an existing build's
# compile_commands.json. Why (issue 29): the GPU machine builds with a newer
# g++ against LibTorch 2.x, and two breaks got past our g++ 12 + PCH build: a
# header holding at::Tensor by value on a forward declaration (the PCH had
# already defined it) and a lambda capturing a structured binding (g++ 12
# accepts it, the standard and newer compilers do not). Clang rejects both.
# Usage: scripts/compile-check.sh BUILD_DIR [JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:?usage: scripts/compile-check.sh BUILD_DIR [JOBS]}
JOBS=${2:-$(nproc)}
CXX=${CXX_CHECK:-clang++}
[[ -f "$BUILD/compile_commands.json" ]] || { echo "compile-check: $BUILD/compile_commands.json missing (configure first)" >&2; exit 2; }
if ! command -v "$CXX" >/dev/null; then
  echo "compile-check: installing clang" >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq clang >/dev/null
fi

LIST=$(mktemp)
trap 'rm -f "$LIST"' EXIT
# One shell-quoted command per line: the build's own flags, the compiler
# swapped, the object output and the PCH dropped, -fsyntax-only added.
python3 - "$BUILD/compile_commands.json" "$CXX" "$(pwd)" > "$LIST" <<'EOF'
import json, shlex, sys
entries, cxx, root = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
for e in entries:
    src = e["file"]
    if not (src.startswith(root + "/src/") or src.startswith(root + "/tools/")):
        continue
    args = e["arguments"] if "arguments" in e else shlex.split(e["command"])
    out, skip = [cxx], False
    for i, a in enumerate(args[1:], 1):
        if skip:
            skip = False
            continue
        if a in ("-o", "-MF", "-MT", "-MQ"):
            skip = True
            continue
        if a in ("-c", "-MD", "-MMD", "-Winvalid-pch") or "cmake_pch" in a:
            continue
        if a == "-include" and i + 1 < len(args) and "cmake_pch" in args[i + 1]:
            skip = True
            continue
        out.append(a)
    out += ["-fsyntax-only", "-Wno-unknown-warning-option", "-Wno-unused-command-line-argument"]
    print("cd " + shlex.quote(e["directory"]) + " && " + " ".join(shlex.quote(a) for a in out))
EOF
n=$(wc -l < "$LIST")
echo "compile-check: $n sources with $CXX -fsyntax-only, $JOBS at a time"
failed=0
# xargs: each line is one command; a failing one is reported, the rest still run.
tr '\n' '\0' < "$LIST" | xargs -0 -P "$JOBS" -I{} bash -c '{} 2>&1 | grep -E "error" -A3 >&2; exit ${PIPESTATUS[0]}' || failed=1
if [[ $failed -ne 0 ]]; then
  echo "compile-check: FAILED (errors above)" >&2
  exit 1
fi
echo "compile-check: all $n sources compile with $CXX"
