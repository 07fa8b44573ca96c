#!/usr/bin/env python3
"""moec's benchmark suite: MoE layers side by side with onnxruntime and PyTorch.

Run through bench/run.sh, which builds moec, installs the pinned peers
(bench/requirements.txt) into a virtual environment and calls this script.

For each MoE layer configuration (CPU-sized versions of the reference shapes
in ../shared/reference/performance.md, section 3), weight type and token
count, one run:

1. builds the layer as a transformers module (MixtralSparseMoeBlock,
   Qwen3MoeSparseMoeBlock, DeepseekV3MoE) with seeded random weights;
2. writes the same layer as ONNX: com.microsoft.MoE where the op can express
   it (softmax top-k routing), else the graph torch.onnx.export makes of the
   module (DeepSeek's grouped sigmoid router with its shared expert);
3. times PyTorch eager on the module, onnxruntime (CPU) on the ONNX model,
   and moec on the same ONNX model compiled with `moec --target=cpu` and run
   by `moe-run --repeat`, all on all cores and the same input;
4. checks that moec's output matches PyTorch's (max |diff| / max |ref|).

Then a whole model (MODEL_CONFIG: ~115M parameters, DeepSeek-V3
architecture, random weights): prefill and decode tokens/s of moe-run
against the transformers model with its KV cache, and whether their greedy
tokens agree; and moec's compile time and peak memory on the full
DeepSeek-V3 config from a header-only checkpoint (sparse shards).

It also measures the machine's roof (bench/roofline.cpp: read bandwidth,
peak f32 FLOP/s and, with AVX512_BF16, peak bf16 FLOP/s on all cores) and
reports each moec row against it: T=1 as the fraction of read bandwidth
(bytes of the weights the step must read / time), larger T as the fraction
of peak FLOP/s (bf16 rows: the bf16 peak where moec's avx512bf16 kernels
run).

Writes docs/performance.md (Markdown) and docs/performance.json.
"""

import argparse
import copy
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

np = None  # numpy, imported once the arguments are parsed (--help needs none of the peers)

CONFIGS = {
    # name: (hidden, experts, intermediate, top-k, shared experts)
    "mixtral": dict(hidden=1024, experts=8, inter=3584, k=2, shared=0),
    "qwen3": dict(hidden=1024, experts=64, inter=384, k=8, shared=0),
    "deepseek": dict(hidden=1024, experts=64, inter=512, k=6, shared=1,
                     n_group=8, topk_group=4),
}
TOKENS = [1, 16, 128, 1024]
DTYPES = ["f32", "bf16"]
TOLERANCE = {"f32": 1e-4, "bf16": 3e-2}
# transformers' experts implementations tried for PyTorch (its default is
# grouped_mm); batched_mm, which gathers [T * k, 2I, H] weights, was never
# the fastest here and runs out of memory at T = 1024.
TORCH_EXPERTS = ["grouped_mm", "eager"]


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def make_module(name, dtype):
    """The transformers module of configuration `name`, seeded."""
    import torch
    cfg = CONFIGS[name]
    torch.manual_seed(1234)
    if name == "mixtral":
        from transformers import MixtralConfig
        from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock
        config = MixtralConfig(hidden_size=cfg["hidden"], intermediate_size=cfg["inter"],
                               num_local_experts=cfg["experts"],
                               num_experts_per_tok=cfg["k"])
        module = MixtralSparseMoeBlock(config)
    elif name == "qwen3":
        from transformers import Qwen3MoeConfig
        from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock
        config = Qwen3MoeConfig(hidden_size=cfg["hidden"], moe_intermediate_size=cfg["inter"],
                                num_experts=cfg["experts"], num_experts_per_tok=cfg["k"],
                                norm_topk_prob=True)
        module = Qwen3MoeSparseMoeBlock(config)
    else:
        from transformers import DeepseekV3Config
        from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE
        config = DeepseekV3Config(hidden_size=cfg["hidden"], moe_intermediate_size=cfg["inter"],
                                  n_routed_experts=cfg["experts"], n_shared_experts=cfg["shared"],
                                  num_experts_per_tok=cfg["k"], n_group=cfg["n_group"],
                                  topk_group=cfg["topk_group"], norm_topk_prob=True,
                                  routed_scaling_factor=2.5)
        module = DeepseekV3MoE(config)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.02)
        if name == "deepseek":
            module.gate.e_score_correction_bias.normal_(0.0, 0.01)
        # Every weight a bf16 value, in both weight types: the f32 layer is
        # then exactly the bf16 one widened, which is what onnxruntime (no
        # bf16 kernels on CPU) runs for the bf16 rows, so those rows reuse
        # the f32 rows' ONNX model rather than export it again (two minutes
        # for deepseek). Values do not change an f32 kernel's speed.
        for t in module.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.to(torch.bfloat16))
    module.eval()
    return module.to(torch.bfloat16 if dtype == "bf16" else torch.float32)


