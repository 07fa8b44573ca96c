#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in one run (under 5 minutes). For a
# machine with a GPU, CMake, a C/C++ compiler and the CUDA driver, but no
# LLVM/MLIR and no network:
#   1. builds only the runtime and moe-run (-DMOE_RUNTIME_ONLY=ON);
#   2. lists the devices;
#   3. runs each case of a pack made by scripts/gpu-pack.sh on a CPU
#      machine: CUDA artifacts of the fixture models, whose logits (decoders)
#      or outputs (graphs) must match the CPU artifacts' within the case's
#      tolerance, relative to max|CPU value| (f32 models 1e-3, bf16 3e-2,
#      graphs 1e-4), and whose greedy tokens must equal the CPU's;
#   4. prints a summary line; exits non-zero if anything failed.
# The pack's timing case, one full-size DeepSeek-V3 MoE layer compiled
# from a header-only checkpoint, runs with `moe-run --random-weights` (a
# 64-token prompt, 16 generated tokens) and reports moe-run's --stats line
# (load, prefill and decode tokens/s); it fails if it does not finish in
# $MOE_GPU_TIMING_LIMIT seconds (default 150). The cross-check case runs
# the same layer with the same random weights through a CPU artifact on
# the machine's cores as well, and compares logits (tolerance 3e-2, as
# for the bf16 fixture) and tokens; each of its runs has the same limit.
# The vector-code case runs that CPU artifact again with the best kernels
# the CPU has (AVX-512, often with AVX512_BF16, on most GPU hosts; never on
# the machines this project is built on) and with the portable ones, and
# compares logits (1e-3; 3e-2 for the bf16 dot products, which round the
# experts' intermediate activations) and tokens. Every other case fails if it runs past
# $MOE_GPU_CASE_LIMIT seconds (default 60), so that a hung kernel costs
# one case, not the run.
#
# Usage: scripts/gpu-check.sh [PACK_DIR]   (default build/gpu-pack)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pack=${1:-$root/build/gpu-pack}
[[ $pack == -h || $pack == --help ]] && { sed -n '2,/^# Usage/p' "$0"; exit 0; }
build=${MOE_GPU_BUILD_DIR:-$root/build-gpu}
out=$build/gpu-check
start=$SECONDS
passed=0 failed=0
case_limit=${MOE_GPU_CASE_LIMIT:-60}
pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

[[ -f $pack/cases.txt ]] || { echo "gpu-check: no $pack/cases.txt (make it with scripts/gpu-pack.sh)" >&2; exit 2; }

echo "==> building the runtime and moe-run in $build"
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
if ! cmake -S "$root" -B "$build" "${generator[@]}" -DMOE_RUNTIME_ONLY=ON \
       -DCMAKE_BUILD_TYPE=Release > "$build.cmake.log" 2>&1 ||
   ! cmake --build "$build" -j "$(nproc)" > "$build.build.log" 2>&1; then
  echo "gpu-check: the build failed; see $build.cmake.log and $build.build.log" >&2
  tail -20 "$build.build.log" "$build.cmake.log" 2>/dev/null >&2
  exit 1
fi
run=$build/bin/moe-run
echo "==> devices"
"$run" --list-devices
rm -rf "$out" && mkdir -p "$out"

# One run of case $name with random weights $seed, prompt $prompt and
# $generate tokens, within $limit seconds: `moe-run ARGS...`, writing
# $out/$name.TAG.{npy,tokens,err}.
random_run() {
  local tag=$1
  shift
  timeout "$limit" "$run" "$@" --random-weights "$seed" --tokens "$prompt" \
    --generate "$generate" --dump-logits "$out/$name.$tag.npy" \
    > "$out/$name.$tag.tokens" 2> "$out/$name.$tag.err"
}
# Passes case $name when random_run's runs A and B gave the same tokens
# and logits within $tol: compare_runs A B LABEL B_NAME PASS_LABEL.
compare_runs() {
  local a=$1 b=$2 label=$3 b_name=$4 pass_label=$5 result status
  result=$(python3 "$root/scripts/compare_npy.py" "$out/$name.$a.npy" \
             "$out/$name.$b.npy" "$tol" --rows-argmax)
  status=$?
  if ! cmp -s "$out/$name.$a.tokens" "$out/$name.$b.tokens"; then
    fail "$name ($label): tokens $(cat "$out/$name.$a.tokens") ($b_name: $(cat "$out/$name.$b.tokens")); logits $result"
  elif (( status != 0 )); then
    fail "$name ($label): logits $result"
  else
    pass "$name ($pass_label): same tokens, logits $result"
  fi
}

