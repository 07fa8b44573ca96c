// dot_impl.inc at the AVX-512 build's width with the bf16 dot products
// written out, compiled for the baseline ISA: every machine runs the
// 64-byte code paths and the pair form this way (MOERT_ISA=
// avx512bf16-emulated), which is how they are tested without AVX-512.
#define MOERT_ISA_NAME "avx512bf16-emulated"
#define MOERT_ISA_FN isaEmulatedAVX512BF16
#define MOERT_VECTOR_BYTES 64
#define MOERT_DOT_PAIRS 2
#include "dot_impl.inc"
