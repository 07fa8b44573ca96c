//===- dot.h - Vector dot-product tiles, one build per ISA ------*- C++ -*-===//
//
// The inner loop of every kernel: a tile of dot products between up to
// kMaxRows f32 activation rows and up to kMaxCols weight rows, both
// contiguous along K. Weights are read in their stored type (f32, bf16,
// f16) and widened in registers, so bf16 checkpoints stream half the bytes.
// dot_impl.inc holds the code; dot_generic.cpp, dot_avx2.cpp and
// dot_avx512.cpp compile it for each instruction set, and kernels.cpp picks
// one at run time.
//
//===----------------------------------------------------------------------===//

#ifndef MOERT_KERNELS_DOT_H
#define MOERT_KERNELS_DOT_H

#include <cstdint>

namespace moert::kernels {

enum class DType : int { F32 = 0, BF16 = 1, F16 = 2 };

constexpr int kMaxRows = 4; // activation rows per tile
constexpr int kMaxCols = 3; // weight rows per tile

/// c[m * ldc + n] = sum_k a[m][k] * b[n][k] for m < rows, n < cols.
using DotTileFn = void (*)(int rows, int cols, const float *const *a,
                           const void *const *b, int64_t k, float *c,
                           int64_t ldc);

struct Isa {
  const char *name;
  DotTileFn dot[3]; // indexed by the weights' DType
};

const Isa &isaGeneric();
#if defined(__x86_64__)
const Isa &isaAVX2();
const Isa &isaAVX512();
#endif

} // namespace moert::kernels

#endif // MOERT_KERNELS_DOT_H
