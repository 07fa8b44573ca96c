/*===- CudaDriverStub.c - A fake CUDA driver for host-side tests ----------===
 *
 * Implements the driver entry points the runtime resolves, on host memory,
 * so that the runtime's GPU host logic (driver loading, errors, the memory
 * pool, JIT logs) is tested where there is no GPU. Behaviour is set per call
 * through the environment:
 *   MOERT_STUB_DEVICES  number of devices (default 1; 0: cuInit fails with
 *                       CUDA_ERROR_NO_DEVICE, as the real driver does)
 *   MOERT_STUB_MEMORY   device memory in bytes (default 1 GiB)
 *   MOERT_STUB_CC       compute capability as 10 * major + minor (default
 *                       90, an H100/H200)
 *   MOERT_STUB_JIT_LOG  when set, module loads fail with
 *                       CUDA_ERROR_INVALID_PTX and this error log
 *   MOERT_STUB_TRACE    a file to append one line per module load
 *                       ("module BYTES .target sm_XX") and kernel launch
 *                       ("launch NAME grid X Y Z block X Y Z")
 * Modules keep their PTX: looking up a function the PTX has no `.entry`
 * for fails with CUDA_ERROR_NOT_FOUND, as the real driver does. Kernels
 * do not run; launches are checked (a found function, non-zero sizes,
 * parameters) and traced.
 *===----------------------------------------------------------------------===*/

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
/* The opaque handles, declared as cuda.h (and runtime/cuda.h) do. */
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;

enum {
  SUCCESS = 0,
  INVALID_VALUE = 1,
  OUT_OF_MEMORY = 2,
  NO_DEVICE = 100,
  INVALID_DEVICE = 101,
  INVALID_PTX = 218,
  NOT_FOUND = 500,
};

static void trace(const char *format, const char *text, const unsigned *sizes) {
  const char *path = getenv("MOERT_STUB_TRACE");
  if (!path || !*path)
    return;
  FILE *file = fopen(path, "a");
  if (!file)
    return;
  if (sizes)
    fprintf(file, format, text, sizes[0], sizes[1], sizes[2], sizes[3],
            sizes[4], sizes[5]);
  else
    fprintf(file, format, text);
  fclose(file);
}

static long env(const char *name, long fallback) {
  const char *value = getenv(name);
  return value && *value ? strtol(value, NULL, 10) : fallback;
}

static unsigned long long used;

