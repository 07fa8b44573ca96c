#!/usr/bin/env bash
# Builds moec and compiles the bundled example, a DeepSeek-V3-architecture
# decoder layer, through the pipeline, printing the result.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOE_BUILD_DIR:-$root/build}
# Build progress goes to stderr so that stdout is the compiled program.
"$root/scripts/build.sh" >&2
exec "$build/bin/moec" "$root/examples/deepseek-v3-layer.mlir" "$@"
