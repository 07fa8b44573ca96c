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
// aborting, since none of these functions can return one. With
// $MOERT_CUDA_PROFILE set, it also times each launch (takeKernelProfile).
//
//===----------------------------------------------------------------------===//

#include "cuda.h"
#include "model_impl.h"

#include <algorithm>
#include <chrono>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

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

/// Per-kernel totals for takeKernelProfile.
struct KernelTotals {
  std::string name;
  uint64_t launches = 0;
  double seconds = 0;
  uint64_t threads = 0; // Of the last launch.
};
std::mutex profileMutex;
std::unordered_map<void *, KernelTotals> profile;

bool profiling() {
  const char *value = std::getenv("MOERT_CUDA_PROFILE");
  return value && *value && std::strcmp(value, "0") != 0;
}

void printProfileAtExit() {
  std::string table = moert::cuda::takeKernelProfile();
  if (!table.empty())
    std::fputs(table.c_str(), stderr);
}
} // namespace

std::string moert::cuda::takeKernelProfile() {
  std::vector<KernelTotals> rows;
  {
    std::lock_guard<std::mutex> lock(profileMutex);
    // Names stay: compiled code may hold its functions across the take.
    for (auto &entry : profile)
      if (entry.second.launches) {
        rows.push_back(entry.second);
        entry.second = {entry.second.name};
      }
  }
  if (rows.empty())
    return {};
  std::sort(rows.begin(), rows.end(),
            [](const KernelTotals &a, const KernelTotals &b) {
              return a.seconds > b.seconds;
            });
  double total = 0;
  uint64_t launches = 0;
  for (const KernelTotals &row : rows) {
    total += row.seconds;
    launches += row.launches;
  }
  char line[512];
  std::snprintf(line, sizeof line,
                "moert: CUDA kernel profile: %llu launches of %zu kernels, "
                "%.3f ms from launch to end\n%10s %6s %9s %10s  %s\n",
                (unsigned long long)launches, rows.size(), total * 1e3, "ms",
                "%", "launches", "threads", "kernel");
  std::string table = line;
  for (const KernelTotals &row : rows) {
    std::snprintf(line, sizeof line, "%10.3f %6.1f %9llu %10llu  %s\n",
                  row.seconds * 1e3, total > 0 ? 100 * row.seconds / total : 0,
                  (unsigned long long)row.launches,
                  (unsigned long long)row.threads, row.name.c_str());
    table += line;
  }
  return table;
}

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
  if (function && profiling()) {
    std::lock_guard<std::mutex> lock(profileMutex);
    profile[function].name = name;
  }
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
  const Driver &drv = context->driver();
  bool timed = profiling();
  if (timed) {
    // Work queued before this launch is not its time.
    record(drv.check(drv.cuStreamSynchronize(static_cast<CUstream>(stream)),
                     "running a kernel"));
    if (pending)
      return;
  }
  auto start = std::chrono::steady_clock::now();
  record(drv.check(drv.cuLaunchKernel(static_cast<CUfunction>(function),
                                      unsigned(gridX), unsigned(gridY),
                                      unsigned(gridZ), unsigned(blockX),
                                      unsigned(blockY), unsigned(blockZ),
                                      unsigned(sharedBytes),
                                      static_cast<CUstream>(stream), params,
                                      extra),
                   "launching a kernel"));
  if (!timed || pending)
    return;
  record(drv.check(drv.cuStreamSynchronize(static_cast<CUstream>(stream)),
                   "running a kernel"));
  std::chrono::duration<double> seconds =
      std::chrono::steady_clock::now() - start;
  static std::once_flag atExit;
  std::call_once(atExit, [] { std::atexit(printProfileAtExit); });
  std::lock_guard<std::mutex> lock(profileMutex);
  KernelTotals &totals = profile[function];
  if (totals.name.empty())
    totals.name = "(unnamed)";
  totals.launches += 1;
  totals.seconds += seconds.count();
  totals.threads = uint64_t(gridX) * gridY * gridZ * blockX * blockY * blockZ;
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