class Flat:
    """module(x) on [T, H] (the modules take [B, S, H])."""

    def __init__(self, module):
        import torch
        self.module = module

        class Wrap(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                return self.inner(x.unsqueeze(0)).squeeze(0)
        self.wrapped = Wrap(module).eval()

    def __call__(self, x):
        return self.wrapped(x)


def onnx_moe_op(name, module, dtype, path):
    """com.microsoft.MoE with the module's weights: router MatMul + MoE."""
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper
    cfg = CONFIGS[name]
    tp = TensorProto.BFLOAT16 if dtype == "bf16" else TensorProto.FLOAT

    def init(array_name, t):
        t = t.detach().contiguous()
        if dtype == "bf16":
            raw = t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
            return helper.make_tensor(array_name, tp, list(t.shape), raw, raw=True)
        return numpy_helper.from_array(t.float().numpy(), array_name)
    experts = module.experts
    # onnxruntime's CPU MoE takes gate and up rows interleaved
    # (swiglu_fusion = 1): g0, u0, g1, u1, ...; transformers stores
    # [E, 2I, H] as all gate rows, then all up rows.
    gate, up = experts.gate_up_proj.chunk(2, dim=1)
    fc1 = torch.stack([gate, up], dim=2).reshape(experts.gate_up_proj.shape)
    inits = [init("router", module.gate.weight.t()),
             init("fc1", fc1),                 # [E, 2I, H]
             init("fc2", experts.down_proj)]   # [E, H, I]
    nodes = [helper.make_node("MatMul", ["x", "router"], ["logits"], name="router"),
             helper.make_node("MoE", ["x", "logits", "fc1", "", "fc2"], ["y"],
                              domain="com.microsoft", name="moe", k=cfg["k"],
                              activation_type="swiglu", swiglu_fusion=1,
                              normalize_routing_weights=1, activation_alpha=1.0,
                              activation_beta=0.0)]
    graph = helper.make_graph(nodes, f"{name}_moe",
                              [helper.make_tensor_value_info("x", tp, ["T", cfg["hidden"]])],
                              [helper.make_tensor_value_info("y", tp, ["T", cfg["hidden"]])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    onnx.save(model, path)


def onnx_export(module, dtype, path):
    """The graph torch.onnx.export (TorchScript) makes of the module, with
    transformers' eager experts: the tracer unrolls their loop over the
    experts the trace input hits, so that input (4096 tokens) must hit every
    expert, which is checked. (The batched_mm form would gather [T * k, 2I,
    H] weights: 25 GB at T = 1024.)

    The exporter's two whole-graph shape inference passes are skipped: on
    the f32 graph each spent ~50 s, and they leave no trace in the file
    (the graph keeps no value_info and an untyped input either way).
    Without them the f32 export takes 7 s instead of 108 s; the files are
    byte for byte the same (checked with `cmp` for f32 and bf16, torch
    2.15). The per-node inference that shapes the graph as it is built
    still runs."""
    import torch
    module.experts.config._experts_implementation = "eager"
    cfg_hidden = module.config.hidden_size
    torch.manual_seed(99)
    x = torch.randn(4096, cfg_hidden, dtype=module.experts.gate_up_proj.dtype)
    with torch.no_grad():
        _, _, ids = module.gate(x)
    hit = len(torch.unique(ids))
    if hit != module.config.n_routed_experts:
        sys.exit(f"the trace input hits {hit} experts, not all {module.config.n_routed_experts}")
    whole_graph_inference = torch._C._jit_pass_onnx_graph_shape_type_inference
    torch._C._jit_pass_onnx_graph_shape_type_inference = lambda *args: None
    try:
        torch.onnx.export(Flat(module).wrapped, (x,), path, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "T"}, "y": {0: "T"}},
                          opset_version=17, dynamo=False)
    finally:
        torch._C._jit_pass_onnx_graph_shape_type_inference = whole_graph_inference


def write_npy(path, array):
    """bf16 arrays go to moe-run as raw '<u2' words."""
    np.save(path, array)


def moe_run_median(args, artifact, x_path, out_dir, repeat, cold=False):
    """Median seconds of `moe-run --repeat` (the load and the first run
    left out); raises with moe-run's last line if it fails."""
    command = [args.moe_run, artifact, "--input", f"x={x_path}", "--output-dir", out_dir,
               "--repeat", str(repeat)] + (["--cold"] if cold else [])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1])
    line = [l for l in result.stderr.splitlines() if l.startswith("repeat:")][0]
    return float(line.split("median ")[1].split(" s")[0])


def measure_roof(args):
    return json.loads(subprocess.run([os.path.join(args.build, "bin", "moe-roofline")],
                                     capture_output=True, text=True, check=True).stdout)


def settle():
    """Lets the previous framework's worker threads stop spinning
    (onnxruntime's and OpenMP's spin for a while after each call) before
    the next one is timed, so no framework is timed against another's
    busy threads. Measured from the process's CPU time in 50 ms windows
    after a call: onnxruntime's threads spin for 50-100 ms, PyTorch's for
    under 50 ms."""
    time.sleep(0.2)


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def repeats_for(seconds):
    """Runs per median: about 0.4 s of them, at least 3, but a single run
    where one takes a second or more (PyTorch's bf16 layers at T = 1024
    take 1-3 s; the rounds still give each framework several)."""
    least = 1 if seconds >= 1.0 else 3
    return int(min(200, max(least, math.ceil(0.4 / max(seconds, 1e-6)))))


