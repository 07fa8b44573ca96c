#!/usr/bin/env bash
# The benchmark suite, in one command on a fresh Debian 12 machine:
# installs what is missing (scripts/bootstrap.sh, plus python3-venv), builds
# moec into build/, installs the pinned peers of bench/requirements.txt
# (onnxruntime, PyTorch, transformers) into build/bench-venv once, then
# measures moec, onnxruntime and PyTorch side by side (bench/bench.py) and
# writes docs/performance.md and docs/performance.json.
#
#   bench/run.sh                       # everything: about 11 minutes on a fresh
#                                      # 2-core machine, 6 once built and installed
#   bench/run.sh --configs qwen3 --dtypes f32 --tokens 1 128   # a subset
#
# Arguments go to bench/bench.py (see bench/bench.py --help). Nothing else
# should run on the machine meanwhile: every row is a wall-clock time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; then
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
  echo
  exec python3 "$root/bench/bench.py" --help
fi
build=${MOE_BUILD_DIR:-$root/build}
venv=${MOE_BENCH_VENV:-$build/bench-venv}

if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  "$root/scripts/bootstrap.sh" python3-venv
fi
# The peers download (about 3 GB) while moec builds: one waits on the
# network, the other on the cores.
stamp="$venv/.requirements"
peers=
if ! cmp -s "$root/bench/requirements.txt" "$stamp" 2>/dev/null; then
  echo "bench: installing the peers into $venv (about 3 GB, once; log:" \
    "$venv.log)" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  ( python3 -m venv "$venv" &&
    "$venv/bin/pip" install -q --disable-pip-version-check \
      -r "$root/bench/requirements.txt" &&
    cp "$root/bench/requirements.txt" "$stamp" ) >"$venv.log" 2>&1 &
  peers=$!
  trap 'kill "$peers" 2>/dev/null || true' EXIT
fi
# Only what the benchmark runs (the tests are left for scripts/test-all.sh).
MOE_BUILD_DIR=$build "$root/scripts/build.sh" moec moe-run moe-roofline
if [ -n "$peers" ] && ! wait "$peers"; then
  tail -n 20 "$venv.log" >&2
  echo "bench: installing the peers into $venv failed (above; all of it in" \
    "$venv.log)" >&2
  exit 1
fi
trap - EXIT
# From / so that no stray *.py in the working folder shadows a module.
cd /
exec "$venv/bin/python" "$root/bench/bench.py" --build "$build" \
  --out "$root/docs/performance.md" --json "$root/docs/performance.json" "$@"
