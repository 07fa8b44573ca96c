#!/usr/bin/env bash
# Builds moec and compiles the bundled example, a DeepSeek-V3-architecture
# decoder layer, through the pipeline, printing the result.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOE_BUILD_DIR:-$root/build}
"$root/scripts/build.sh" >/dev/null
exec "$build/bin/moec" "$root/examples/deepseek-v3-layer.mlir" "$@"