def run_layer_rows(args, roof):
    import onnxruntime as ort
    import torch
    threads = roof["cores"]
    torch.set_num_threads(threads)
    rows = []
    work = tempfile.mkdtemp(prefix="moe-bench-")
    for name in args.configs:
        cfg = CONFIGS[name]
        for dtype in args.dtypes:
            module = make_module(name, dtype)
            flat = Flat(module)
            onnx_path = os.path.join(work, f"{name}.{dtype}.onnx")
            form = "com.microsoft.MoE" if name != "deepseek" else "exported graph"
            log(f"{name} {dtype}: writing the ONNX model ({form})")
            if name == "deepseek":
                onnx_export(module, dtype, onnx_path)
            else:
                onnx_moe_op(name, module, dtype, onnx_path)
            artifact = os.path.join(work, f"{name}.{dtype}.moec")
            start = time.perf_counter()
            compiled = subprocess.run([args.moec, onnx_path, "--target=cpu", "-o", artifact],
                                      capture_output=True, text=True)
            compile_s = time.perf_counter() - start
            moec_error = None if compiled.returncode == 0 else compiled.stderr.strip().splitlines()[-1]
            report = subprocess.run([args.moec, onnx_path, "--report", "-o", os.devnull],
                                    capture_output=True, text=True).stderr
            raised = "raised" in report and "not raised" not in report
            log(f"{name} {dtype}: moec compile {compile_s:.1f} s"
                f"{'' if moec_error is None else ' FAILED: ' + moec_error}; MoE block raised: {raised}")
            session, ort_error, ort_note = None, None, None
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            try:
                session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
            except Exception as e:  # noqa: BLE001 - reported in the table
                ort_error = str(e).strip().splitlines()[0][:300]
            if dtype == "bf16" and ort_error and "NOT_IMPLEMENTED" in ort_error:
                # onnxruntime has no bf16 MatMul or MoE on CPU: what a user
                # can run is the same layer with the bf16 weights widened to
                # f32, which is what it is measured on.
                ort_note = f"f32 (its CPU kernels have no bf16: {ort_error})"
                # The f32 rows' model is this layer widened (make_module);
                # written here only when they were not run.
                f32_path = os.path.join(work, f"{name}.f32.onnx")
                if not os.path.exists(f32_path):
                    wide = copy.deepcopy(module).float()
                    if name == "deepseek":
                        onnx_export(wide, "f32", f32_path)
                    else:
                        onnx_moe_op(name, wide, "f32", f32_path)
                session = ort.InferenceSession(f32_path, options, providers=["CPUExecutionProvider"])
                ort_error = None
            for tokens in args.tokens:
                torch.manual_seed(tokens)
                x = torch.randn(tokens, cfg["hidden"])
                if dtype == "bf16":
                    x = x.to(torch.bfloat16)
                # PyTorch's best: transformers' experts implementations
                # (grouped_mm is its default where it dispatches).
                # One warm run and one timed run of each picks the best; only
                # that one is timed further.
                torch_times = {}
                settle()
                with torch.inference_mode():
                    for impl in TORCH_EXPERTS:
                        module.experts.config._experts_implementation = impl
                        try:
                            flat(x)
                        except RuntimeError as e:  # batched_mm's gathered weights
                            log(f"PyTorch {impl}: {str(e).splitlines()[0][:120]}")
                            continue
                        torch_times[impl] = timed(lambda: flat(x), 1)
                    best = min(torch_times, key=torch_times.get)
                    module.experts.config._experts_implementation = best
                    n = repeats_for(torch_times[best])
                    ref = flat(x)
                    torch_s = timed(lambda: flat(x), n)
                ref32 = ref.float().numpy()
                # moec's runs are short beside PyTorch's: at least 3 each.
                repeats = dict(torch=n, moec=max(3, n))
                row = dict(config=name, dtype=dtype, tokens=tokens, onnx_form=form,
                           torch_s=torch_s, torch_impl=best, torch_times=torch_times,
                           repeats=repeats)
                feed = x.view(torch.int16).numpy().view(np.uint16) if dtype == "bf16" else x.numpy()
                if session is not None and ort_error is None:
                    if ort_note:
                        row["ort_note"] = ort_note
                    try:
                        ort_in = {"x": x.float().numpy()}
                        settle()
                        session.run(None, ort_in)
                        repeats["ort"] = repeats_for(timed(lambda: session.run(None, ort_in), 1))
                        row["ort_s"] = timed(lambda: session.run(None, ort_in), repeats["ort"])
                        out = session.run(None, ort_in)[0]
                        row["ort_rel_diff"] = float(np.abs(out - ref32).max() / np.abs(ref32).max())
                    except Exception as e:  # noqa: BLE001
                        row["ort_error"] = str(e).strip().splitlines()[0][:300]
                else:
                    row["ort_error"] = ort_error
                if moec_error is None:
                    x_path = os.path.join(work, "x.npy")
                    write_npy(x_path, feed)
                    out_dir = os.path.join(work, "out")
                    settle()
                    try:
                        row["moec_s"] = moe_run_median(args, artifact, x_path, out_dir,
                                                       repeats["moec"])
                    except RuntimeError as e:
                        row["moec_error"] = str(e)
                    else:
                        out = np.load(os.path.join(out_dir, "y.npy"))
                        if dtype == "bf16":
                            out = (out.astype(np.uint32) << 16).view(np.float32)
                        # Per token: bf16 router logits tie often (64
                        # experts, 8 mantissa bits), and PyTorch's topk breaks
                        # ties in an unspecified order, so a few tokens may
                        # run other experts; they are counted, not hidden.
                        scale = np.abs(ref32).max()
                        per_row = np.abs(out - ref32).max(axis=1) / scale
                        off = per_row > TOLERANCE[dtype]
                        row["moec_rows_differing"] = int(off.sum())
                        row["moec_rel_diff"] = float(per_row[~off].max()) if (~off).any() else float(per_row.max())
                        row["moec_ok"] = bool(off.sum() <= 0.05 * tokens if dtype == "bf16" else not off.any())
                        if tokens == 1:
                            # The roof fraction of a memory-bound step, with
                            # the weights evicted from the caches first (these
                            # layers' 19-88 MB partly fit a large L3).
                            measure_cold(args, row, roof, artifact, x_path, out_dir)
                else:
                    row["moec_error"] = moec_error
                # More rounds with the three interleaved: this VM's load comes
                # in bursts of seconds, which one block of runs can catch for
                # one framework alone. Each keeps its best median.
                for _ in range(args.rounds - 1):
                    with torch.inference_mode():
                        module.experts.config._experts_implementation = best
                        settle()
                        row["torch_s"] = min(row["torch_s"], timed(lambda: flat(x), n))
                    if "ort_s" in row:
                        settle()
                        row["ort_s"] = min(row["ort_s"],
                                           timed(lambda: session.run(None, ort_in), repeats["ort"]))
                    if "moec_s" in row:
                        settle()
                        row["moec_s"] = min(row["moec_s"],
                                            moe_run_median(args, artifact, x_path, out_dir,
                                                           repeats["moec"]))
                    if "moec_cold_s" in row:
                        # The cold median swings as much as the warm one.
                        measure_cold(args, row, roof, artifact, x_path, out_dir)
                row["moec_raised"] = raised
                add_roof(row, cfg, dtype, roof)
                rows.append(row)
                log(summary(row))
            if os.path.exists(artifact):
                os.remove(artifact)
            # The roof again after each configuration (about a second): on
            # this shared machine bandwidth and FLOP/s swing over minutes,
            # and a roof measured in a slow moment flatters every row (the
            # last run had rows above 100% with the roof taken at the start
            # and the end only). main() keeps the highest of each.
            raise_roof(roof, measure_roof(args))
        for dtype in DTYPES:  # kept until now for the bf16 rows' fallback
            if os.path.exists(os.path.join(work, f"{name}.{dtype}.onnx")):
                os.remove(os.path.join(work, f"{name}.{dtype}.onnx"))
    return rows


