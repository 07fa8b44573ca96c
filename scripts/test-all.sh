#!/usr/bin/env bash
# Builds moec and runs every test (lit + GoogleTest), then builds it again
# with AddressSanitizer + UndefinedBehaviorSanitizer (build-san/) and runs
# every test there too, where any report fails the test that hit it. The last
# line printed is `N passed, N failed[, N skipped]` over both runs. Exits
# non-zero if anything failed. MOE_SKIP_SANITIZERS=1 runs the first only
# (a quicker local loop; CI always runs both).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOE_BUILD_DIR:-$root/build}

passed=0 failed=0 skipped=0
# Runs the suite of build folder $1 (built first, with MOE_SANITIZE=$2) and
# adds its counts.
suite() {
  local dir=$1 sanitize=$2 log summary
  echo "==> tests in $dir (sanitizers: $sanitize)"
  if ! MOE_BUILD_DIR=$dir MOE_SANITIZE=$sanitize "$root/scripts/build.sh"; then
    echo "error: the build of $dir failed; its tests did not run" >&2
    failed=$((failed + 1))
    return
  fi
  # Found only now: the first build installs LLVM on a fresh machine.
  local lit
  lit="$(command -v lit-22 || echo "$(llvm-config-22 --bindir)/lit")"
  log=$(mktemp)
  python3 "$root/scripts/run_tests.py" --build-dir "$dir" --lit "$lit" | tee "$log"
  summary=$(tail -n 1 "$log")
  rm -f "$log"
  if [[ $summary =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)?$ ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
    skipped=$((skipped + ${BASH_REMATCH[4]:-0}))
  else
    echo "error: no test summary from $dir" >&2
    failed=$((failed + 1))
  fi
}

suite "$build" OFF
if [ "${MOE_SKIP_SANITIZERS:-0}" != 1 ]; then
  suite "${MOE_SANITIZE_BUILD_DIR:-$root/build-san}" ON
fi
line="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
echo "$line"
[ "$failed" -eq 0 ]
