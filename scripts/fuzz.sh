#!/usr/bin/env bash
# Runs moec's libFuzzer targets for a long time, e.g. before a release or
# after touching a parser:
#
#   scripts/fuzz.sh [SECONDS] [TARGET ...]
#
# SECONDS per target (default 1800); TARGETs among safetensors, hf-config,
# onnx, artifact (default all). Builds the sanitizer build (build-san/, which
# has the fuzz targets) first. Targets run MOE_FUZZ_PARALLEL at a time
# (default 1). Corpora grow in build-san/fuzz/corpus/TARGET and are reused by
# the next run; findings are written to build-san/fuzz/findings/. Prints one
# line per target with its executions and exits non-zero on any finding.
# (CI runs each target for 20 s through lit: test/Fuzz/*.test.)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOE_SANITIZE_BUILD_DIR:-$root/build-san}
seconds=${1:-1800}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(safetensors hf-config onnx artifact)
parallel=${MOE_FUZZ_PARALLEL:-1}

MOE_BUILD_DIR=$build MOE_SANITIZE=ON MOE_FUZZ=ON "$root/scripts/build.sh" || exit 1

run() {
  local target=$1
  case $target in
    safetensors|hf-config|onnx|artifact) ;;
    *) echo "fuzz.sh: unknown target '$target'" >&2; return 2 ;;
  esac
  local dir=$build/fuzz
  mkdir -p "$dir/corpus/$target" "$dir/findings" "$dir/logs"
  rm -rf "$dir/seeds/$target"
  python3 "$root/test/Fuzz/make_seeds.py" "$target" "$dir/seeds/$target" \
    --moec "$build/bin/moec" || return 1
  "$build/bin/moe-fuzz-$target" -max_total_time="$seconds" -timeout=30 \
    -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$dir/findings/$target-" \
    "$dir/corpus/$target" "$dir/seeds/$target" >"$dir/logs/$target.log" 2>&1
  local status=$?
  local execs
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$dir/logs/$target.log" |
          grep -o '[0-9]*$')
  local corpus
  corpus=$(find "$dir/corpus/$target" -type f | wc -l)
  if [ $status -eq 0 ]; then
    echo "$target: ${execs:-?} executions in $seconds s, corpus $corpus inputs, no findings"
  else
    echo "$target: FINDING (exit $status), see $dir/logs/$target.log"
  fi
  return $status
}

failed=0
running=0
for target in "${targets[@]}"; do
  run "$target" &
  running=$((running + 1))
  if [ $running -ge "$parallel" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while [ $running -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
exit $failed
