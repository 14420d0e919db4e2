#!/usr/bin/env bash
# Installs everything clipes needs from Debian 12 packages. Non-interactive and
# idempotent: safe to run again. Needs root (or sudo).
#
# libdnnl-dev: oneDNN, the CPU engine's matmuls (docs/performance.md).
# libopenblas0-pthread matters: with Debian's default reference BLAS, LibTorch's
# matrix products run ~18x slower on the same machine.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PACKAGES=(
  g++ cmake make pkg-config
  libtorch-dev libopencv-dev libcli11-dev nlohmann-json3-dev libspdlog-dev
  libgtest-dev libpcre2-dev libxml2-dev zlib1g-dev libpng-dev libopenblas0-pthread
  libpugixml-dev libzip-dev libssl-dev libyaml-cpp-dev libdnnl-dev libgif-dev
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi
# Make sure the OpenBLAS build is the BLAS LibTorch picks up.
blas=/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
if [ -e "$blas" ] && command -v update-alternatives >/dev/null; then
  $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu "$blas" >/dev/null 2>&1 || true
fi