echo "==> cases from $pack"
while read -r kind name tol rest; do
  artifact=$pack/$name.cuda.moec
  if [[ $kind == timing ]]; then
    # TOL is the seed here; REST the prompt length and tokens to generate.
    read -r prompt generate <<< "$rest"
    limit=${MOE_GPU_TIMING_LIMIT:-150}
    if ! timeout "$limit" "$run" "$artifact" --device=cuda --random-weights "$tol" \
           --tokens "$(seq -s, 1 "$prompt")" --generate "$generate" --stats \
           > "$out/$name.tokens" 2> "$out/$name.err"; then
      fail "$name (timing): moe-run failed or ran past ${limit} s: $(tail -1 "$out/$name.err")"
    else
      pass "$name (timing, random weights): $(grep -i 'tok/s' "$out/$name.err" | tail -1)"
    fi
    continue
  fi
  if [[ $kind == crosscheck ]]; then
    # TOL is the seed, REST the tolerance, the prompt and the tokens to
    # generate: the CUDA and CPU artifacts run with the same random
    # weights, and their logits must agree.
    seed=$tol
    read -r tol prompt generate <<< "$rest"
    limit=${MOE_GPU_TIMING_LIMIT:-150}
    ok=1
    for device in cuda cpu; do
      random_run "$device" "$pack/$name.$device.moec" --device=$device --stats || ok=0
    done
    if (( !ok )); then
      fail "$name (cross-check): moe-run failed or ran past ${limit} s: $(tail -qn1 "$out/$name".{cuda,cpu}.err | tr '\n' ' ')"
      continue
    fi
    compare_runs cuda cpu cross-check CPU "cross-check with the CPU, random weights"
    continue
  fi
  if [[ $kind == isacheck ]]; then
    # TOL is the seed, REST the tolerance, the prompt and the tokens to
    # generate: the CPU artifact on this machine's cores with the best
    # vector code its CPU has and with the portable code (MOERT_ISA=generic,
    # which the CPU suite checks against transformers), same random
    # weights. The GPU machines are where AVX-512 CPUs are found: this is
    # the check of the runtime's AVX-512 kernels. Where the best is
    # avx512bf16, plain avx512 runs too: the bf16 dot products round the
    # experts' intermediate activations to bf16 (as the bf16 model does),
    # so they are held to the bf16 tolerance of the other cases, 3e-2, and
    # the f32 products of the 64-byte code to TOL.
    seed=$tol
    read -r tol prompt generate <<< "$rest"
    limit=${MOE_GPU_TIMING_LIMIT:-150}
    best=$("$run" --version | sed -n 's/.*CPU kernels: \([a-z0-9]*\).*/\1/p')
    case $best in
      avx512bf16) isas="avx512bf16 avx512" ;;
      avx512 | avx2) isas=$best ;;
      *)
        fail "$name (vector code): this CPU has neither AVX2 nor AVX-512 (kernels: '$best'); nothing to compare"
        continue ;;
    esac
    if ! MOERT_ISA=generic random_run generic "$pack/$name.cpu.moec" --device=cpu; then
      fail "$name (vector code): the portable run failed or ran past ${limit} s: $(tail -1 "$out/$name.generic.err")"
      continue
    fi
    isa_tol=$tol
    for isa in $isas; do
      tol=$isa_tol
      [[ $isa == avx512bf16 ]] && tol=3e-2
      if ! MOERT_ISA=$isa random_run "$isa" "$pack/$name.cpu.moec" --device=cpu; then
        fail "$name ($isa against generic): moe-run failed or ran past ${limit} s: $(tail -1 "$out/$name.$isa.err")"
        continue
      fi
      compare_runs "$isa" generic "$isa against generic" generic \
        "$isa kernels against the portable ones, random weights, tolerance $tol"
    done
    continue
  fi
  if [[ $kind == decoder ]]; then
    read -r tokens generate <<< "$rest"
    if ! timeout "$case_limit" "$run" "$artifact" --device=cuda --tokens "$tokens" --generate "$generate" \
           --dump-logits "$out/$name.npy" --stats > "$out/$name.tokens" 2> "$out/$name.err"; then
      fail "$name: moe-run failed or ran past ${case_limit} s: $(tail -1 "$out/$name.err")"
      continue
    fi
    result=$(python3 "$root/scripts/compare_npy.py" "$out/$name.npy" \
               "$pack/$name.ref.npy" "$tol" --rows-argmax)
    status=$?
    if ! cmp -s "$out/$name.tokens" "$pack/$name.ref.tokens"; then
      fail "$name: tokens $(cat "$out/$name.tokens") (CPU: $(cat "$pack/$name.ref.tokens")); logits $result"
    elif (( status != 0 )); then
      fail "$name: logits $result"
    else
      pass "$name: same tokens, logits $result; $(grep -i 'tok/s\|tokens/s' "$out/$name.err" | tail -1)"
    fi
  else
    args=()
    for pair in $rest; do args+=(--input "${pair%%=*}=$pack/${pair#*=}"); done
    if ! timeout "$case_limit" "$run" "$artifact" --device=cuda "${args[@]}" --output-dir "$out/$name" \
           > /dev/null 2> "$out/$name.err"; then
      fail "$name: moe-run failed or ran past ${case_limit} s: $(tail -1 "$out/$name.err")"
      continue
    fi
    ok=1 lines=()
    for ref in "$pack/$name.ref"/*.npy; do
      base=$(basename "$ref")
      result=$(python3 "$root/scripts/compare_npy.py" "$out/$name/$base" "$ref" "$tol") || ok=0
      lines+=("${base%.npy}: $result")
    done
    if (( ok )); then pass "$name: ${lines[*]}"; else fail "$name: ${lines[*]}"; fi
  fi
done < "$pack/cases.txt"

echo "gpu-check: $passed passed, $failed failed in $((SECONDS - start)) s"
(( failed == 0 ))
