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

It also measures the machine's roof (bench/roofline.cpp: read bandwidth and
peak f32 FLOP/s on all cores) and reports each moec row against it: T=1 as
the fraction of read bandwidth (bytes of the weights the step must read /
time), T=1024 as the fraction of peak FLOP/s.

Writes docs/performance.md (Markdown) and docs/performance.json.
"""

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

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
TORCH_EXPERTS = ["grouped_mm", "batched_mm", "eager"]


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
    H] weights: 25 GB at T = 1024.)"""
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
    torch.onnx.export(Flat(module).wrapped, (x,), path, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "T"}, "y": {0: "T"}}, opset_version=17,
                      dynamo=False)


def write_npy(path, array):
    """bf16 arrays go to moe-run as raw '<u2' words."""
    np.save(path, array)


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def repeats_for(seconds):
    return int(min(200, max(3, math.ceil(1.5 / max(seconds, 1e-6)))))


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
            session, ort_error = None, None
            try:
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
            except Exception as e:  # noqa: BLE001 - reported in the table
                ort_error = str(e).strip().splitlines()[0][:160]
            for tokens in args.tokens:
                torch.manual_seed(tokens)
                x = torch.randn(tokens, cfg["hidden"])
                if dtype == "bf16":
                    x = x.to(torch.bfloat16)
                # PyTorch's best: transformers' experts implementations
                # (grouped_mm is its default where it dispatches).
                torch_times = {}
                with torch.inference_mode():
                    for impl in TORCH_EXPERTS:
                        module.experts.config._experts_implementation = impl
                        try:
                            ref = flat(x)
                        except RuntimeError as e:  # batched_mm's gathered weights
                            log(f"PyTorch {impl}: {str(e).splitlines()[0][:120]}")
                            continue
                        n = repeats_for(timed(lambda: flat(x), 1))
                        torch_times[impl] = timed(lambda: flat(x), n)
                best = min(torch_times, key=torch_times.get)
                torch_s = torch_times[best]
                ref32 = ref.float().numpy()
                row = dict(config=name, dtype=dtype, tokens=tokens, onnx_form=form,
                           torch_s=torch_s, torch_impl=best, torch_times=torch_times,
                           repeats=n)
                feed = x.view(torch.int16).numpy().view(np.uint16) if dtype == "bf16" else x.numpy()
                if session is not None and ort_error is None:
                    try:
                        ort_in = {"x": x.float().numpy()} if dtype == "f32" else None
                        if dtype == "bf16":
                            raise RuntimeError("onnxruntime's Python API has no bf16 numpy input")
                        session.run(None, ort_in)
                        row["ort_s"] = timed(lambda: session.run(None, ort_in), n)
                        out = session.run(None, ort_in)[0]
                        row["ort_rel_diff"] = float(np.abs(out - ref32).max() / np.abs(ref32).max())
                    except Exception as e:  # noqa: BLE001
                        row["ort_error"] = str(e).strip().splitlines()[0][:160]
                else:
                    row["ort_error"] = ort_error
                if moec_error is None:
                    x_path = os.path.join(work, "x.npy")
                    write_npy(x_path, feed)
                    out_dir = os.path.join(work, "out")
                    result = subprocess.run([args.moe_run, artifact, "--input", f"x={x_path}",
                                             "--output-dir", out_dir, "--repeat", str(n)],
                                            capture_output=True, text=True)
                    if result.returncode != 0:
                        row["moec_error"] = result.stderr.strip().splitlines()[-1]
                    else:
                        line = [l for l in result.stderr.splitlines() if l.startswith("repeat:")][0]
                        row["moec_s"] = float(line.split("median ")[1].split(" s")[0])
                        out = np.load(os.path.join(out_dir, "y.npy"))
                        if dtype == "bf16":
                            out = (out.astype(np.uint32) << 16).view(np.float32)
                        row["moec_rel_diff"] = float(np.abs(out - ref32).max() / np.abs(ref32).max())
                        row["moec_ok"] = row["moec_rel_diff"] <= TOLERANCE[dtype]
                else:
                    row["moec_error"] = moec_error
                row["moec_raised"] = raised
                add_roof(row, cfg, dtype, roof)
                rows.append(row)
                log(summary(row))
            if os.path.exists(artifact):
                os.remove(artifact)
            os.remove(onnx_path)
    return rows


def add_roof(row, cfg, dtype, roof):
    """Bytes and FLOPs of the step, and moec's fraction of the roof."""
    elem = 2 if dtype == "bf16" else 4
    h, i, k, e, s = cfg["hidden"], cfg["inter"], cfg["k"], cfg["experts"], cfg["shared"]
    t = row["tokens"]
    experts_hit = min(e, t * k) if t == 1 else None
    flops = 2 * t * (k + s) * 3 * h * i + 2 * t * h * e
    row["flops"] = flops
    if "moec_s" in row:
        row["moec_flops_frac"] = flops / row["moec_s"] / roof["peak_f32_flops"]
        if experts_hit is not None:
            weight_bytes = (experts_hit + s) * 3 * h * i * elem + h * e * elem
            row["bytes"] = weight_bytes
            row["moec_bw_frac"] = weight_bytes / row["moec_s"] / roof["read_bandwidth_bytes_per_s"]


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