CUresult cuInit(unsigned flags) {
  (void)flags;
  return env("MOERT_STUB_DEVICES", 1) > 0 ? SUCCESS : NO_DEVICE;
}
CUresult cuDriverGetVersion(int *version) {
  *version = 12080;
  return SUCCESS;
}
CUresult cuGetErrorName(CUresult result, const char **name) {
  switch (result) {
  case OUT_OF_MEMORY: *name = "CUDA_ERROR_OUT_OF_MEMORY"; return SUCCESS;
  case NO_DEVICE: *name = "CUDA_ERROR_NO_DEVICE"; return SUCCESS;
  case INVALID_DEVICE: *name = "CUDA_ERROR_INVALID_DEVICE"; return SUCCESS;
  case INVALID_PTX: *name = "CUDA_ERROR_INVALID_PTX"; return SUCCESS;
  case INVALID_VALUE: *name = "CUDA_ERROR_INVALID_VALUE"; return SUCCESS;
  case NOT_FOUND: *name = "CUDA_ERROR_NOT_FOUND"; return SUCCESS;
  default: return INVALID_VALUE;
  }
}
CUresult cuGetErrorString(CUresult result, const char **text) {
  *text = result == INVALID_PTX ? "a PTX JIT compilation failed" : "stub error";
  return SUCCESS;
}
CUresult cuDeviceGetCount(int *count) {
  *count = (int)env("MOERT_STUB_DEVICES", 1);
  return SUCCESS;
}
CUresult cuDeviceGet(int *device, int ordinal) {
  if (ordinal < 0 || ordinal >= env("MOERT_STUB_DEVICES", 1))
    return INVALID_DEVICE;
  *device = ordinal;
  return SUCCESS;
}
CUresult cuDeviceGetName(char *name, int length, int device) {
  (void)device;
  strncpy(name, "Stub GPU", (size_t)length);
  return SUCCESS;
}
CUresult cuDeviceGetAttribute(int *value, int attribute, int device) {
  (void)device;
  long cc = env("MOERT_STUB_CC", 90);
  *value = attribute == 75 ? (int)(cc / 10) : attribute == 76 ? (int)(cc % 10) : 0;
  return SUCCESS;
}
CUresult cuDeviceTotalMem_v2(size_t *bytes, int device) {
  (void)device;
  *bytes = (size_t)env("MOERT_STUB_MEMORY", 1L << 30);
  return SUCCESS;
}
CUresult cuDevicePrimaryCtxRetain(CUcontext *context, int device) {
  (void)device;
  static int token;
  *context = (CUcontext)&token;
  return SUCCESS;
}
CUresult cuDevicePrimaryCtxRelease_v2(int device) {
  (void)device;
  return SUCCESS;
}
CUresult cuCtxSetCurrent(CUcontext context) {
  (void)context;
  return SUCCESS;
}
CUresult cuMemGetInfo_v2(size_t *freeBytes, size_t *total) {
  *total = (size_t)env("MOERT_STUB_MEMORY", 1L << 30);
  *freeBytes = *total - used;
  return SUCCESS;
}
/* Each block is preceded by its size, so that frees can be counted. */
CUresult cuMemAlloc_v2(CUdeviceptr *ptr, size_t bytes) {
  unsigned long long total = (unsigned long long)env("MOERT_STUB_MEMORY", 1L << 30);
  if (used + bytes > total)
    return OUT_OF_MEMORY;
  uint64_t *block = malloc(bytes + sizeof(uint64_t));
  if (!block)
    return OUT_OF_MEMORY;
  block[0] = bytes;
  used += bytes;
  *ptr = (CUdeviceptr)(uintptr_t)(block + 1);
  return SUCCESS;
}
/* Host memory is what managed memory is to the host. */
CUresult cuMemAllocManaged(CUdeviceptr *ptr, size_t bytes, unsigned flags) {
  (void)flags;
  return cuMemAlloc_v2(ptr, bytes);
}
CUresult cuMemFree_v2(CUdeviceptr ptr) {
  uint64_t *block = (uint64_t *)(uintptr_t)ptr - 1;
  used -= block[0];
  free(block);
  return SUCCESS;
}
CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t bytes) {
  memcpy((void *)(uintptr_t)dst, src, bytes);
  return SUCCESS;
}
CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t bytes) {
  memcpy(dst, (const void *)(uintptr_t)src, bytes);
  return SUCCESS;
}
/* Pinned host memory is host memory; copies are synchronous, so events
 * are always complete. Counted, so that tests see the staging used. */
static long pinnedCopies;
long moert_stub_pinned_copies(void) { return pinnedCopies; }
CUresult cuMemAllocHost_v2(void **ptr, size_t bytes) {
  *ptr = malloc(bytes);
  return *ptr ? SUCCESS : OUT_OF_MEMORY;
}
CUresult cuMemFreeHost(void *ptr) {
  free(ptr);
  return SUCCESS;
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t bytes,
                              CUstream stream) {
  (void)stream;
  ++pinnedCopies;
  memcpy((void *)(uintptr_t)dst, src, bytes);
  return SUCCESS;
}
typedef struct CUevent_st *CUevent;
CUresult cuEventCreate(CUevent *event, unsigned flags) {
  (void)flags;
  *event = malloc(1);
  return SUCCESS;
}
CUresult cuEventDestroy_v2(CUevent event) {
  free(event);
  return SUCCESS;
}
CUresult cuEventRecord(CUevent event, CUstream stream) {
  (void)event;
  (void)stream;
  return SUCCESS;
}
CUresult cuEventSynchronize(CUevent event) {
  (void)event;
  return SUCCESS;
}
CUresult cuStreamCreate(CUstream *stream, unsigned flags) {
  (void)flags;
  static int token;
  *stream = (CUstream)&token;
  return SUCCESS;
}
CUresult cuStreamDestroy_v2(CUstream stream) {
  (void)stream;
  return SUCCESS;
}
CUresult cuStreamSynchronize(CUstream stream) {
  (void)stream;
  return SUCCESS;
}
/* A function is its module and name. */
struct CUfunc_st {
  CUmodule module;
  char name[256];
  CUfunction next;
};
/* A module is its PTX text and the functions looked up in it, which go
 * with it (as the driver's do). */
