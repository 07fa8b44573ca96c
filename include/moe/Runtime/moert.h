/*===- moert.h - The moec runtime C API ---------------------------*- C -*-===*
 *
 * The C API of the moec runtime. It depends on neither MLIR nor LLVM and is
 * usable from C and C++. Errors are values: every call that can fail
 * returns a moert_status, NULL on success, which the caller frees.
 *
 * Contents: errors and versions; models (loaded artifacts) with sessions
 * for decoders and named-tensor runs for graphs; CUDA device queries.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOE_RUNTIME_MOERT_H
#define MOE_RUNTIME_MOERT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MOERT_VERSION_MAJOR 0
#define MOERT_VERSION_MINOR 1

/* The artifact format this runtime reads, and moec writes (the manifest's
 * first line; see docs/architecture.md). 3: each `cache` entry records the
 * cache's bytes at capacity. 4: CPU code frees through moert_free (the
 * runtime's heap keeps freed blocks), not libc's free. */
#define MOERT_ARTIFACT_FORMAT 4

typedef enum moert_status_code {
  MOERT_OK = 0,
  MOERT_INVALID_ARGUMENT = 1,
  MOERT_NOT_FOUND = 2,
  MOERT_IO_ERROR = 3,
  MOERT_FORMAT_ERROR = 4,
  MOERT_UNIMPLEMENTED = 5,
  MOERT_OUT_OF_MEMORY = 6,
  MOERT_INTERNAL = 7,
} moert_status_code;

/* An error: a code and a one-line message. NULL means success. */
typedef struct moert_status_s *moert_status;

