#!/usr/bin/env bash
# Builds clipes (Release) and runs the whole test suite with ctest.
# Usage: scripts/test.sh [build-dir]     (fixtures are read from ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
bash scripts/setup.sh
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" -j"$(nproc)"
ctest --test-dir "$BUILD" --output-on-failure -j1