def measure_cold(args, row, roof, artifact, x_path, out_dir):
    """One cold median of a T=1 row (moec_cold_s keeps the best), paired
    with a read-bandwidth sample taken just before it: this VM's bandwidth
    swings by a quarter within minutes, so a step timed in a slow moment
    set against the run's best sample understates it, and one timed in a
    fast moment against a slow sample would overstate it. add_roof reports
    both the median of the paired fractions and the fraction of the run's
    best sample."""
    sample = measure_roof(args)
    raise_roof(roof, sample, quiet=True)
    cold = moe_run_median(args, artifact, x_path, out_dir, 20, cold=True)
    row["moec_cold_s"] = min(row.get("moec_cold_s", cold), cold)
    row.setdefault("moec_cold_pairs", []).append([cold, sample["read_bandwidth_bytes_per_s"]])


def raise_roof(roof, sample, quiet=False):
    """Keeps in `roof` the higher of each figure of `sample`."""
    if not quiet:
        log(f"roof: {sample}")
    for key in ("read_bandwidth_bytes_per_s", "peak_f32_flops", "peak_bf16_flops"):
        if sample.get(key) is not None:
            roof[key] = max(roof.get(key) or 0, sample[key])


def peak_flops(roof, dtype):
    """The FLOP/s roof of a row: with the avx512bf16 kernels (vdpbf16ps for
    bf16 prompts) and a measured bf16 peak, the bf16 rows' is that peak;
    everything else runs f32 FMAs."""
    if dtype == "bf16" and roof.get("bf16_kernels") and roof.get("peak_bf16_flops"):
        return roof["peak_bf16_flops"]
    return roof["peak_f32_flops"]


def add_roof(row, cfg, dtype, roof):
    """Bytes and FLOPs of the step, and moec's fraction of the roof."""
    elem = 2 if dtype == "bf16" else 4
    h, i, k, e, s = cfg["hidden"], cfg["inter"], cfg["k"], cfg["experts"], cfg["shared"]
    t = row["tokens"]
    experts_hit = min(e, t * k) if t == 1 else None
    flops = 2 * t * (k + s) * 3 * h * i + 2 * t * h * e
    row["flops"] = flops
    if "moec_s" in row:
        row["moec_flops_frac"] = flops / row["moec_s"] / peak_flops(roof, dtype)
        if experts_hit is not None and "moec_cold_s" in row:
            weight_bytes = (experts_hit + s) * 3 * h * i * elem + h * e * elem
            row["bytes"] = weight_bytes
            row["moec_bw_frac"] = weight_bytes / row["moec_cold_s"] / roof["read_bandwidth_bytes_per_s"]
            paired = [weight_bytes / cold / bw for cold, bw in row.get("moec_cold_pairs", [])]
            if paired:
                row["moec_bw_frac_paired"] = float(np.median(paired))


