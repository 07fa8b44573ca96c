//===- dot.h - Vector dot-product tiles, one build per ISA ------*- C++ -*-===//
//
// The inner loop of every kernel: a tile of dot products between up to
// kMaxRows f32 activation rows and up to kMaxCols weight rows, both
// contiguous along K. Weights are read in their stored type (f32, bf16,
// f16) and widened in registers, so bf16 checkpoints stream half the bytes.
// dot_impl.inc holds the code; dot_<isa>.cpp compile it for each
// instruction set, and kernels.cpp picks one at run time.
//
//===----------------------------------------------------------------------===//

#ifndef MOERT_KERNELS_DOT_H
#define MOERT_KERNELS_DOT_H

#include <cstdint>

namespace moert::kernels {

enum class DType : int { F32 = 0, BF16 = 1, F16 = 2 };

constexpr int kMaxRows = 4; // activation rows per tile
constexpr int kMaxCols = 3; // weight rows per tile
constexpr int kOuterCols = 6; // weight rows per outer-product tile

/// c[m * ldc + n * ldn] (+)= sum_{k0 <= i < k1} a[m][i] * b[n][i] for
/// m < rows, n < cols; `accumulate` adds to c instead of storing (the
/// kernels split K into chunks that stay in cache).
using DotTileFn = void (*)(int rows, int cols, const float *const *a,
                           const void *const *b, int64_t k0, int64_t k1,
                           float *c, int64_t ldc, int64_t ldn,
                           bool accumulate);

/// The same products for weights stored transposed ([K, N], as ONNX MatMul
/// initializers are): c[m * ldc + n] = sum_k a[m][k] * b[k * ldb + n] for
/// m < rows, n < cols. Broadcasts each activation and streams rows of b.
using DotTileTransposedFn = void (*)(int rows, int64_t cols,
                                     const float *const *a, const void *b,
                                     int64_t ldb, int64_t k, float *c,
                                     int64_t ldc);

/// The outer-product form for many activation rows: the rows are packed
/// K-major in panels of Isa::panel rows (panel[i * P + m] is element i of
/// row m), each weight element is broadcast against a panel's vectors, and
/// c[n * P + m] (+)= sum_{i < k} panel[i * P + m] * b[n][i] for m < P,
/// n < cols <= kOuterCols: the products come out n-major, whole vectors.
/// Per FMA it loads less than half the bytes the dot form does (AVX2: 88
/// against 224 per 12 FMAs), which keeps prompt-sized GEMMs bound by the
/// FMAs rather than by L2.
using OuterTileFn = void (*)(int cols, const float *panel,
                             const float *const *b, int64_t k, float *c,
                             bool accumulate);

/// The outer form with bf16 dot products, for bf16 weights where the ISA
/// multiplies bf16 pairs (AVX512_BF16's vdpbf16ps): `pairs` holds the panel
/// rows rounded to bf16, two K elements per 32-bit word (pairs[q * P + m]
/// is element 2q of row m in the low half, 2q + 1 in the high half; see
/// PackPairsFn), and c[n * P + m] (+)= sum_{i < k} row m[i] * b[n][i] for
/// m < P, n < cols <= kOuterCols, b read in place (bf16 bits). Half the
/// instructions of the f32 form per product, and no widened copy of the
/// weights.
using OuterPairsTileFn = void (*)(int cols, const uint32_t *pairs,
                                  const uint16_t *const *b, int64_t k, float *c,
                                  bool accumulate);

/// A panel as OuterTileFn takes it ([k][P] floats) in the pair form of
/// OuterPairsTileFn ([ceil(k / 2)][P] words), rounded to nearest even; an
/// odd k's last word has a zero high half.
using PackPairsFn = void (*)(const float *panel, int64_t k, uint32_t *pairs);

/// The gated activation of the expert FFNs, out[i] = act(g[i], u[i]):
/// silu(g) * u, or with `clamped` GPT-OSS's
/// (min(u, limit) clamped at -limit + beta) * g' * sigmoid(alpha * g'),
/// g' = min(g, limit). Vector exp within 2 ulp of libm's.
using ActivationFn = void (*)(const float *g, const float *u, float *out,
                              int64_t n, bool clamped, float alpha,
                              float limit, float beta);

/// dst[i] = float(src[i]) for i < n, src of the indexed DType.
using WidenFn = void (*)(const void *src, float *dst, int64_t n);

/// dst[j * ldd + i] = src[i][j] for i < rows, j < cols.
using TransposeFn = void (*)(const float *const *src, int64_t rows,
                             int64_t cols, float *dst, int64_t ldd);

struct Isa {
  const char *name;
  DotTileFn dot[3]; // indexed by the weights' DType
  DotTileTransposedFn dotTransposed[3];
  ActivationFn activation;
  WidenFn widen[3];
  int panel; // activation rows per packed panel: two vectors
  OuterTileFn outer;
  TransposeFn transpose;
  // Null where the ISA has no bf16 dot products.
  OuterPairsTileFn outerPairs;
  PackPairsFn packPairs;
};

const Isa &isaGeneric();
/// The AVX-512 build's code (64-byte vectors, bf16 dot products) in
/// portable instructions, with vdpbf16ps's arithmetic written out: how
/// machines without AVX-512 test that code (MOERT_ISA=avx512bf16-emulated).
const Isa &isaEmulatedAVX512BF16();
#if defined(__x86_64__)
const Isa &isaAVX2();
const Isa &isaAVX512();
const Isa &isaAVX512BF16();
#endif

} // namespace moert::kernels

#endif // MOERT_KERNELS_DOT_H
