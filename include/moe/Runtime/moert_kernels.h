/*===- moert_kernels.h - Kernels compiled CPU code calls ----------*- C -*-===*
 *
 * The kernel ABI between moec's CPU code and the runtime. At -O1 and above,
 * `-moe-use-runtime-kernels` replaces the heavy moe ops (the expert FFNs,
 * projections, routing) by calls to these functions, which the runtime
 * implements with a thread pool and vector code chosen for the CPU at run
 * time (AVX-512, AVX2+FMA+F16C, or portable). Everything else in a program
 * is compiled code.
 *
 * Calling convention: MLIR's C interface (`llvm.emit_c_interface`). Each
 * tensor operand is a pointer to a strided memref descriptor; scalars are
 * passed by value. Descriptors are fully dynamic (sizes and strides are
 * read at run time), so one entry point serves every shape. An optional
 * operand that is absent is a descriptor whose sizes are all 0.
 *
 * Entry points, one per element-type combination: `A` is the activations'
 * type (hidden states, results), `W` the weights' (f32, bf16 or f16):
 *
 *   moert_experts_A_W    moe.experts / moe.grouped_experts
 *   moert_linear_A_W     moe.linear (bias, RMSNorm prologue, residual)
 *   moert_route_A_W      moe.route / moe.fused_route
 *
 * and moert_parallel_for, which runs the bodies of compiled code's
 * parallel loops (-moe-cpu-parallel-loops) on the same thread pool.
 *
 * The kernels compute what the ops' descriptions state, accumulating in
 * f32; they differ from the reference lowering (moec -O0) only in the
 * order of floating-point sums.
 *
 * Threads: MOERT_NUM_THREADS (default: the CPUs this process may run on).
 * Instruction set: MOERT_ISA=avx512|avx2|generic caps the choice (for tests
 * and comparisons); the best one the CPU supports is used otherwise.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOE_RUNTIME_MOERT_KERNELS_H
#define MOE_RUNTIME_MOERT_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* MLIR's strided memref descriptors, element type erased. */
typedef struct {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[1];
  int64_t strides[1];
} moert_memref1d;

typedef struct {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[2];
  int64_t strides[2];
} moert_memref2d;

typedef struct {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[3];
  int64_t strides[3];
} moert_memref3d;

/* Activation codes of moert_experts_*. */
#define MOERT_ACT_SWIGLU 0
#define MOERT_ACT_SWIGLU_CLAMPED 1

/* moert_linear_* flags. */
#define MOERT_LINEAR_NORM 1            /* RMSNorm prologue with norm_weight */
#define MOERT_LINEAR_NORM_WEIGHT_F32 2 /* norm_weight_in_f32 */
#define MOERT_LINEAR_NORM_WEIGHT_STORED_F32 4 /* norm_weight is f32, not A */

/* moert_route_* score functions and flags. */
#define MOERT_SCORE_SOFTMAX 0
#define MOERT_SCORE_SIGMOID 1
#define MOERT_SCORE_NONE 2
#define MOERT_ROUTE_TOPK_THEN_SOFTMAX 1 /* order = topk_then_softmax */
#define MOERT_ROUTE_GROUP_TOP2_SUM 2    /* group_score = top2_sum */
#define MOERT_ROUTE_RENORM 4            /* renorm = sum */
#define MOERT_ROUTE_ROUND_LOGITS 8      /* round_logits: logits rounded to A */

/* The element-type combinations of every kernel family. */
#define MOERT_KERNEL_TYPES(X)                                                  \
  X(f32, f32)                                                                  \
  X(f32, bf16)                                                                 \
  X(f32, f16)                                                                  \
  X(bf16, f32)                                                                 \
  X(bf16, bf16)                                                                \
  X(bf16, f16)                                                                 \
  X(f16, f32)                                                                  \
  X(f16, bf16)                                                                 \
  X(f16, f16)

