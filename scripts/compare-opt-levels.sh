#!/usr/bin/env bash
# Prefill and decode speed of the tiny MoE fixtures at -O0 and -O2, side by
# side: prefill 500 tokens, decode 128, median of 5 runs of moe-run --stats.
# A quick check that an optimisation does not slow the CPU path down, not a
# benchmark (the fixtures are tiny; issue 8 brings the benchmark harness).
# Usage: scripts/compare-opt-levels.sh [build-dir]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prompt=$(python3 -c "print(','.join(str((i*37+11)%256) for i in range(500)))")
for m in deepseek_v3_yarn_sharded deepseek_v2_lite mixtral qwen2_moe qwen3_moe olmoe; do
  for level in 0 2; do
    "$build/bin/moec" "$root/test/fixtures/hf/$m" --max-seq-len=640 -O$level \
      --emit=artifact -o "$work/$m.O$level.moec"
    for _ in 1 2 3 4 5; do
      "$build/bin/moe-run" "$work/$m.O$level.moec" --tokens "$prompt" \
        --generate 128 --stats 2>&1 >/dev/null
    done | python3 -c "
import re, statistics, sys
pre, dec = [], []
for line in sys.stdin:
    m = re.search(r'prefill \d+ tokens in [\d.]+ s \(([\d.]+) tok/s\); decode \d+ tokens in [\d.]+ s \(([\d.]+) tok/s\)', line)
    if m:
        pre.append(float(m.group(1)))
        dec.append(float(m.group(2)))
print(f'$m -O$level: prefill {statistics.median(pre):.0f} tok/s, decode {statistics.median(dec):.0f} tok/s')"
  done
done
