#!/usr/bin/env bash
# Configures (once) and builds moec into ${MOE_BUILD_DIR:-build} with clang-22,
# lld and ccache. Set CC/CXX to build with another compiler (g++ 12 works).
# Arguments name the targets to build (default: all of them), e.g.
#   scripts/build.sh moec moe-run
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOE_BUILD_DIR:-$root/build}

"$root/scripts/bootstrap.sh"
# ccache needs a writable cache even where HOME is unset.
export CCACHE_DIR=${CCACHE_DIR:-${HOME:-/tmp}/.cache/ccache}
# Sources compiled against the precompiled header (MOE_PCH) are cached only
# with these: ccache cannot see inside the PCH, so it hashes the PCH file
# itself and must ignore its timestamp and the macros it defines.
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}

cc=${CC:-clang-22}
cxx=${CXX:-clang++-22}
# The sanitizer build also builds the libFuzzer targets, where clang is used.
fuzz=${MOE_FUZZ:-}
if [ -z "$fuzz" ] && [ -n "${MOE_SANITIZE:-}" ]; then
  fuzz=OFF
  case "$cxx" in *clang*) fuzz=$MOE_SANITIZE ;; esac
fi
if [ ! -f "$build/build.ninja" ]; then
  linker=()
  case "$cxx" in *clang*) linker=(-DLLVM_USE_LINKER=lld) ;; esac
  cmake -G Ninja -S "$root" -B "$build" \
    -DCMAKE_BUILD_TYPE=Release -DMOE_SANITIZE="${MOE_SANITIZE:-OFF}" \
    -DMOE_FUZZ="${fuzz:-OFF}" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" "${linker[@]}" \
    -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DMLIR_DIR="$(llvm-config-22 --prefix)/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$(command -v lit-22 || echo "$(llvm-config-22 --bindir)/lit")" \
    >"$build.configure.log" 2>&1 || { cat "$build.configure.log" >&2; exit 1; }
fi
# A folder configured before keeps its settings, except MOE_SANITIZE and
# MOE_FUZZ when asked for explicitly and different.
if { [ -n "${MOE_SANITIZE:-}" ] &&
     ! grep -q "^MOE_SANITIZE:BOOL=${MOE_SANITIZE}\$" "$build/CMakeCache.txt"; } ||
   { [ -n "$fuzz" ] &&
     ! grep -q "^MOE_FUZZ:BOOL=${fuzz}\$" "$build/CMakeCache.txt"; }; then
  settings=()
  [ -n "${MOE_SANITIZE:-}" ] && settings+=(-DMOE_SANITIZE="$MOE_SANITIZE")
  [ -n "$fuzz" ] && settings+=(-DMOE_FUZZ="$fuzz")
  cmake "${settings[@]}" "$build" >"$build.configure.log" 2>&1 ||
    { cat "$build.configure.log" >&2; exit 1; }
fi
# -j2 suits the 2-core machines we build on; each MLIR TU needs ~0.5 GB.
targets=()
[ $# -gt 0 ] && targets=(--target "$@")
cmake --build "$build" "${targets[@]}" -- -j"${MOE_JOBS:-2}"
