#!/usr/bin/env bash
# Runs the runtime's kernel unit tests with its AVX-512 kernels, on a machine
# without AVX-512: a statically linked copy of the tests (the ninja target
# MoEKernelsTestStatic) runs in Bochs emulating a CPU with AVX-512 and
# AVX512_BF16 (scripts/emulator), twice:
#   avx512bf16  no MOERT_ISA: the runtime must pick its AVX512_BF16 kernels
#               (KernelsIsa.BestUnderTheCap checks the pick against CPUID);
#   avx512      MOERT_ISA=avx512: the AVX-512 kernels without AVX512_BF16.
# Prints a summary line per run and exits non-zero if either fails.
#
# A developer check, not run in CI. Needs root (debootstrap, chroot, mknod).
# The first run sets up the emulator (scripts/emulator/setup.sh: 5 to 15
# minutes, about 1 GB in build/emulator); after that a check takes about 3
# minutes.
#
# Usage: scripts/avx512-emulator-check.sh [BUILD_DIR [TEST_ARGS...]]
#   BUILD_DIR   default $MOE_BUILD_DIR or <repo>/build
#   TEST_ARGS   extra arguments for the test binary (e.g. --gtest_filter=...)
# Environment:
#   MOE_KERNELS_TEST_BINARY     a prebuilt static test binary: no build
#   MOE_EMULATOR_GTEST_FILTER   run only the tests matching this gtest filter
#                               (and KernelsIsa.*, which names the kernels run)
#   MOE_EMULATOR_DIR            the emulator environment (default <repo>/build/emulator)
set -uo pipefail
root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
[[ ${1:-} == -h || ${1:-} == --help ]] && { sed -n '2,/^set /{/^#/p}' "$0" | cut -c3-; exit 0; }
build=${1:-${MOE_BUILD_DIR:-$root/build}}
(($#)) && shift
me=avx512-emulator-check
die() { echo "$me: $*" >&2; exit 1; }

if [[ $(id -u) != 0 ]]; then
  die "must run as root (the emulator uses chroot); build as yourself first, then e.g." \
    "sudo MOE_KERNELS_TEST_BINARY=$build/unittests/MoEKernelsTestStatic $0"
fi
binary=${MOE_KERNELS_TEST_BINARY:-}
if [[ -z $binary ]]; then
  binary=$build/unittests/MoEKernelsTestStatic
  echo "$me: building MoEKernelsTestStatic in $build" >&2
  ninja -C "$build" MoEKernelsTestStatic >&2 || die "ninja -C $build MoEKernelsTestStatic failed"
fi
[[ -f $binary ]] || die "no test binary $binary"

# Sets up the emulator on first use; a no-op (a second) once done.
"$root/scripts/emulator/setup.sh" || die "emulator setup failed (see above)"

args=(--gtest_color=no)
# KernelsIsa.* always runs: check() needs the line it prints.
[[ -n ${MOE_EMULATOR_GTEST_FILTER:-} ]] &&
  args+=("--gtest_filter=$MOE_EMULATOR_GTEST_FILTER:KernelsIsa.*")
args+=("$@")
logs=$(mktemp -d "${TMPDIR:-/tmp}/$me.XXXXXX")
failed=0

# check NAME [run.sh options]: runs the tests once and prints the summary line.
# The runtime must have run kernels NAME (KernelsIsa.BestUnderTheCap prints
# them), or a change to the emulated CPU would test other code unnoticed.
check() {
  local name=$1 log=$logs/$1.log start=$SECONDS rc
  shift
  "$root/scripts/emulator/run.sh" "$@" "$binary" "${args[@]}" > "$log" 2>&1
  rc=$?
  local secs=$((SECONDS - start))
  local passed isa
  passed=$(tr -d '\r' < "$log" | sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\{0,1\}\.$/\1/p')
  isa=$(tr -d '\r' < "$log" | sed -n 's/^CPU kernels: //p' | head -1)
  if ((rc == 0)) && [[ -n $passed && $isa == "$name" ]]; then
    echo "$me: $name: $passed tests passed ($secs s)"
    return
  fi
  if ((rc == 0)) && [[ -n $passed ]]; then
    failed=1
    echo "$me: $name: FAIL ($secs s): the runtime ran kernels '${isa:-unknown}'"
    echo "$me: $name: log: $log"
    return
  fi
  failed=1
  # gtest's closing list: "[  FAILED  ] Suite.Test" or "..., where GetParam() = ...".
  local names
  names=$(tr -d '\r' < "$log" | awk 'list && /^\[  FAILED  \] / {
    n = $4; sub(/,$/, "", n); printf "%s%s", (c++ ? " " : ""), n } /listed below:$/ { list = 1 }')
  if [[ -n $names ]]; then
    echo "$me: $name: FAIL ($secs s): $names"
  else # a crash, a timeout or a boot failure
    local last
    last=$(tr -d '\r' < "$log" | awk '/^\[ RUN      \] / { t = $4 } END { print t }')
    echo "$me: $name: FAIL ($secs s): exit status $rc${last:+ in $last}" \
      "$(grep -a '^run.sh:' "$log" | head -1)"
  fi
  echo "$me: $name: log: $log"
}

check avx512bf16
check avx512 -e MOERT_ISA=avx512
if ((failed)); then exit 1; fi
rm -rf --one-file-system "$logs"
