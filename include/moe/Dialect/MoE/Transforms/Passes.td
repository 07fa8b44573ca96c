//===- Passes.td - moe dialect passes ----------------------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
#define MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MoECheckWeightsPass : Pass<"moe-check-weights", "ModuleOp"> {
  let summary = "Check that every weight name has one type across the module";
  let description = [{
    `moe.weight` and `moe.stacked_weight` ops refer to tensors stored
    outside the IR by name. Each op
    verifies on its own, but only the module can tell that two references
    to the same name disagree on shape or element type, which would make
    the artifact writer bind one tensor to two layouts. This pass reports
    each conflicting reference, with a note at the first one, and fails.

    With `list-weights`, it also prints one line per distinct weight
    (`name: type`) in first-use order to stderr, the manifest the artifact
    writer and the runtime agree on.

    Example of a conflict it rejects:

    ```mlir
    %a = moe.weight "w" : tensor<4x8xf32>
    %b = moe.weight "w" : tensor<8x4xf32>  // error: 'w' used with two types
    ```
  }];
  let options = [
    Option<"listWeights", "list-weights", "bool", /*default=*/"false",
           "Print the weight manifest (name: type) to stderr">
  ];
}

def MoELowerToLinalgPass : Pass<"moe-lower-to-linalg", "ModuleOp"> {
  let summary = "Lower moe ops to linalg, tensor, scf, arith and math";
  let description = [{
    Rewrites every moe op except the weight references into upstream
    dialects on tensors. This lowering is the dialect's reference
    semantics: straightforward loops and linalg ops that compute exactly
    what each op's description says (f32 router logits, f32 softmax and
    RMS statistics, ties to the lower expert id, `-inf` masking of dropped
    groups), with no attempt at speed. Fused and tiled lowerings must agree
    with it.

    Independent work is written as such, so that the CUDA target can give
    it threads: elementwise and GEMM steps are linalg ops, and the loops
    over a token's routing or a query head's attention are `scf.forall`
    whose iterations each write their own row; the reductions inside an
    iteration stay serial `scf.for` loops. `moe.grouped_experts` keeps its
    tiled grouped-GEMM form for more than `gemv_max_tokens` tokens unless
    `grouped-gemm=false`, which the CUDA target sets: there the gather
    form, one thread per (token, choice, intermediate) activation and per
    (token, hidden) output, runs every token count. It also sets
    `staged-mla`: `moe.mla_absorbed` then computes each stage (absorbed
    queries, scores over the cache, softmax maximum and sum, latent sums,
    output) as a tensor of independent elements rather than one iteration
    per query head, so that a decode step has tens of thousands of threads
    instead of one per head; an `scf.if` falls back to the per-head form
    when the materialised scores ([B, S, N, longest end]) would exceed
    2^26 floats.

    Example:

    ```mlir
    %ids, %w = moe.route %h, %gate {...}
    // becomes a linalg.matmul for the logits, then
    %r:2 = scf.forall (%t) in (%tokens) shared_outs(%i = %ids0, %v = %w0) {
      ... // the token's top-k: serial loops over the experts
      scf.forall.in_parallel {
        tensor.parallel_insert_slice %row into %i[%t, 0] [1, 2] [1, 1] ...
      }
    }
    ```
  }];
  let options = [
    Option<"groupedGEMM", "grouped-gemm", "bool", /*default=*/"true",
           "Lower moe.grouped_experts past gemv_max_tokens tokens to tiled "
           "grouped GEMMs (false: the gather form at every token count)">,
    Option<"stagedMLA", "staged-mla", "bool", /*default=*/"false",
           "Lower moe.mla_absorbed in stages of independent elements "
           "(absorbed queries, scores, softmax statistics, latent sums, "
           "output) instead of one iteration per query head, when the "
           "scores fit in 2^26 floats">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect", "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

def MoEUseRuntimeKernelsPass : Pass<"moe-use-runtime-kernels", "ModuleOp"> {
  let summary = "Call the runtime's CPU kernels for experts, projections and routing";
  let description = [{
    Replaces `moe.experts`, `moe.grouped_experts`, `moe.linear`,
    `moe.route` and `moe.fused_route` by calls to the runtime's kernels
    (`moe/Runtime/moert_kernels.h`): multi-threaded, vectorised for the CPU
    the artifact runs on (AVX-512, AVX2, or portable code, chosen at load),
    reading bf16/f16 weights in place. Each tensor operand becomes a
    read-only buffer (`bufferization.to_buffer`) cast to a fully dynamic
    strided memref, each result a fresh `memref.alloc` that the kernel
    fills and `bufferization.to_tensor` returns; the callee is declared
    with `llvm.emit_c_interface`. Ops with element types no kernel covers
    (mixed weight types, f64) stay for `-moe-lower-to-linalg`.

    moec runs it at -O1 and -O2 (`--cpu-kernels=reference` turns it off);
    -O0 keeps the reference lowering, which the kernels are tested against.

    Example:

    ```mlir
    %y = moe.linear %x, %w : (tensor<?x64xf32>, tensor<32x64xf32>)
        -> tensor<?x32xf32>
    // becomes
    %xb = bufferization.to_buffer %x read_only : tensor<?x64xf32>
        to memref<?x64xf32, strided<[?, ?], offset: ?>>
    ...
    %out = memref.alloc(%t) : memref<?x32xf32>
    func.call @moert_linear_f32_f32(...) : (...) -> ()
    %y = bufferization.to_tensor %out restrict writable : ...
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::func::FuncDialect", "::mlir::memref::MemRefDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

def MoEExternalizeWeightsPass : Pass<"moe-externalize-weights", "ModuleOp"> {
  let summary = "Turn weight references into external memref globals";
  let description = [{
    Replaces each `moe.weight` and `moe.stacked_weight` by a read-only
    tensor view of an external `memref.global` declaration, so that the
    compiled code reads weights from memory the runtime binds at load time
    (the mapped checkpoint; stacked experts gathered once). Symbol names are
    `moe::getWeightSymbol` of the referenced tensor names; the module's
    `moe.weights` attribute maps each symbol to its tensor names.
  }];
  let dependentDialects = [
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::memref::MemRefDialect"
  ];
}

//===----------------------------------------------------------------------===//
// Optimisations (moec -O1 and -O2)
//===----------------------------------------------------------------------===//

def MoEExpandMathPass : Pass<"moe-expand-math"> {
  let summary = "Polynomial forms of math ops LLVM has no intrinsic for";
  let description = [{
    `math.erf` and `math.erfc` (from ONNX Erf, and GELU as exporters write
    it) have no LLVM intrinsic, so the CPU code generator cannot translate
    them. This pass rewrites them with MLIR's polynomial approximations
    (`populatePolynomialApproximateErfPattern` and the erfc variant), so
    compiled code needs no libm and computes the same on every host. f32
    only, as those patterns are; other float types are extended to f32
    around the op.

    Example:

    ```mlir
    %y = math.erf %x : f32
    // becomes a rational polynomial in %x built from arith ops
    ```
  }];
  let options = [
    ListOption<"ops", "ops", "std::string",
               "The math ops to expand (default: erf, erfc). The CUDA "
               "target expands every transcendental it uses in device "
               "code, so that the PTX needs no libdevice">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::vector::VectorDialect"];
}

def MoEFuseRoutingPass : Pass<"moe-fuse-routing", "ModuleOp"> {
  let summary = "Fuse the router into one kernel that also sorts tokens by expert";
  let description = [{
    Rewrites each `moe.route` that feeds a `moe.experts` into
    `moe.fused_route`: the router GEMV, scoring, group selection, top-k,
    renormalisation and scaling run as one kernel per token, which also
    produces the expert-sorted permutation of the routed (token, slot)
    pairs (per-expert offsets, each segment padded to `tile` rows) that the
    grouped expert GEMMs of `-moe-fuse-experts` consume. The permutation has
    a size fixed by the token count, so the kernel allocates nothing
    dynamically and nothing returns to the host between routing and the
    experts.

    A `moe.route` without a `moe.experts` user is left alone: nothing would
    read the permutation.

    Example:

    ```mlir
    %ids, %w = moe.route %x, %g {top_k = 2 : i64, score = #moe.score<softmax>}
        : (tensor<?x64xf32>, tensor<8x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
    // becomes
    %ids, %w, %offsets, %slots = moe.fused_route %x, %g
        {top_k = 2 : i64, score = #moe.score<softmax>, tile = 16 : i64}
        : (tensor<?x64xf32>, tensor<8x64xf32>)
        -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>, tensor<?xi32>)
    ```
  }];
  let options = [
    Option<"tile", "tile", "int64_t", /*default=*/"16",
           "Rows per grouped-GEMM tile; each expert's segment of the "
           "permutation is padded to a multiple of it">
  ];
}

def MoEFuseExpertsPass : Pass<"moe-fuse-experts", "ModuleOp"> {
  let summary = "Run routed and shared experts as fused grouped GEMMs";
  let description = [{
    Rewrites each `moe.experts` whose routing comes from a
    `moe.fused_route` into `moe.grouped_experts` over that op's
    permutation. Its lowering runs, for more than `gemv-max-tokens` tokens,
    one grouped GEMM for the gate and up projections with the SwiGLU in its
    epilogue and one for the down projection with the routing-weight
    scaling and the scatter-add combine in its epilogue; the shared expert
    (sigmoid-gated for Qwen2-MoE) is one more, always-selected group of the
    same GEMMs. For at most `gemv-max-tokens` tokens (decode), it gathers
    each token's experts and runs GEMVs instead. The choice is made at run
    time, so one layer function serves prefill and decode.

    A `moe.experts` fed by a plain `moe.route` (or by anything else) is left
    alone: there is no permutation to group by. Run `-moe-fuse-routing`
    first.
  }];
  let options = [
    Option<"gemvMaxTokens", "gemv-max-tokens", "int64_t", /*default=*/"4",
           "Largest token count that takes the gather-GEMV path">
  ];
}

def MoEAbsorbMLAPass : Pass<"moe-absorb-mla", "ModuleOp"> {
  let summary = "Use the weight-absorbed latent attention where it is cheaper";
  let description = [{
    Rewrites `moe.mla` so that steps with few new tokens (decode) run
    `moe.mla_absorbed` and long prefills keep the naive form. The absorbed
    form folds `W_UK` into the query and applies `W_UV` after attention, so
    it never expands the latent cache; the naive form expands every cached
    latent once, which pays off when many queries share it. Per step of
    `S` new tokens over `L` cached rows (N heads, R = kv_lora_rank, Dn, Dr,
    Dv the head dims), counting multiply-adds:

    ```
    naive     = L*N*R*(Dn+Dv) + S*L*N*(Dn+Dr+Dv)
    absorbed  = S*N*R*(Dn+Dv) + S*L*N*(2R+Dr)
    ```

    For `L >= S` the absorbed form is cheaper while
    `S < R*(Dn+Dv) / (2R - Dn - Dv)` (always, when the denominator is not
    positive); for DeepSeek-V3 that is `S < 170`. With a static `S` the pass
    picks one form; with a dynamic `S` it emits both behind an `scf.if` on
    `S`. `W_UK` and `W_UV` are the per-head row blocks of `kv_b_weight`,
    taken as views (no copy): absorbing needs no new weights. Folding them
    further into `q_b_proj` and `o_proj` ahead of time would multiply those
    weights' size by `R / Dn` (4 for DeepSeek-V3), so the pass does not.
    `max-absorbed-tokens` overrides the threshold (-1: the cost model).
  }];
  let options = [
    Option<"maxAbsorbedTokens", "max-absorbed-tokens", "int64_t",
           /*default=*/"-1",
           "Largest S that runs the absorbed form (-1: from the cost model)">
  ];
  let dependentDialects = ["::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect"];
}

def MoEFuseNormRopeResidualPass
    : Pass<"moe-fuse-norm-rope-residual", "ModuleOp"> {
  let summary = "Fuse RMSNorm, RoPE and residual adds into their neighbours";
  let description = [{
    Folds the memory-bound elementwise steps of a decoder layer into the
    kernels next to them, so that their results are never stored:

    - `moe.rms_norm` whose every user (through collapses that keep the
      normalised dimension) is a `moe.linear` becomes each projection's
      norm prologue. A norm that routing or experts also read stays.
    - `moe.rope` pairs on the query and key of `moe.attention`, or on
      `q_pe` and `k_pe` of `moe.mla`/`moe.mla_absorbed` (same positions,
      style and table, whole heads), become the attention's rope prologue:
      keys are rotated on their way into the cache.
    - `arith.addf` of a value and a `moe.linear` result (possibly through
      an `expand_shape`) becomes the projection's residual epilogue.

    Each rewrite keeps every rounding step, so results are bit-identical.

    Example:

    ```mlir
    %n = moe.rms_norm %h, %w eps(1.0e-06) : tensor<?x64xf32>, tensor<64xf32>
    %q = moe.linear %n, %wq : (tensor<?x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
    // becomes
    %q = moe.linear %h, %wq norm(%w) {norm_eps = 1.0e-06 : f32}
        : (tensor<?x64xf32>, tensor<64x64xf32>, tensor<64xf32>) -> tensor<?x64xf32>
    ```
  }];
  let dependentDialects = ["::mlir::tensor::TensorDialect"];
}

//===----------------------------------------------------------------------===//
// GPU code generation (moec --target=cuda)
//===----------------------------------------------------------------------===//

def MoEGPUSplitReductionsPass
    : Pass<"moe-gpu-split-reductions", "ModuleOp"> {
  let summary = "Spread the long reductions of parallel loops over lanes";
  let description = [{
    Prepares the bufferized program for `-moe-gpu-launch-loops`, which
    gives each iteration of a parallel loop one GPU thread. A matrix-vector
    product is a parallel loop over outputs whose body reduces a long row
    in a serial loop; one thread per output leaves a decode step with few
    threads, and neighbouring threads read elements a row apart.

    For each parallel loop that `-moe-gpu-launch-loops` would launch on its
    own, the pass first rewrites a reduction that accumulates in memory
    (`%c = load %C[%i]; store %c + %x, %C[%i]` in every iteration of an
    `scf.for`, what linalg's loops make of a matmul) as one that
    accumulates in an `iter_args` value. It then splits each `scf.for` at
    the top level of the body that sums one f32 value with `arith.addf`,
    reads but does not write memory, and runs at least `min-trip-count`
    iterations (or a loop that sums such a reduction's result times a
    factor, as the experts' down projection sums each chosen expert's dot
    product times its routing weight: the lanes share out the inner
    reduction, and each lane runs the outer loop), into two parallel
    loops:

    - a new loop with `lanes` iterations per output, lane fastest: lane l
      sums iterations l, l + lanes, ... into a buffer of partial sums
      (`memref<outputs x reductions x lanes x f32>`), so that neighbouring
      threads read neighbouring elements; each lane's loop is unrolled
      `unroll` times, so that a thread has several loads in flight;
    - the original loop, where each reduction becomes the sum of its
      output's partial sums, added to the reduction's initial value in lane
      order.

    The ops before the last reduction in the body must only read memory
    (they run in both loops). The sum's order changes, so results change
    by rounding. When the number of outputs is only known at run time, an
    `scf.if` runs the split form if the partial sums fit in `max-partials`
    floats and the original loop otherwise: a prompt's projections have
    threads enough, and their partial sums would cost memory. Neither loop
    needs its threads to cooperate, so `--target=cuda-on-host` runs them
    as host loops like any other.

    Example (`lanes=32`):

    ```mlir
    scf.parallel (%n) = (%c0) to (%c4096) step (%c1) {
      %r = scf.for %k = %c0 to %c7168 step %c1 iter_args(%a = %zero) -> (f32) {
        ...
        %s = arith.addf %a, %x : f32
        scf.yield %s : f32
      }
      memref.store %r, %out[%n] : memref<4096xf32>
    }
    // becomes
    %partials = memref.alloc() : memref<4096x1x32xf32>
    scf.parallel (%t) = (%c0) to (%c131072) step (%c1) {
      // %lane = %t mod 32, %n = %t div 32
      %p = scf.for %k = %lane to %c7168 step %c32 iter_args(%a = %zero) -> (f32) {
        ...
      }
      memref.store %p, %partials[%n, %c0, %lane] : memref<4096x1x32xf32>
    }
    scf.parallel (%n) = (%c0) to (%c4096) step (%c1) {
      %r = scf.for %l = %c0 to %c32 step %c1 iter_args(%a = %zero) -> (f32) {
        %p = memref.load %partials[%n, %c0, %l] : memref<4096x1x32xf32>
        %s = arith.addf %a, %p : f32
        scf.yield %s : f32
      }
      memref.store %r, %out[%n] : memref<4096xf32>
    }
    memref.dealloc %partials : memref<4096x1x32xf32>
    ```
  }];
  let options = [
    Option<"lanes", "lanes", "int64_t", /*default=*/"32",
           "Threads (partial sums) per output: a warp">,
    Option<"minTripCount", "min-trip-count", "int64_t", /*default=*/"256",
           "Split only reductions of at least this many iterations">,
    Option<"maxPartials", "max-partials", "int64_t", /*default=*/"8388608",
           "Most partial sums (floats) one split loop may write">,
    Option<"unroll", "unroll", "int64_t", /*default=*/"8",
           "Unroll each lane's loop by this factor (loads in flight)">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect"
  ];
}

def MoEGPULaunchLoopsPass : Pass<"moe-gpu-launch-loops", "ModuleOp"> {
  let summary = "Put the bufferized program's loop nests on the GPU";
  let description = [{
    Decides what the CUDA target runs on the device. In each host function
    of the bufferized program:

    - every `memref.copy` first becomes a parallel loop of loads and
      stores;
    - an `scf.parallel` that can run in a kernel is tiled (the innermost
      dimension by `threads-per-block`, or less when it is smaller) and
      mapped: the tile loop's dimensions, collapsed into one, onto blocks x
      (grid y and z hold at most 65535 blocks, fewer than a long prompt's
      tokens), the innermost tile dimension onto threads x; parallel loops
      nested in its body become `scf.for` nests that each thread runs;
    - a serial nest (`scf.for`, `scf.if`, `scf.while`, without results)
      that can run in a kernel becomes a `gpu.launch` of one thread;
    - any other op with regions stays on the host and its regions are
      searched the same way.

    A nest can run in a kernel when it makes no calls, allocates only
    buffers of static shape (they become per-thread `memref.alloca` at the
    kernel's entry) and frees only what it allocated. Function calls,
    allocations of run-time size and scalar glue stay on the host, which
    the runtime backs with memory both sides address (CUDA managed
    memory). Weights (external `memref.global`s) are read on the host and
    passed to the kernels; constant globals are read inside, so that
    outlining copies them into the device module. Every launch is named
    `<function>_k<N>` and targets the device module `kernel-module`, so
    `gpu-kernel-outlining` puts all kernels into one `gpu.module`.

    Example:

    ```mlir
    scf.parallel (%i, %j) = (%c0, %c0) to (%n, %c64) step (%c1, %c1) {
      ...
    }
    // becomes
    gpu.launch blocks(...) in (%gx = %n, %gy = %c1, %gz = %c1)
               threads(...) in (%tx = %c64, %ty = %c1, %tz = %c1)
               module(@moe_kernels) function(@forward_k0) {
      ...
    }
    ```
  }];
  let options = [
    Option<"threadsPerBlock", "threads-per-block", "int64_t",
           /*default=*/"128",
           "Threads per block for the innermost parallel dimension">,
    Option<"kernelModule", "kernel-module", "std::string",
           /*default=*/"\"moe_kernels\"",
           "Name of the gpu.module the kernels are outlined into">,
  ];
  let dependentDialects = [
    "::mlir::affine::AffineDialect", "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect", "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect"
  ];
}

def MoEGPURelaxSerialKernelsPass
    : Pass<"moe-gpu-relax-serial-kernels", "::mlir::gpu::GPUModuleOp"> {
  let summary = "Drop the block-size bound of one-thread kernels";
  let description = [{
    `gpu-kernel-outlining` records a launch's constant block size as the
    kernel's `known_block_size`, which the NVVM lowering emits as PTX
    `.maxntid`. For the one-thread kernels of `-moe-gpu-launch-loops`,
    `.maxntid 1, 1, 1` leads ptxas to cap registers so low that loop
    nests with a few dozen live values spill to local memory. This pass
    removes the attribute from kernels whose known block size is 1 x 1 x 1;
    other kernels keep their bound.

    Example:

    ```mlir
    gpu.func @f_k0(...) kernel attributes {known_block_size = array<i32: 1, 1, 1>}
    // becomes
    gpu.func @f_k0(...) kernel
    ```
  }];
}

def MoEGPUMathToIntrinsicsPass
    : Pass<"moe-gpu-math-to-intrinsics", "::mlir::gpu::GPUModuleOp"> {
  let summary = "Device math with exact PTX instructions as LLVM intrinsics";
  let description = [{
    The NVVM lowering (`convert-gpu-to-nvvm`) turns math ops into calls to
    libdevice (`__nv_sqrtf`, `__nv_fabsf`, ...), which only a CUDA toolkit
    on the compiling machine can link. `math.sqrt`, `absf`, `floor`,
    `ceil`, `trunc`, `round`, `roundeven`, `fma` and `copysign` have exact
    PTX instructions (`sqrt.rn`, `abs`, `cvt.rmi`, `fma.rn`, ...), which
    NVPTX selects from LLVM's generic intrinsics. This pass emits those as
    `llvm.call_intrinsic`, which the NVVM lowering leaves alone; f16 and
    bf16 operands are computed in f32 (exact for these ops). Run after
    `-moe-expand-math` has replaced the transcendentals by polynomials.

    Example:

    ```mlir
    %r = math.sqrt %x : f32
    // becomes
    %r = llvm.call_intrinsic "llvm.sqrt.f32"(%x) : (f32) -> f32
    ```
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect",
                           "::mlir::arith::ArithDialect"];
}

def MoECPUParallelLoopsPass : Pass<"moe-cpu-parallel-loops", "ModuleOp"> {
  let summary = "Run outermost parallel loops on the runtime's thread pool";
  let description = [{
    For the CPU target, after bufferization: every outermost `scf.parallel`
    (the reference lowering's `scf.forall` over tokens, query heads or new
    KV-cache rows) from zero with unit steps and without results becomes a
    call of the runtime's `moert_parallel_for(count, task, context)`
    (`moe/Runtime/moert_kernels.h`), which spreads the iterations over the
    thread pool the kernels share. The body is outlined into a private
    task function `@<function>_task<N>(!llvm.ptr, i64)` that reads the
    values the body uses from a context struct (a memref as its LLVM
    descriptor; constants are cloned) and recovers the induction variables
    from the linear index, the innermost dimension fastest. The context is
    an `llvm.alloca` at the caller's entry. Values cross through
    `builtin.unrealized_conversion_cast`, which the memref-to-LLVM
    lowering and `reconcile-unrealized-casts` remove. Loops nested in a
    body run serially in their task.

    Example:

    ```mlir
    scf.parallel (%h) = (%c0) to (%n) step (%c1) {
      %v = memref.load %x[%h] : memref<?xf32>
      ...
    }
    // becomes, with the body in @f_task0
    llvm.store %x_descriptor, %field0 : !llvm.struct<(ptr, ptr, i64, ...)>, !llvm.ptr
    %task = func.constant @f_task0 : (!llvm.ptr, i64) -> ()
    func.call @moert_parallel_for(%count, %task_ptr, %context)
        : (i64, !llvm.ptr, !llvm.ptr) -> ()
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::func::FuncDialect",
    "::mlir::LLVM::LLVMDialect"
  ];
}

def MoEGPULaunchesToLoopsPass : Pass<"moe-gpu-launches-to-loops"> {
  let summary = "Run gpu.launch bodies as host loops (a testing aid)";
  let description = [{
    Replaces each `gpu.launch` by a loop nest over its grid and block
    (z, y, x; blocks outermost) around its body, whose block and thread ids
    become the induction variables and whose grid and block sizes the
    launch's operands; the body's per-thread allocas are allocated once
    before the nest. The kernels `-moe-gpu-launch-loops` makes use no
    barriers or shared memory, so running their threads one after another
    computes what the GPU does: `moec --target=cuda-on-host` compiles the
    CUDA placement this way into a CPU artifact, which the oracle tests run
    on machines without a GPU. Launches whose body has several blocks, or
    with async tokens or attributions, are refused.

    Example:

    ```mlir
    gpu.launch blocks(%bx, %by, %bz) in (%gx = %n, %gy = %c1, %gz = %c1)
               threads(%tx, %ty, %tz) in (%sx = %c64, %sy = %c1, %sz = %c1) {
      ...
      gpu.terminator
    }
    // becomes
    scf.for %z = %c0 to %c1 step %c1 {      // grid z, y, x
      ...
          scf.for %x = %c0 to %c64 step %c1 {  // block x
            ...
          }
    }
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::scf::SCFDialect"];
}

#endif // MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
