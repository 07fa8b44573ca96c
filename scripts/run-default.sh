#!/usr/bin/env bash
# Builds moec, compiles the bundled tiny DeepSeek-V3-architecture checkpoint
# (test/fixtures/hf/deepseek_v3_yarn_sharded: MLA with a low-rank query,
# YaRN RoPE, grouped sigmoid routing with a selection bias, shared experts,
# three safetensors shards) to a CPU artifact, and generates 16 tokens from
# a fixed prompt with moe-run. transformers generates the same 16 ids
# (oracle/expected.json in that folder).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOE_BUILD_DIR:-$root/build}
model=$root/test/fixtures/hf/deepseek_v3_yarn_sharded
# Build progress goes to stderr so that stdout is the generated tokens.
"$root/scripts/build.sh" >&2
"$build/bin/moec" "$model" --max-seq-len=64 --emit=artifact -o "$build/deepseek-v3-tiny.moec"
echo "prompt:    0 17 200 45 99 3 128 77 250 12 64" >&2
printf 'generated: '
exec "$build/bin/moe-run" "$build/deepseek-v3-tiny.moec" \
  --tokens 0,17,200,45,99,3,128,77,250,12,64 --generate 16 "$@"
