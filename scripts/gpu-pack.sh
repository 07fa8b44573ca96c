#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh runs on a GPU machine that has no
# LLVM/MLIR: CUDA artifacts of the fixture models (weights embedded), their
# inputs, and the CPU artifacts' results on the same inputs as the
# reference; and a full-size DeepSeek-V3 MoE layer to time with random
# weights. Run it here, after scripts/build.sh; carry the folder over.
#
# Usage: scripts/gpu-pack.sh [OUT_DIR] [--gpu-arch=sm_90a]
#   OUT_DIR defaults to build/gpu-pack (under 60 MiB; it prints the size).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build/gpu-pack
arch=sm_90a
for arg in "$@"; do
  case $arg in
    --gpu-arch=*) arch=${arg#--gpu-arch=} ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    -*) echo "gpu-pack: unknown option $arg" >&2; exit 2 ;;
    *) out=$arg ;;
  esac
done
moec=$root/build/bin/moec
run=$root/build/bin/moe-run
for tool in "$moec" "$run"; do
  [[ -x $tool ]] || { echo "gpu-pack: $tool is missing; run scripts/build.sh first" >&2; exit 1; }
done
rm -rf "$out" && mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cases=$out/cases.txt
: > "$cases"
tokens=1,17,42,7,99,3
generate=8

# Decoders: TOL is relative to max|logit| of the CPU run (f32 models: the
# GPU code's polynomial exp/sin/cos and summation order; bf16: rounding
# of intermediate results).
decoders="mixtral:1e-3 olmoe:1e-3 qwen3_moe:1e-3 qwen2_moe:1e-3 llama:1e-3
  deepseek_v3_yarn_sharded:1e-3 deepseek_v2_lite:1e-3 deepseek_v3_bf16:3e-2"
for entry in $decoders; do
  name=${entry%%:*} tol=${entry#*:}
  fixture=$root/test/fixtures/hf/$name
  echo "gpu-pack: $name"
  "$moec" "$fixture" --target=cuda --gpu-arch="$arch" --embed-weights \
    --max-seq-len=64 -o "$out/$name.cuda.moec"
  "$moec" "$fixture" --target=cpu --embed-weights --max-seq-len=64 \
    -o "$tmp/$name.cpu.moec"
  "$run" "$tmp/$name.cpu.moec" --tokens "$tokens" --generate "$generate" \
    --dump-logits "$out/$name.ref.npy" > "$out/$name.ref.tokens"
  echo "decoder $name $tol $tokens $generate" >> "$cases"
done

# The fixtures' reductions are shorter than -moe-gpu-split-reductions'
# default minimum (256 iterations), so these variants lower it to take
# the split kernels (partial sums over a warp's lanes) on the GPU too.
# Same references as the default builds.
for entry in mixtral:1e-3 qwen3_moe:1e-3 deepseek_v3_yarn_sharded:1e-3 \
             deepseek_v3_bf16:3e-2; do
  name=${entry%%:*} tol=${entry#*:}
  echo "gpu-pack: ${name}_split"
  "$moec" "$root/test/fixtures/hf/$name" --target=cuda --gpu-arch="$arch" \
    --gpu-split-min-trips=16 --embed-weights --max-seq-len=64 \
    -o "$out/${name}_split.cuda.moec"
  cp "$out/$name.ref.npy" "$out/${name}_split.ref.npy"
  cp "$out/$name.ref.tokens" "$out/${name}_split.ref.tokens"
  echo "decoder ${name}_split $tol $tokens $generate" >> "$cases"
done

# Graphs (ONNX): one MoE block, one attention block. NAME|TOL|INPUT=FILE,...
graphs="moe_top3|1e-4|x=input.npy attention_block|1e-4|x=in.x.npy,skip=in.skip.npy"
for entry in $graphs; do
  IFS='|' read -r name tol inputs <<< "$entry"
  fixture=$root/test/fixtures/onnx/$name
  echo "gpu-pack: $name (graph)"
  "$moec" "$fixture/model.onnx" --target=cuda --gpu-arch="$arch" -o "$out/$name.cuda.moec"
  "$moec" "$fixture/model.onnx" --target=cpu -o "$tmp/$name.cpu.moec"
  args=() packed=()
  IFS=, read -ra pairs <<< "$inputs"
  for pair in "${pairs[@]}"; do
    cp "$fixture/${pair#*=}" "$out/$name.${pair#*=}"
    args+=(--input "${pair%%=*}=$out/$name.${pair#*=}")
    packed+=("${pair%%=*}=$name.${pair#*=}")
  done
  "$run" "$tmp/$name.cpu.moec" "${args[@]}" --output-dir "$out/$name.ref" > /dev/null
  echo "graph $name $tol ${packed[*]}" >> "$cases"
done

# Timing (no reference): one full-size DeepSeek-V3 MoE layer (256 experts,
# hidden 7168, 13.4B parameters) from a header-only checkpoint; gpu-check
# runs it with --random-weights, so the checkpoint never travels.
# TIMING NAME SEED PROMPT_TOKENS GENERATE
echo "gpu-pack: deepseek_v3_layer (timing)"
python3 "$root/scripts/deepseek_v3_layers.py" "$tmp/deepseek_v3_layer" > /dev/null
"$moec" "$tmp/deepseek_v3_layer" --target=cuda --gpu-arch="$arch" \
  --max-seq-len=4096 -o "$out/deepseek_v3_layer.cuda.moec"
echo "timing deepseek_v3_layer 1 64 16" >> "$cases"

# The same layer checked against the CPU artifact on the GPU machine's
# cores, both with the same random weights: the kernels at full size
# (reductions of 7168 and 16384 elements), which no fixture reaches. A
# two-token prompt, so that the prompt also takes the decode-sized path.
# CROSSCHECK NAME SEED TOL PROMPT GENERATE
"$moec" "$tmp/deepseek_v3_layer" --target=cpu --max-seq-len=4096 \
  -o "$out/deepseek_v3_layer.cpu.moec"
echo "crosscheck deepseek_v3_layer 1 3e-2 7,11 4" >> "$cases"
# The CPU artifact again, best vector code against portable code: a
# 40-token prompt, so the projections take the packed outer-product tiles
# (32 rows or more) and the decode steps the dot tiles.
# ISACHECK NAME SEED TOL PROMPT GENERATE
echo "isacheck deepseek_v3_layer 1 1e-3 $(seq -s, 1 40) 2" >> "$cases"

size=$(du -sm "$out" | cut -f1)
echo "gpu-pack: $(wc -l < "$cases") cases for $arch in $out ($size MiB)"
if (( size >= 60 )); then
  echo "gpu-pack: error: the pack is $size MiB, over the 60 MiB a device run carries" >&2
  exit 1
fi