def markdown(rows, roof, meta):
    lines = [
        "# moec performance",
        "",
        "Written by `bench/run.sh` (do not edit by hand); the same numbers are in",
        "`docs/performance.json`. Every figure comes from one run on one machine:",
        "",
        f"- machine: {meta['cpu']}, {roof['cores']} cores used by every framework, "
        f"{meta['isa']} kernels; {meta['date']}",
        f"- roof measured in the same run (`moe-roofline`): read bandwidth "
        f"{roof['read_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s, peak f32 "
        f"{roof['peak_f32_flops'] / 1e9:.0f} GFLOP/s ({roof['vector_bits']}-bit FMA); "
        "bf16 has no faster path on this CPU (no AVX-512 BF16), so its roof is the f32 one",
        f"- peers: {meta['peers']}",
        "",
        "## MoE layer",
        "",
        "Median time of one layer forward (router + experts + combine) on T tokens, "
        "same weights and input for the three. Ratios are peer time / moec time "
        "(above 1: moec is faster). `moec vs torch` is max|moec - PyTorch| / max|PyTorch| "
        f"(tolerance {TOLERANCE['f32']:g} f32, {TOLERANCE['bf16']:g} bf16). "
        "`roof` is moec's fraction of the machine's read bandwidth at T=1 (bytes of the "
        "weights the step must read) and of its peak f32 FLOP/s otherwise.",
        "",
        "| layer | weights | T | moec ms | onnxruntime ms | PyTorch ms | ORT / moec | PyTorch / moec | roof | moec vs torch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        roof_text = "-"
        if "moec_bw_frac" in r:
            roof_text = f"{100 * r['moec_bw_frac']:.0f}% BW"
        elif "moec_flops_frac" in r:
            roof_text = f"{100 * r['moec_flops_frac']:.0f}% FLOP"
        check = "-"
        if "moec_rel_diff" in r:
            check = f"{r['moec_rel_diff']:.1e}" + ("" if r.get("moec_ok") else " FAIL")
        ort_ms = ms(r.get("ort_s")) if "ort_s" in r else "n/a"
        lines.append(
            f"| {r['config']} | {r['dtype']} | {r['tokens']} | {ms(r.get('moec_s'))} | {ort_ms} | "
            f"{ms(r.get('torch_s'))} | {ratio(r, 'ort')} | {ratio(r, 'torch')} | {roof_text} | {check} |")
    notes = sorted({f"- {r['config']} {r['dtype']}: onnxruntime: {r['ort_error']}"
                    for r in rows if r.get("ort_error")} |
                   {f"- {r['config']} {r['dtype']} T={r['tokens']}: moec: {r['moec_error']}"
                    for r in rows if r.get("moec_error")})
    if notes:
        lines += ["", "Not measured:", ""] + notes
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
        "mode under inference_mode, each row with the fastest of transformers' experts "
        "implementations (grouped_mm, batched_mm, eager; in the JSON).",
        "",
    ]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", required=True, help="moec build folder (bin/moec, bin/moe-run, bin/moe-roofline)")
    p.add_argument("--out", required=True, help="Markdown output (docs/performance.md)")
    p.add_argument("--json", required=True, help="JSON output (docs/performance.json)")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--dtypes", nargs="+", default=DTYPES, choices=DTYPES)
    p.add_argument("--tokens", nargs="+", type=int, default=TOKENS)
    args = p.parse_args()
    args.moec = os.path.join(args.build, "bin", "moec")
    args.moe_run = os.path.join(args.build, "bin", "moe-run")
    log("measuring the machine's roof")
    roof = json.loads(subprocess.run([os.path.join(args.build, "bin", "moe-roofline")],
                                     capture_output=True, text=True, check=True).stdout)
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
    meta = dict(cpu=cpu, date=datetime.date.today().isoformat(), isa=isa,
                peers=f"onnxruntime {onnxruntime.__version__} (CPUExecutionProvider), "
                      f"PyTorch {torch.__version__} eager with transformers {transformers.__version__}")
    rows = run_layer_rows(args, roof)
    with open(args.json, "w") as f:
        json.dump(dict(meta=meta, roof=roof, moe_layer=rows), f, indent=1)
    with open(args.out, "w") as f:
        f.write(markdown(rows, roof, meta))
    log(f"wrote {args.out} and {args.json}")
    failed = [r for r in rows if "moec_rel_diff" in r and not r["moec_ok"]]
    if failed:
        log(f"{len(failed)} rows where moec's output is off PyTorch's beyond tolerance")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