/* result[t] = sum_j weights[t, j] * ffn_{ids[t, j]}(x[t]) + shared(x[t]).
 * x, out: [T, H] (A). ids: [T, k] i32 (clamped into [0, E)). weights:
 * [T, k] f32. gate, up: [E, I, H]; down: [E, H, I]; gate_bias, up_bias:
 * [E, I]; down_bias: [E, H]; shared_gate, shared_up: [S, H]; shared_down:
 * [H, S]; shared_expert_gate: [1, H] (all W; the optional ones may be
 * absent). */
#define MOERT_DECLARE_EXPERTS(A, W)                                            \
  void _mlir_ciface_moert_experts_##A##_##W(                                   \
      moert_memref2d *x, moert_memref2d *ids, moert_memref2d *weights,         \
      moert_memref3d *gate, moert_memref3d *up, moert_memref3d *down,          \
      moert_memref2d *gate_bias, moert_memref2d *up_bias,                      \
      moert_memref2d *down_bias, moert_memref2d *shared_gate,                  \
      moert_memref2d *shared_up, moert_memref2d *shared_down,                  \
      moert_memref2d *shared_expert_gate, moert_memref2d *out,                 \
      int64_t activation, float alpha, float limit, float beta);
MOERT_KERNEL_TYPES(MOERT_DECLARE_EXPERTS)
#undef MOERT_DECLARE_EXPERTS

/* out = cast(norm?(x) * weight^T (+ bias)) (+ residual).
 * x, residual, out: [T, K] / [T, N] (A); weight: [N, K], bias: [N] (W);
 * norm_weight: [K] (A, or f32 with MOERT_LINEAR_NORM_WEIGHT_STORED_F32). */
#define MOERT_DECLARE_LINEAR(A, W)                                             \
  void _mlir_ciface_moert_linear_##A##_##W(                                    \
      moert_memref2d *x, moert_memref2d *weight, moert_memref1d *bias,         \
      moert_memref1d *norm_weight, moert_memref2d *residual,                   \
      moert_memref2d *out, int64_t flags, float eps);
MOERT_KERNEL_TYPES(MOERT_DECLARE_LINEAR)
#undef MOERT_DECLARE_LINEAR

/* moe.route's arithmetic: logits = x * gate^T (+ logit_bias) in f32, then
 * scores, group-limited top-k with the selection bias, renormalisation and
 * scaling. x: [T, H] (A); gate: [E, H] (W); selection_bias, logit_bias: [E]
 * f32 (optional). ids, weights: [T, k] i32 / f32. offsets: [E + 1] i32 and
 * slots: [T * k + E * (tile - 1)] i32 receive moe.fused_route's permutation
 * when present (each expert's segment padded to a multiple of `tile` with
 * -1). */
#define MOERT_DECLARE_ROUTE(A, W)                                              \
  void _mlir_ciface_moert_route_##A##_##W(                                     \
      moert_memref2d *x, moert_memref2d *gate, moert_memref1d *selection_bias, \
      moert_memref1d *logit_bias, moert_memref2d *ids,                         \
      moert_memref2d *weights, moert_memref1d *offsets, moert_memref1d *slots, \
      int64_t score, int64_t flags, int64_t n_group, int64_t topk_group,       \
      int64_t tile, float renorm_eps, float scaling_factor);
MOERT_KERNEL_TYPES(MOERT_DECLARE_ROUTE)
#undef MOERT_DECLARE_ROUTE

/* The instruction set the kernels use ("avx512", "avx2", "generic") and
 * the number of threads they run on. */
const char *moert_kernels_isa(void);
int moert_kernels_threads(void);

/* Runs task(context, i) for every i in [0, count) on the kernels' thread
 * pool (the caller works too) and returns when all have returned. Compiled
 * code calls it for its parallel loops; a loop started while another
 * thread's loop runs (two sessions at once) runs on its caller alone. */
void moert_parallel_for(int64_t count, void (*task)(void *context, int64_t i),
                        void *context);

#ifdef __cplusplus
}
#endif

#endif /* MOE_RUNTIME_MOERT_KERNELS_H */
