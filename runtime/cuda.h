//===- cuda.h - The CUDA driver API, loaded at run time ---------*- C++ -*-===//
//
// The runtime reaches NVIDIA GPUs only through the CUDA driver API, which it
// loads with dlopen (libcuda.so.1, or the file $MOERT_CUDA_DRIVER names), so
// that it builds and runs where no driver or toolkit is installed. The few
// driver types and constants used are declared here rather than taken from
// cuda.h for the same reason. Internal to the runtime; the C API exposes
// device queries (moert.h) and, later, models placed on a device.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_CUDA_H
#define MOE_RUNTIME_CUDA_H

#include "moe/Runtime/moert.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

// The driver's opaque handle types, at global scope as cuda.h declares them,
// so that entry points typed with them match the driver's (and the test
// stub's) own declarations, down to UBSan's function type check.
struct CUctx_st;
struct CUmod_st;
struct CUfunc_st;
struct CUstream_st;
struct CUevent_st;

namespace moert::cuda {

// The driver API's types, as cuda.h declares them (ABI-stable).
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = ::CUctx_st *;
using CUmodule = ::CUmod_st *;
using CUfunction = ::CUfunc_st *;
using CUstream = ::CUstream_st *;
using CUevent = ::CUevent_st *;

constexpr CUresult CUDA_SUCCESS = 0;
constexpr CUresult CUDA_ERROR_OUT_OF_MEMORY = 2;
constexpr CUresult CUDA_ERROR_NO_DEVICE = 100;
constexpr unsigned CU_MEM_ATTACH_GLOBAL = 1;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
constexpr int CU_JIT_INFO_LOG_BUFFER = 3;
constexpr int CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4;
constexpr int CU_JIT_ERROR_LOG_BUFFER = 5;
constexpr int CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;

/// The driver entry points the runtime uses, resolved from the library.
struct Driver {
  CUresult (*cuInit)(unsigned);
  CUresult (*cuDriverGetVersion)(int *);
  CUresult (*cuGetErrorName)(CUresult, const char **);
  CUresult (*cuGetErrorString)(CUresult, const char **);
  CUresult (*cuDeviceGetCount)(int *);
  CUresult (*cuDeviceGet)(CUdevice *, int);
  CUresult (*cuDeviceGetName)(char *, int, CUdevice);
  CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice);
  CUresult (*cuDeviceTotalMem)(size_t *, CUdevice);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*cuDevicePrimaryCtxRelease)(CUdevice);
  CUresult (*cuCtxSetCurrent)(CUcontext);
  CUresult (*cuMemGetInfo)(size_t *, size_t *);
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
  CUresult (*cuMemAllocManaged)(CUdeviceptr *, size_t, unsigned);
  CUresult (*cuMemFree)(CUdeviceptr);
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);
  CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
  CUresult (*cuMemAllocHost)(void **, size_t);
  CUresult (*cuMemFreeHost)(void *);
  CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
  CUresult (*cuEventCreate)(CUevent *, unsigned);
  CUresult (*cuEventDestroy)(CUevent);
  CUresult (*cuEventRecord)(CUevent, CUstream);
  CUresult (*cuEventSynchronize)(CUevent);
  CUresult (*cuStreamCreate)(CUstream *, unsigned);
  CUresult (*cuStreamDestroy)(CUstream);
  CUresult (*cuStreamSynchronize)(CUstream);
  CUresult (*cuModuleLoadDataEx)(CUmodule *, const void *, unsigned, int *,
                                 void **);
  CUresult (*cuModuleUnload)(CUmodule);
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned,
                             unsigned, unsigned, unsigned, unsigned, CUstream,
                             void **, void **);

  /// Opens the driver library at `path` (NULL: $MOERT_CUDA_DRIVER, else
  /// libcuda.so.1), resolves every entry point and initialises it. Errors
  /// say what is missing and suggest --device=cpu.
  static moert_status open(const char *path, std::shared_ptr<Driver> *out);
  ~Driver();

  /// NULL for CUDA_SUCCESS, else an error naming `what` and the driver's
  /// name and description of `result`.
  moert_status check(CUresult result, const char *what) const;

  void *handle = nullptr;
};