struct CUmod_st {
  char *ptx;
  CUfunction functions;
};

CUresult cuModuleLoadDataEx(CUmodule *module, const void *image, unsigned count,
                            int *options, void **values) {
  const char *log = getenv("MOERT_STUB_JIT_LOG");
  if (!log) {
    const char *ptx = image;
    *module = calloc(1, sizeof(struct CUmod_st));
    (*module)->ptx = strdup(ptx);
    const char *target = strstr(ptx, ".target ");
    char line[64] = "(no .target)";
    if (target) {
      size_t n = strcspn(target, "\n");
      if (n >= sizeof(line))
        n = sizeof(line) - 1;
      memcpy(line, target, n);
      line[n] = '\0';
    }
    char text[96];
    snprintf(text, sizeof(text), "%zu %s", strlen(ptx), line);
    trace("module %s\n", text, NULL);
    return SUCCESS;
  }
  char *buffer = NULL;
  size_t size = 0;
  for (unsigned i = 0; i < count; ++i) {
    if (options[i] == 5) /* CU_JIT_ERROR_LOG_BUFFER */
      buffer = values[i];
    if (options[i] == 6) /* CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES */
      size = (size_t)(uintptr_t)values[i];
  }
  if (buffer && size) {
    strncpy(buffer, log, size - 1);
    buffer[size - 1] = '\0';
  }
  return INVALID_PTX;
}
CUresult cuModuleUnload(CUmodule module) {
  if (!module)
    return INVALID_VALUE;
  while (module->functions) {
    CUfunction next = module->functions->next;
    free(module->functions);
    module->functions = next;
  }
  free(module->ptx);
  free(module);
  return SUCCESS;
}
CUresult cuModuleGetFunction(CUfunction *function, CUmodule module,
                             const char *name) {
  if (!module || strlen(name) >= sizeof((*function)->name))
    return INVALID_VALUE;
  char entry[300];
  snprintf(entry, sizeof(entry), ".entry %s(", name);
  if (!strstr(module->ptx, entry))
    return NOT_FOUND;
  for (CUfunction f = module->functions; f; f = f->next)
    if (!strcmp(f->name, name)) {
      *function = f;
      return SUCCESS;
    }
  *function = calloc(1, sizeof(struct CUfunc_st));
  (*function)->module = module;
  strcpy((*function)->name, name);
  (*function)->next = module->functions;
  module->functions = *function;
  return SUCCESS;
}
CUresult cuLaunchKernel(CUfunction f, unsigned gridX, unsigned gridY,
                        unsigned gridZ, unsigned blockX, unsigned blockY,
                        unsigned blockZ, unsigned sharedBytes, CUstream stream,
                        void **params, void **extra) {
  (void)sharedBytes;
  (void)stream;
  (void)extra;
  if (!f || !params || !gridX || !gridY || !gridZ || !blockX || !blockY ||
      !blockZ || blockX * blockY * blockZ > 1024)
    return INVALID_VALUE;
  unsigned sizes[6] = {gridX, gridY, gridZ, blockX, blockY, blockZ};
  trace("launch %s grid %u %u %u block %u %u %u\n", f->name, sizes);
  return SUCCESS;
}