/* Creates an error with a printf-style message. Returns NULL for MOERT_OK. */
moert_status moert_status_make(moert_status_code code, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The code of `status`; MOERT_OK for NULL. */
moert_status_code moert_status_get_code(moert_status status);

/* The message of `status`, valid until it is freed; "" for NULL. */
const char *moert_status_message(moert_status status);

/* The name of a code, such as "not found". */
const char *moert_status_code_name(moert_status_code code);

/* Frees `status`; NULL is allowed. */
void moert_status_free(moert_status status);

/* "MAJOR.MINOR" of the runtime that was linked. */
const char *moert_version(void);

/*===----------------------------------------------------------------------===
 * Models and sessions
 *
 * A model is a loaded artifact: the compiled code plus the checkpoint it was
 * compiled against, mapped read-only (the artifact references the shards by
 * path and header fingerprint; a moved or changed checkpoint is an error).
 * A session owns one sequence's KV cache. Batch size 1.
 *===----------------------------------------------------------------------===*/

typedef struct moert_model_s *moert_model;
typedef struct moert_session_s *moert_session;

/* Loads the artifact at `path`. */
moert_status moert_model_load(const char *path, moert_model *out);
/* Loads the artifact at `path` without its checkpoint, which is not
 * opened: every weight is drawn uniformly from [-0.02, 0.02] in its element
 * type (random bits for integer types), a function of `seed`, the weight
 * and the element's index only, so a seed always gives the same weights.
 * For running and timing real model shapes without their weights (compile
 * against a header-only checkpoint). Decoders only. */
moert_status moert_model_load_random(const char *path, uint64_t seed,
                                     moert_model *out);
void moert_model_free(moert_model model);
int64_t moert_model_vocab_size(moert_model model);
/* The KV-cache capacity in tokens (moec --max-seq-len). */
int64_t moert_model_max_seq_len(moert_model model);
/* Host bytes a session's KV caches take (they are allocated at capacity,
 * max_seq_len tokens, at the first prefill); 0 for a graph. Creating a
 * session and prefilling fail with MOERT_OUT_OF_MEMORY when the host has
 * less available (MemAvailable, the cgroup's limit, or the environment
 * variable MOERT_HOST_MEMORY_LIMIT: bytes, or a number with K/M/G/T). */
int64_t moert_model_kv_cache_bytes(moert_model model);
/* Seconds moert_model_load took. */
double moert_model_load_seconds(moert_model model);

moert_status moert_session_create(moert_model model, moert_session *out);
void moert_session_free(moert_session session);

/* Runs the `n` prompt tokens from position 0 (dropping any cached state)
 * and writes their logits, [n, vocab] f32, to `logits` (may be NULL). */
moert_status moert_prefill(moert_session session, const int32_t *tokens,
                           int64_t n, float *logits);

/* Appends one token and writes its logits, [vocab] f32 (may be NULL). */
moert_status moert_decode(moert_session session, int32_t token,
                          float *logits);

/*===----------------------------------------------------------------------===
 * Graphs
 *
 * An artifact compiled from an ONNX model is a graph: named input tensors
 * in, named output tensors out, no session state. Dimensions the model
 * leaves open (-1 in moert_graph_value_info) are fixed by the inputs of
 * each run; inputs that share a symbolic dimension name (ONNX dim_param)
 * must agree on it.
 *===----------------------------------------------------------------------===*/

typedef enum moert_dtype {
  MOERT_DTYPE_F32 = 1,
  MOERT_DTYPE_F16 = 2,
  MOERT_DTYPE_BF16 = 3,
  MOERT_DTYPE_F64 = 4,
  MOERT_DTYPE_I64 = 5,
  MOERT_DTYPE_I32 = 6,
  MOERT_DTYPE_BOOL = 7, /* one byte per element, 0 or 1 */
} moert_dtype;

/* Bytes per element of `dtype`; 0 for an unknown value. */
int64_t moert_dtype_size(moert_dtype dtype);
/* "f32", "bf16", "bool", ...; "?" for an unknown value. */
const char *moert_dtype_name(moert_dtype dtype);

#define MOERT_MAX_RANK 8

/* A dense row-major host tensor. */
typedef struct moert_tensor {
  moert_dtype dtype;
  int64_t rank;
  int64_t shape[MOERT_MAX_RANK];
  void *data;
} moert_tensor;

/* Non-zero when `model` is a graph artifact (else it is a decoder, run
 * with sessions). */
int moert_model_is_graph(moert_model model);

int64_t moert_graph_input_count(moert_model model);
int64_t moert_graph_output_count(moert_model model);
/* Name, element type and rank of input/output `i`, and its shape with -1
 * for a dimension fixed at run time (`out->data` is NULL). The name is
 * valid while the model lives. */
moert_status moert_graph_input_info(moert_model model, int64_t i,
                                    const char **name, moert_tensor *out);
moert_status moert_graph_output_info(moert_model model, int64_t i,
                                     const char **name, moert_tensor *out);

/* The symbolic name (ONNX dim_param) of dimension `d` of input `i` (of
 * output `i` when `output` is non-zero), or NULL when the dimension is
 * fixed, unnamed or out of range. Inputs sharing a name must agree on it. */
const char *moert_graph_dim_name(moert_model model, int output, int64_t i,
                                 int64_t d);

/* Runs the graph on `inputs` (one per graph input, in order; read only)
 * and fills `outputs` (one per graph output, in order): each gets its
 * shape and a buffer the caller releases with moert_tensor_release. A
 * wrong element type, rank or fixed dimension, or inputs that disagree on
 * a shared dimension, is MOERT_INVALID_ARGUMENT naming the input. */
moert_status moert_graph_run(moert_model model, const moert_tensor *inputs,
                             moert_tensor *outputs);

/* Frees a buffer moert_graph_run allocated and clears `tensor->data`. */
void moert_tensor_release(moert_tensor *tensor);

/* How many times the compiled code's heap has called the system allocator
 * in this process. The runtime keeps the blocks compiled code frees and
 * hands them out again, so a decode step in steady state adds none
 * (moe-run --stats reports them; sanitizer builds keep no blocks). */
uint64_t moert_heap_system_allocations(void);

/* The checksum the manifest records for itself, shard headers, the code
 * section and embedded weights (moe/Support/Checksum.h). */
uint64_t moert_fingerprint(const void *data, uint64_t size);

/*===----------------------------------------------------------------------===
 * CUDA devices
 *
 * The runtime reaches NVIDIA GPUs through the CUDA driver API only, loaded
 * at run time (libcuda.so.1, or the library $MOERT_CUDA_DRIVER names), so
 * it builds and runs where no driver is installed. Without a driver or a
 * device these return MOERT_NOT_FOUND with a message that suggests
 * --device=cpu.
 *
 * An artifact compiled with `moec --target=cuda` holds PTX and host code
 * that launches it. moert_model_load runs it on CUDA device
 * $MOERT_CUDA_DEVICE (default 0), after checking that the device can run
 * the PTX's architecture and has room for the weights and KV cache; the
 * PTX is JIT-compiled by the driver once, and the weights are copied into
 * the device's memory pool (CUDA managed memory).
 *===----------------------------------------------------------------------===*/

/* The GPU architecture of a model's code ("sm_90a", "sm_90", "sm_80";
 * moec --gpu-arch), or "" when it is CPU code. */
const char *moert_model_gpu_arch(moert_model model);

typedef struct moert_cuda_device_info {
  int ordinal;
  char name[256];
  int compute_major, compute_minor; /* e.g. 9, 0 for an H200 */
  uint64_t total_memory, free_memory; /* bytes */
  int driver_version;                 /* e.g. 12080 for CUDA 12.8 */
} moert_cuda_device_info;

/* The number of CUDA devices (at least one on success). */
moert_status moert_cuda_device_count(int *count);

/* Facts about device `ordinal`. */
moert_status moert_cuda_device_info_get(int ordinal,
                                        moert_cuda_device_info *out);

#ifdef __cplusplus
}
#endif

#endif /* MOE_RUNTIME_MOERT_H */
