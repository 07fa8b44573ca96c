// dot_impl.inc for AVX2 + FMA + F16C (compiled with -mavx2 -mfma -mf16c).
#define MOERT_ISA_NAME "avx2"
#define MOERT_ISA_FN isaAVX2
#define MOERT_VECTOR_BYTES 32
#include "dot_impl.inc"