/// One device in use: its primary context, one stream, and a memory pool
/// that keeps freed blocks for reuse instead of returning them to the
/// driver.
class Context {
public:
  /// `managed`: the pool hands out CUDA managed memory, which host and
  /// device both address (what compiled CUDA artifacts run on).
  static moert_status create(std::shared_ptr<Driver> driver, int ordinal,
                             std::unique_ptr<Context> *out,
                             bool managed = false);
  ~Context();

  /// `bytes` of device memory, from the pool when a freed block fits. When
  /// the device is full, the pool's free blocks are returned to the driver
  /// and the allocation retried once; failing that, the error says how
  /// much was needed and how much is free.
  moert_status allocate(uint64_t bytes, CUdeviceptr *out);
  /// Gives a block back to the pool.
  void release(CUdeviceptr ptr);
  /// Fails with MOERT_OUT_OF_MEMORY, naming `what`, unless `bytes` fit in
  /// what the device has free plus the pool's cached blocks: called with a
  /// model's whole footprint (weights and KV cache) before allocating any
  /// of it, so that a model too large fails before minutes of uploads.
  moert_status checkFits(uint64_t bytes, const std::string &what);
  moert_status upload(CUdeviceptr dst, const void *src, uint64_t bytes);
  /// Like upload, for large host sources (mapped checkpoint shards): the
  /// bytes go through two pinned staging buffers, one filled while the
  /// other is copied to the device, so the copy runs at DMA speed instead
  /// of the driver's pageable-memory path. Returns once all bytes are on
  /// the device.
  moert_status uploadStaged(CUdeviceptr dst, const void *src, uint64_t bytes);
  moert_status download(void *dst, CUdeviceptr src, uint64_t bytes);
  /// JIT-compiles PTX for this device; on failure the error carries the
  /// JIT's log.
  moert_status loadModule(const std::string &ptx, CUmodule *out);

  /// The device's compute capability, e.g. {9, 0}.
  moert_status computeCapability(int *major, int *minor) const;
  /// Makes this context current on the calling thread.
  void makeCurrent() const;

  uint64_t bytesInUse() const { return inUse; }
  uint64_t bytesReserved() const { return reserved; }
  CUstream stream() const { return stream_; }
  const Driver &driver() const { return *drv; }

private:
  Context() = default;
  std::shared_ptr<Driver> drv;
  CUdevice device = 0;
  CUcontext context = nullptr;
  CUstream stream_ = nullptr;
  bool managed = false;
  /// uploadStaged's pinned buffers and the events that say when each may
  /// be refilled; made on first use, freed with the context.
  static constexpr uint64_t kStagingBytes = uint64_t(32) << 20;
  void *staging[2] = {nullptr, nullptr};
  CUevent stagingDone[2] = {nullptr, nullptr};
  struct Block {
    uint64_t size;
    bool free;
  };
  /// Free blocks by size, and every block the pool holds.
  std::multimap<uint64_t, CUdeviceptr> freeBlocks;
  std::unordered_map<CUdeviceptr, Block> blocks;
  uint64_t inUse = 0, reserved = 0;
};

/// Makes `context` the device that compiled CUDA code on this thread loads
/// its PTX on, launches on and allocates from (gpu_launch.cpp), for the
/// scope's lifetime. Those entry points cannot return errors: they record
/// the first one, which takeError() hands over (null if none), and skip
/// their work once one is recorded.
class DeviceScope {
public:
  explicit DeviceScope(Context *context);
  ~DeviceScope();
  DeviceScope(const DeviceScope &) = delete;
  DeviceScope &operator=(const DeviceScope &) = delete;
  /// The first error recorded in this scope, after waiting for the work
  /// queued on the stream (asynchronous errors surface there).
  moert_status takeError();

private:
  Context *previous;
};

/// With $MOERT_CUDA_PROFILE set (to anything but "" or "0"), each launch of
/// compiled code is timed on its own: the stream is synchronised after it,
/// and the wall time from the launch to its end (launch overhead included)
/// is added to its kernel's total. At exit the runtime prints the totals to
/// stderr, slowest first, unless they were taken. Serialising the launches
/// costs little here, since compiled code waits for each one anyway.
/// Returns the totals as that table and clears them.
std::string takeKernelProfile();

} // namespace moert::cuda

#endif // MOE_RUNTIME_CUDA_H
