// The portable build of dot_impl.inc: 16-byte vectors (SSE2 or NEON).
#define MOERT_ISA_NAME "generic"
#define MOERT_ISA_FN isaGeneric
#define MOERT_VECTOR_BYTES 16
#include "dot_impl.inc"
