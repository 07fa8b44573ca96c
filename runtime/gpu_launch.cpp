//===- gpu_launch.cpp - What compiled CUDA code calls ---------------------===//
//
// The host code of a `moec --target=cuda` artifact is MLIR's gpu-to-llvm
// lowering: a global constructor loads the embedded PTX with
// mgpuModuleLoadJIT, and each kernel launch calls mgpuModuleGetFunction,
// mgpuStreamCreate, mgpuLaunchKernel, mgpuStreamSynchronize and
// mgpuStreamDestroy (the ABI of MLIR's CUDA runtime wrappers). Its heap
// allocations call moert_device_malloc and moert_device_free (moec renames
// malloc and free). This file implements them on the runtime's own driver
// layer for the context a DeviceScope made current: one stream per loaded
// model, memory from the model's pool (managed, so that host glue between
// kernels can read it), and errors recorded for the scope instead of
// aborting, since none of these functions can return one.
//
//===----------------------------------------------------------------------===//

#include "cuda.h"
#include "model_impl.h"

#include <csetjmp>
#include <cstring>
#include <string>

using namespace moert::cuda;

namespace {
thread_local Context *current = nullptr;
thread_local moert_status pending = nullptr;

/// Keeps the first error of the scope.
void record(moert_status status) {
  if (!status)
    return;
  if (pending)
    moert_status_free(status);
  else
    pending = status;
}

/// The current context, or null after recording why there is none.
Context *device(const char *what) {
  if (!current)
    record(moert_status_make(
        MOERT_INTERNAL,
        "compiled CUDA code called %s outside a model loaded on a device "
        "(was a CPU-only runtime, or the wrong artifact, used?)",
        what));
  return current;
}
} // namespace

DeviceScope::DeviceScope(Context *context) : previous(current) {
  // An error recorded outside any scope belongs to nobody.
  moert_status_free(pending);
  pending = nullptr;
  current = context;
  if (context)
    context->makeCurrent();
}

DeviceScope::~DeviceScope() {
  // An error nobody took is dropped with the scope.
  moert_status_free(pending);
  pending = nullptr;
  current = previous;
}

moert_status DeviceScope::takeError() {
  if (current && !pending)
    record(current->driver().check(
        current->driver().cuStreamSynchronize(current->stream()),
        "running the kernels"));
  moert_status status = pending;
  pending = nullptr;
  return status;
}

extern "C" {

void *mgpuModuleLoadJIT(void *data, int optLevel) {
  (void)optLevel; // The driver's default JIT level (the highest).
  Context *context = device("mgpuModuleLoadJIT");
  if (!context || pending)
    return nullptr;
  CUmodule module = nullptr;
  record(context->loadModule(static_cast<const char *>(data), &module));
  return module;
}

void mgpuModuleUnload(void *module) {
  if (current && module)
    current->driver().cuModuleUnload(static_cast<CUmodule>(module));
}

void *mgpuModuleGetFunction(void *module, const char *name) {
  Context *context = device("mgpuModuleGetFunction");
  if (!context || pending || !module)
    return nullptr;
  CUfunction function = nullptr;
  std::string what = std::string("finding kernel ") + name;
  record(context->driver().check(
      context->driver().cuModuleGetFunction(
          &function, static_cast<CUmodule>(module), name),
      what.c_str()));
  return function;
}

/// Every launch of a model goes to its one stream.
void *mgpuStreamCreate() {
  Context *context = device("mgpuStreamCreate");
  return context ? context->stream() : nullptr;
}

void mgpuStreamDestroy(void *stream) { (void)stream; }

void mgpuStreamSynchronize(void *stream) {
  if (!current || pending)
    return;
  record(current->driver().check(
      current->driver().cuStreamSynchronize(static_cast<CUstream>(stream)),
      "running a kernel"));
}

void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
                      intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                      intptr_t blockZ, int32_t sharedBytes, void *stream,
                      void **params, void **extra, size_t paramCount) {
  (void)paramCount;
  Context *context = device("mgpuLaunchKernel");
  if (!context || pending || !function)
    return;
  // Grids beyond the hardware's limits fail in the driver; sizes that do
  // not fit its unsigned arguments must not wrap into small valid ones.
  for (intptr_t size : {gridX, gridY, gridZ, blockX, blockY, blockZ})
    if (size < 0 || size > INT32_MAX) {
      record(moert_status_make(MOERT_INTERNAL,
                               "a kernel launch of %lld threads or blocks in "
                               "one dimension",
                               (long long)size));
      return;
    }
  record(context->driver().check(
      context->driver().cuLaunchKernel(
          static_cast<CUfunction>(function), unsigned(gridX), unsigned(gridY),
          unsigned(gridZ), unsigned(blockX), unsigned(blockY),
          unsigned(blockZ), unsigned(sharedBytes),
          static_cast<CUstream>(stream), params, extra),
      "launching a kernel"));
}

/// The compiled code's heap. A failed allocation unwinds the entry point
/// (as moert_malloc does on the host) with the pool's out-of-memory error.
void *moert_device_malloc(size_t bytes) {
  Context *context = device("malloc");
  CUdeviceptr ptr = 0;
  if (context) {
    moert_status status = context->allocate(bytes, &ptr);
    if (!status)
      return reinterpret_cast<void *>(ptr);
    record(status);
  }
  if (moert::allocationTrap)
    std::longjmp(*moert::allocationTrap, 1);
  return nullptr;
}

void *moert_device_aligned_alloc(size_t alignment, size_t bytes) {
  // Pool blocks are multiples of 256 bytes from driver allocations, which
  // are at least 256-byte aligned.
  if (alignment > 256) {
    record(moert_status_make(MOERT_INTERNAL,
                             "compiled code asked for %zu-byte alignment",
                             alignment));
    if (moert::allocationTrap)
      std::longjmp(*moert::allocationTrap, 1);
    return nullptr;
  }
  return moert_device_malloc(bytes);
}

void moert_device_free(void *ptr) {
  if (current && ptr)
    current->release(reinterpret_cast<CUdeviceptr>(ptr));
}

} // extern "C"
