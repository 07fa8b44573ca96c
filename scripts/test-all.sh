#!/usr/bin/env bash
# Builds moec and runs every test (lit + GoogleTest); the last line printed is
# `N passed, N failed[, N skipped]`. Exits non-zero if anything failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOE_BUILD_DIR:-$root/build}
if ! "$root/scripts/build.sh"; then
  echo "error: the build failed; no test ran" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
exec python3 "$root/scripts/run_tests.py" --build-dir "$build" \
  --lit "$(command -v lit-22 || echo "$(llvm-config-22 --bindir)/lit")"
