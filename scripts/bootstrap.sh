#!/usr/bin/env bash
# Installs what building and testing moec needs on Debian 12 (bookworm):
# LLVM/MLIR 22 (from bookworm-security), clang/lld 22 and their sanitizer
# runtimes (the ASan/UBSan test run), Protobuf, ONNX, GoogleTest, CMake,
# Ninja, ccache, and any further packages named as arguments (bench/run.sh
# asks for python3-venv). Idempotent; prints nothing when all is
# already there, and the apt log only if something fails.
set -euo pipefail

packages=(
  cmake ninja-build ccache python3 g++
  clang-22 lld-22 libclang-rt-22-dev llvm-22-dev llvm-22-tools libmlir-22-dev
  mlir-22-tools
  libprotobuf-dev protobuf-compiler libonnx-dev
  libgtest-dev
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "bootstrap: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "bootstrap: installing ${missing[*]}" >&2
if ! { "${sudo[@]}" apt-get update -q && \
       DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "bootstrap: apt-get failed (log above)" >&2
  exit 1
fi