# Runs argv[1:] and prints, as its last stderr line, the wall seconds and
# the peak resident KiB of that process alone; exits with its status.
PEAK_RSS = """
import os, subprocess, sys, time
start = time.perf_counter()
job = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(job.pid, 0)
print(f"{time.perf_counter() - start:.3f} {usage.ru_maxrss}", file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


MODEL_CONFIG = dict(
    # A ~117M-parameter model of the DeepSeek-V3 architecture: MLA, one
    # dense layer then MoE layers with a shared expert and the grouped
    # sigmoid router.
    vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=4,
    first_k_dense_replace=1, n_routed_experts=32, n_shared_experts=1,
    moe_intermediate_size=256, num_experts_per_tok=4, n_group=4, topk_group=2,
    num_attention_heads=8, num_key_value_heads=8, q_lora_rank=256, kv_lora_rank=128,
    qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32, max_position_embeddings=4096,
    tie_word_embeddings=False, routed_scaling_factor=2.5, norm_topk_prob=True)
PROMPT_TOKENS = 128
DECODE_TOKENS = 64


def run_model_rows(args, roof):
    """Prefill and decode tokens/s of a whole model: moec (moe-run) against
    PyTorch running the transformers model with its KV cache."""
    import torch
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM
    torch.set_num_threads(roof["cores"])
    work = tempfile.mkdtemp(prefix="moe-bench-model-")
    ckpt = os.path.join(work, "ckpt")
    torch.manual_seed(7)
    config = DeepseekV3Config(**MODEL_CONFIG)
    model = DeepseekV3ForCausalLM(config).eval()
    with torch.no_grad():  # a visible selection bias, as trained models have
        for layer in model.model.layers[config.first_k_dense_replace:]:
            layer.mlp.gate.e_score_correction_bias.normal_(0.0, 0.01)
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(ckpt)
    log(f"model: {params / 1e6:.0f}M parameters, saved to {ckpt}")
    artifact = os.path.join(work, "model.moec")
    start = time.perf_counter()
    subprocess.run([args.moec, ckpt, "--target=cpu", "-o", artifact,
                    f"--max-seq-len={PROMPT_TOKENS + DECODE_TOKENS}"], check=True)
    compile_s = time.perf_counter() - start
    prompt = [int(v) for v in torch.randint(0, config.vocab_size, (PROMPT_TOKENS,), generator=torch.Generator().manual_seed(3))]
    rows = []
    ids = torch.tensor([prompt])
    best, torch_best = {}, {}
    # Rounds with the two interleaved, each keeping its best (see
    # run_layer_rows).
    for _ in range(args.rounds):
        settle()
        result = subprocess.run([args.moe_run, artifact, "--tokens", ",".join(map(str, prompt)),
                                 "--generate", str(DECODE_TOKENS), "--stats"],
                                capture_output=True, text=True, check=True)
        stats = result.stderr
        prefill = float(stats.split("prefill ")[1].split(" s (")[0].split(" in ")[1])
        decode = float(stats.split("decode ")[1].split(" s (")[0].split(" in ")[1])
        best["prefill"] = min(best.get("prefill", 1e9), prefill)
        best["decode"] = min(best.get("decode", 1e9), decode)
        moec_ids = [int(v) for v in result.stdout.split()]
        settle()
        with torch.inference_mode():
            start = time.perf_counter()
            out = model(input_ids=ids, use_cache=True)
            prefill = time.perf_counter() - start
            cache = out.past_key_values
            token = out.logits[0, -1].argmax()
            torch_ids = [int(token)]
            start = time.perf_counter()
            for _ in range(DECODE_TOKENS - 1):
                out = model(input_ids=token.view(1, 1), past_key_values=cache, use_cache=True)
                cache = out.past_key_values
                token = out.logits[0, -1].argmax()
                torch_ids.append(int(token))
            decode = time.perf_counter() - start
        torch_best["prefill"] = min(torch_best.get("prefill", 1e9), prefill)
        torch_best["decode"] = min(torch_best.get("decode", 1e9), decode)
    same = sum(a == b for a, b in zip(moec_ids, torch_ids))
    for phase, tokens in (("prefill", PROMPT_TOKENS), ("decode", DECODE_TOKENS - 1)):
        rows.append(dict(phase=phase, tokens=tokens, moec_tok_s=tokens / best[phase],
                         torch_tok_s=tokens / torch_best[phase]))
    weight_bytes = params * 4
    rows.append(dict(phase="decode bytes", moec_bw_frac=(DECODE_TOKENS - 1) / best["decode"]
                     * active_bytes(config) / roof["read_bandwidth_bytes_per_s"]))
    log(f"model: moec prefill {rows[0]['moec_tok_s']:.0f} tok/s, decode {rows[1]['moec_tok_s']:.1f} tok/s; "
        f"PyTorch {rows[0]['torch_tok_s']:.0f} / {rows[1]['torch_tok_s']:.1f}; "
        f"greedy ids agree on {same}/{len(moec_ids)}")
    import shutil
    shutil.rmtree(work)
    return dict(params=params, weight_bytes=weight_bytes, compile_s=compile_s,
                prompt=PROMPT_TOKENS, generated=DECODE_TOKENS, rows=rows,
                same_ids=same, total_ids=len(moec_ids))


def active_bytes(config):
    """f32 bytes one decode step must read: every weight except the
    embedding table and the experts not chosen (k routed of E)."""
    h, v = config.hidden_size, config.vocab_size
    moe_layers = config.num_hidden_layers - config.first_k_dense_replace
    expert = 3 * h * config.moe_intermediate_size
    dense_mlp = 3 * h * config.intermediate_size
    attn = (h * config.q_lora_rank + config.q_lora_rank * config.num_attention_heads
            * (config.qk_nope_head_dim + config.qk_rope_head_dim)
            + h * (config.kv_lora_rank + config.qk_rope_head_dim)
            + config.kv_lora_rank * config.num_attention_heads
            * (config.qk_nope_head_dim + config.v_head_dim)
            + config.num_attention_heads * config.v_head_dim * h)
    total = (config.num_hidden_layers * attn + config.first_k_dense_replace * dense_mlp
             + moe_layers * ((config.num_experts_per_tok + config.n_shared_experts) * expert
                             + h * config.n_routed_experts)
             + h * v)  # lm_head
    return 4 * total


def run_compile_row(args):
    """moec's compile time and peak memory on the full DeepSeek-V3 config
    (61 layers, 256 experts, 671B parameters) from a header-only bf16
    checkpoint: safetensors headers over sparse files, so no weight byte is
    stored or read."""
    import torch
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM
    work = tempfile.mkdtemp(prefix="moe-bench-v3-")
    config = DeepseekV3Config()  # the defaults are DeepSeek-V3's
    config.tie_word_embeddings = False
    with torch.device("meta"):
        model = DeepseekV3ForCausalLM(config)
    # The hub's layout: one tensor per expert projection (transformers
    # fuses them in memory and splits them again when saving).
    tensors = []
    for n, p in model.state_dict().items():
        shape = list(p.shape)
        if n.endswith("mlp.experts.gate_up_proj"):
            prefix, (e, two_i, h) = n[:-len("gate_up_proj")], shape
            for x in range(e):
                tensors += [(f"{prefix}{x}.gate_proj.weight", [two_i // 2, h]),
                            (f"{prefix}{x}.up_proj.weight", [two_i // 2, h])]
        elif n.endswith("mlp.experts.down_proj"):
            prefix, (e, h, i) = n[:-len("down_proj")], shape
            tensors += [(f"{prefix}{x}.down_proj.weight", [h, i]) for x in range(e)]
        else:
            tensors.append((n, shape))
    shard_bytes, shards, current, size = 10 << 30, [], [], 0
    for name, shape in tensors:
        nbytes = 2 * math.prod(shape)
        if current and size + nbytes > shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append((name, shape, nbytes))
        size += nbytes
    shards.append(current)
    weight_map = {}
    total = 0
    for i, shard in enumerate(shards):
        file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        header, offset = {}, 0
        for name, shape, nbytes in shard:
            header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
            weight_map[name] = file
        blob = json.dumps(header).encode()
        blob += b" " * (-len(blob) % 8)
        with open(os.path.join(work, file), "wb") as f:
            f.write(len(blob).to_bytes(8, "little"))
            f.write(blob)
            f.truncate(8 + len(blob) + offset)  # a hole: nothing is written
        total += offset
    with open(os.path.join(work, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f)
    config.dtype = "bfloat16"
    config.save_pretrained(work)
    params = total // 2
    log(f"DeepSeek-V3 header-only checkpoint: {len(tensors)} tensors, {params / 1e9:.0f}B parameters, "
        f"{len(shards)} sparse shards")
    artifact = os.path.join(work, "v3.moec")
    # The peak RSS comes from wait4 in a small interpreter that starts moec:
    # a child's peak includes what it had before exec, and a child of this
    # process (torch loaded) starts at ~700 MB. (/usr/bin/time did this
    # before; a fresh machine lacks it.)
    compile_job = subprocess.run(
        [sys.executable, "-S", "-c", PEAK_RSS, args.moec, work, "--target=cpu", "-o", artifact,
         "--max-seq-len=4096"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = compile_job.stderr.strip().splitlines()
    row = dict(tensors=len(tensors), params=params, layers=config.num_hidden_layers,
               experts=config.n_routed_experts)
    if compile_job.returncode != 0:
        row["error"] = stderr[-2] if len(stderr) > 1 else f"moec exited with {compile_job.returncode}"
    else:
        seconds, kib = stderr[-1].split()
        row.update(compile_s=float(seconds), peak_rss_bytes=int(kib) * 1024,
                   artifact_bytes=os.path.getsize(artifact))
    import shutil
    shutil.rmtree(work)
    log(f"DeepSeek-V3 compile: {row}")
    return row


def ms(seconds):
    return f"{seconds * 1e3:.3g}" if seconds is not None else "-"


def summary(row):
    parts = [f"{row['config']} {row['dtype']} T={row['tokens']}:"]
    for peer in ("moec", "ort", "torch"):
        if f"{peer}_s" in row:
            parts.append(f"{peer} {ms(row[peer + '_s'])} ms")
        elif f"{peer}_error" in row:
            parts.append(f"{peer} n/a")
    if "moec_rel_diff" in row:
        parts.append(f"moec vs torch {row['moec_rel_diff']:.1e}")
    return " ".join(parts)


def ratio(row, peer):
    if f"{peer}_s" in row and "moec_s" in row:
        return f"{row[peer + '_s'] / row['moec_s']:.2f}x"
    return "n/a"


def markdown(rows, roof, meta, model=None, compile_row=None):
    lines = [
        "# moec performance",
        "",
        "Written by `bench/run.sh` (do not edit by hand); the same numbers are in",
        "`docs/performance.json`. Every figure comes from one run on one machine:",
        "",
        f"- machine: {meta['cpu']}, {roof['cores']} cores used by every framework, "
        f"{meta['isa']} kernels; {meta['date']}",
        f"- roof measured in the same run (`moe-roofline`, at its start, after each layer "
        f"configuration and at its end; the highest "
        f"of each): read bandwidth "
        f"{roof['read_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s, peak f32 "
        f"{roof['peak_f32_flops'] / 1e9:.0f} GFLOP/s ({roof['vector_bits']}-bit FMA); "
        + (f"peak bf16 {peak_flops(roof, 'bf16') / 1e9:.0f} GFLOP/s (vdpbf16ps, which moec's "
           "kernels use for bf16 products of 32 or more rows: the bf16 rows' roof, a "
           "conservative one where fewer rows meet each expert)"
           if peak_flops(roof, "bf16") != roof["peak_f32_flops"] else
           "bf16 rows run f32 FMAs here (no AVX512_BF16 kernels), so their roof is the f32 one"),
        f"- peers: {meta['peers']}",
        "",
        "## MoE layer",
        "",
        "Time of one layer forward (router + experts + combine) on T tokens, "
        "same weights and input for the three: the best of "
        f"{meta['rounds']} medians, the frameworks measured in turn in each round (a median "
        "over about 0.4 s of runs, at least 3, or one run where a run takes a second or more: "
        "PyTorch's slowest rows). Ratios are peer time / moec time "
        "(above 1: moec is faster). `moec vs torch` is max|moec - PyTorch| / max|PyTorch| "
        f"(tolerance {TOLERANCE['f32']:g} f32, {TOLERANCE['bf16']:g} bf16) over the tokens "
        "within it; bf16 router logits tie often (8 mantissa bits, up to 64 experts) and "
        "PyTorch's topk breaks ties in no specified order, so a few tokens may run other "
        "experts: they are counted (`k/T tokens differ`), and up to 5% pass. "
        "`roof` is moec's fraction of the machine's read bandwidth at T=1 (bytes of the "
        "weights the step must read, timed with the caches flushed before each run: "
        "`moe-run --cold`; the times in the table are warm, like the peers'): each round's "
        "cold median against a bandwidth sample taken just before it, the median of the "
        "rounds' fractions, and in brackets the best cold median against the run's best "
        "sample (this machine's bandwidth moves by a quarter within minutes; the bracketed "
        "figure is the conservative one). Otherwise `roof` is the fraction of peak FLOP/s (f32, or "
        "bf16 for bf16 rows where the line above gives a bf16 peak).",
        "",
        "| layer | weights | T | moec ms | onnxruntime ms | PyTorch ms | ORT / moec | PyTorch / moec | roof | moec vs torch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        roof_text = "-"
        if "moec_bw_frac_paired" in r:
            roof_text = (f"{100 * r['moec_bw_frac_paired']:.0f}% BW "
                         f"({100 * r['moec_bw_frac']:.0f}% of best)")
        elif "moec_bw_frac" in r:
            roof_text = f"{100 * r['moec_bw_frac']:.0f}% BW"
        elif "moec_flops_frac" in r:
            roof_text = f"{100 * r['moec_flops_frac']:.0f}% FLOP"
        check = "-"
        if "moec_rel_diff" in r:
            check = f"{r['moec_rel_diff']:.1e}"
            if r.get("moec_rows_differing"):
                check += f" ({r['moec_rows_differing']}/{r['tokens']} tokens differ)"
            check += "" if r.get("moec_ok") else " FAIL"
        ort_ms = ms(r.get("ort_s")) if "ort_s" in r else "n/a"
        if "ort_s" in r and r.get("ort_note"):
            ort_ms += " (f32)"
        lines.append(
            f"| {r['config']} | {r['dtype']} | {r['tokens']} | {ms(r.get('moec_s'))} | {ort_ms} | "
            f"{ms(r.get('torch_s'))} | {ratio(r, 'ort')} | {ratio(r, 'torch')} | {roof_text} | {check} |")
    # In the table's order, each note once.
    notes = []
    for r in rows:
        for note in (f"- {r['config']} {r['dtype']}: onnxruntime ran {r['ort_note']}"
                     if r.get("ort_note") else None,
                     f"- {r['config']} {r['dtype']} T={r['tokens']}: onnxruntime: {r['ort_error']}"
                     if r.get("ort_error") else None,
                     f"- {r['config']} {r['dtype']} T={r['tokens']}: moec: {r['moec_error']}"
                     if r.get("moec_error") else None):
            if note and note not in notes:
                notes.append(note)
    if notes:
        lines += ["", "Notes (rows marked n/a or (f32)):", ""] + notes
    lines += [
        "",
        "Layers (CPU-sized versions of the reference shapes): mixtral: hidden 1024, 8 experts, "
        "intermediate 3584, top-2, softmax; qwen3: hidden 1024, 64 experts, intermediate 384, "
        "top-8, softmax, renormalised; deepseek: hidden 1024, 64 routed + 1 shared, "
        "intermediate 512, top-6, sigmoid + selection bias, 8 groups keep 4, scaling 2.5. "
        "onnxruntime and moec run com.microsoft.MoE for mixtral and qwen3 and the "
        "TorchScript-exported graph for deepseek (com.microsoft.MoE has no grouped "
        "sigmoid router); moec raises both to its moe ops. PyTorch runs the transformers "
        "modules (MixtralSparseMoeBlock, Qwen3MoeSparseMoeBlock, DeepseekV3MoE) in eager "
        "mode under inference_mode, each row with the faster of transformers' experts "
        "implementations grouped_mm (its default) and eager (both in the JSON). "
        "Weights are normal(0, 0.02) rounded to bf16 values in both weight types, so the "
        "f32 layer is the bf16 layer widened: what onnxruntime runs for the bf16 rows.",
        "",
    ]
    if model:
        c = MODEL_CONFIG
        lines += [
            "## Whole model",
            "",
            f"A {model['params'] / 1e6:.0f}M-parameter model of the DeepSeek-V3 architecture with "
            f"random weights (f32; {c['num_hidden_layers']} layers, the first dense, MLA, "
            f"{c['n_routed_experts']} routed experts + {c['n_shared_experts']} shared, top-"
            f"{c['num_experts_per_tok']}, {c['n_group']} groups keep {c['topk_group']}, vocabulary "
            f"{c['vocab_size']}): a {model['prompt']}-token prompt, then {model['generated']} greedy "
            "tokens. moec: `moec CKPT --target=cpu` and `moe-run --stats`; PyTorch: the "
            "transformers model (DeepseekV3ForCausalLM, eager) with its KV cache. Best of "
            f"{meta['rounds']} rounds, the two in turn. "
            f"Greedy ids agree on {model['same_ids']} of {model['total_ids']}.",
            "",
            "| phase | tokens | moec tok/s | PyTorch tok/s | moec / PyTorch |",
            "|---|---|---|---|---|",
        ]
        for r in model["rows"]:
            if "tokens" in r:
                lines.append(f"| {r['phase']} | {r['tokens']} | {r['moec_tok_s']:.1f} | "
                             f"{r['torch_tok_s']:.1f} | {r['moec_tok_s'] / r['torch_tok_s']:.2f}x |")
        bw = [r for r in model["rows"] if "moec_bw_frac" in r]
        if bw:
            lines += ["", f"moec's decode reads the active weights (all but the embedding table "
                      f"and the unchosen experts) at {100 * bw[0]['moec_bw_frac']:.0f}% of the "
                      "measured read bandwidth.", ""]
    if compile_row:
        lines += ["## Compile cost of a full-size model", ""]
        if "error" in compile_row:
            lines.append(f"moec on the DeepSeek-V3 config failed: {compile_row['error']}")
        else:
            lines.append(
                f"`moec CKPT --target=cpu` on the DeepSeek-V3 config ({compile_row['layers']} layers, "
                f"{compile_row['experts']} experts, {compile_row['params'] / 1e9:.0f}B parameters, "
                f"{compile_row['tensors']} tensors) from a header-only bf16 checkpoint (sparse "
                f"shards): {compile_row['compile_s']:.1f} s, peak resident memory "
                f"{compile_row['peak_rss_bytes'] / 2**20:.0f} MiB, artifact "
                f"{compile_row['artifact_bytes'] / 2**20:.1f} MiB (the weights stay in the checkpoint).")
        lines.append("")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", required=True, help="moec build folder (bin/moec, bin/moe-run, bin/moe-roofline)")
    p.add_argument("--out", required=True, help="Markdown output (docs/performance.md)")
    p.add_argument("--json", required=True, help="JSON output (docs/performance.json)")
    p.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS),
                   help="MoE layer configurations (none: skip the layer rows)")
    p.add_argument("--skip-model", action="store_true", help="skip the whole-model rows")
    p.add_argument("--skip-compile", action="store_true", help="skip the DeepSeek-V3 compile row")
    p.add_argument("--dtypes", nargs="+", default=DTYPES, choices=DTYPES)
    p.add_argument("--tokens", nargs="+", type=int, default=TOKENS)
    p.add_argument("--rounds", type=int, default=3,
                   help="timing rounds per row, the frameworks interleaved; each keeps its "
                        "best median (default 3)")
    args = p.parse_args()
    global np
    import numpy
    np = numpy
    args.moec = os.path.join(args.build, "bin", "moec")
    args.moe_run = os.path.join(args.build, "bin", "moe-run")
    log("measuring the machine's roof")
    roof = measure_roof(args)
    log(f"roof: {roof}")
    import onnxruntime
    import torch
    import transformers
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    isa = subprocess.run([args.moe_run, "--version"], capture_output=True, text=True).stdout.strip()
    roof["bf16_kernels"] = "CPU kernels: avx512bf16," in isa
    meta = dict(cpu=cpu, date=datetime.date.today().isoformat(), isa=isa, rounds=args.rounds,
                peers=f"onnxruntime {onnxruntime.__version__} (CPUExecutionProvider), "
                      f"PyTorch {torch.__version__} eager with transformers {transformers.__version__}")
    rows = run_layer_rows(args, roof) if args.configs else []
    model_bw = roof["read_bandwidth_bytes_per_s"]  # what run_model_rows uses
    model = None if args.skip_model else run_model_rows(args, roof)
    # The roof again at the end: on a shared machine one measurement can
    # catch a busy moment, and a low roof would flatter every row. Each
    # figure keeps the highest of all measurements, and the fractions are
    # recomputed.
    raise_roof(roof, measure_roof(args))
    for row in rows:
        add_roof(row, CONFIGS[row["config"]], row["dtype"], roof)
    for row in (model or {}).get("rows", []):
        if "moec_bw_frac" in row:
            row["moec_bw_frac"] *= model_bw / roof["read_bandwidth_bytes_per_s"]
    compile_row = None if args.skip_compile else run_compile_row(args)
    # Both files are written whole or not at all.
    text = json.dumps(dict(meta=meta, roof=roof, moe_layer=rows, model=model,
                           compile=compile_row), indent=1)
    page = markdown(rows, roof, meta, model, compile_row)
    for path, content in ((args.json, text), (args.out, page)):
        with open(path + ".tmp", "w") as f:
            f.write(content)
        os.replace(path + ".tmp", path)
    log(f"wrote {args.out} and {args.json}")
    failed = [r for r in rows if "moec_rel_diff" in r and not r["moec_ok"]]
    if failed:
        log(f"{len(failed)} rows where moec's output is off PyTorch's beyond tolerance")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
