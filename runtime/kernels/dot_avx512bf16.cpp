// dot_impl.inc for AVX-512F with AVX512_BF16's dot products (compiled with
// -mavx512f -mavx512bw -mavx512bf16 -mfma -mf16c).
#define MOERT_ISA_NAME "avx512bf16"
#define MOERT_ISA_FN isaAVX512BF16
#define MOERT_VECTOR_BYTES 64
#define MOERT_DOT_PAIRS 1
#include "dot_impl.inc"
