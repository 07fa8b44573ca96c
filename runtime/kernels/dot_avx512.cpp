// dot_impl.inc for AVX-512F (compiled with -mavx512f -mavx512bw -mfma -mf16c).
#define MOERT_ISA_NAME "avx512"
#define MOERT_ISA_FN isaAVX512
#define MOERT_VECTOR_BYTES 64
#include "dot_impl.inc"
