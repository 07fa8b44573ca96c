//===- cuda.cpp - The CUDA driver API, loaded at run time -----------------===//

#include "cuda.h"

#include <dlfcn.h>

#include <algorithm>

#include <cstdlib>
#include <cstring>
#include <vector>

using namespace moert::cuda;

namespace {
const char *const kHint = "; run on the CPU with --device=cpu";

/// Resolves `symbol` into `slot`; false when the library lacks it.
template <typename Fn>
bool resolve(void *handle, const char *symbol, Fn &slot) {
  slot = reinterpret_cast<Fn>(dlsym(handle, symbol));
  return slot != nullptr;
}

/// Blocks are carved in multiples of this, so that sizes that differ a
/// little share freed blocks.
constexpr uint64_t kGranule = 256;
} // namespace

moert_status Driver::open(const char *path, std::shared_ptr<Driver> *out) {
  if (!path)
    path = std::getenv("MOERT_CUDA_DRIVER");
  if (!path || !*path)
    path = "libcuda.so.1";
  void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!handle)
    return moert_status_make(MOERT_NOT_FOUND,
                             "no NVIDIA driver: cannot load %s (%s)%s", path,
                             dlerror(), kHint);
  auto driver = std::make_shared<Driver>();
  driver->handle = handle;
  struct Entry {
    const char *symbol;
    bool ok;
  };
  Driver &d = *driver;
  // {symbol, resolved}: the _v2 symbols are the ABI cuda.h maps to.
#define MOERT_RESOLVE(field, symbol)                                           \
  { symbol, resolve(handle, symbol, d.field) }
  const Entry entries[] = {
      MOERT_RESOLVE(cuInit, "cuInit"),
      MOERT_RESOLVE(cuDriverGetVersion, "cuDriverGetVersion"),
      MOERT_RESOLVE(cuGetErrorName, "cuGetErrorName"),
      MOERT_RESOLVE(cuGetErrorString, "cuGetErrorString"),
      MOERT_RESOLVE(cuDeviceGetCount, "cuDeviceGetCount"),
      MOERT_RESOLVE(cuDeviceGet, "cuDeviceGet"),
      MOERT_RESOLVE(cuDeviceGetName, "cuDeviceGetName"),
      MOERT_RESOLVE(cuDeviceGetAttribute, "cuDeviceGetAttribute"),
      MOERT_RESOLVE(cuDeviceTotalMem, "cuDeviceTotalMem_v2"),
      MOERT_RESOLVE(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
      MOERT_RESOLVE(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"),
      MOERT_RESOLVE(cuCtxSetCurrent, "cuCtxSetCurrent"),
      MOERT_RESOLVE(cuMemGetInfo, "cuMemGetInfo_v2"),
      MOERT_RESOLVE(cuMemAlloc, "cuMemAlloc_v2"),
      MOERT_RESOLVE(cuMemAllocManaged, "cuMemAllocManaged"),
      MOERT_RESOLVE(cuMemFree, "cuMemFree_v2"),
      MOERT_RESOLVE(cuMemcpyHtoD, "cuMemcpyHtoD_v2"),
      MOERT_RESOLVE(cuMemcpyDtoH, "cuMemcpyDtoH_v2"),
      MOERT_RESOLVE(cuMemAllocHost, "cuMemAllocHost_v2"),
      MOERT_RESOLVE(cuMemFreeHost, "cuMemFreeHost"),
      MOERT_RESOLVE(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"),
      MOERT_RESOLVE(cuEventCreate, "cuEventCreate"),
      MOERT_RESOLVE(cuEventDestroy, "cuEventDestroy_v2"),
      MOERT_RESOLVE(cuEventRecord, "cuEventRecord"),
      MOERT_RESOLVE(cuEventSynchronize, "cuEventSynchronize"),
      MOERT_RESOLVE(cuStreamCreate, "cuStreamCreate"),
      MOERT_RESOLVE(cuStreamDestroy, "cuStreamDestroy_v2"),
      MOERT_RESOLVE(cuStreamSynchronize, "cuStreamSynchronize"),
      MOERT_RESOLVE(cuModuleLoadDataEx, "cuModuleLoadDataEx"),
      MOERT_RESOLVE(cuModuleUnload, "cuModuleUnload"),
      MOERT_RESOLVE(cuModuleGetFunction, "cuModuleGetFunction"),
      MOERT_RESOLVE(cuLaunchKernel, "cuLaunchKernel"),
  };
#undef MOERT_RESOLVE

  for (const Entry &entry : entries)
    if (!entry.ok)
      return moert_status_make(MOERT_NOT_FOUND,
                               "the NVIDIA driver %s lacks %s (too old?)%s",
                               path, entry.symbol, kHint);
  CUresult init = d.cuInit(0);
  if (init == CUDA_ERROR_NO_DEVICE)
    return moert_status_make(MOERT_NOT_FOUND, "no CUDA device%s", kHint);
  if (moert_status status = d.check(init, "initialising the driver"))
    return status;
  *out = std::move(driver);
  return nullptr;
}

Driver::~Driver() {
  if (handle)
    dlclose(handle);
}

moert_status Driver::check(CUresult result, const char *what) const {
  if (result == CUDA_SUCCESS)
    return nullptr;
  const char *name = nullptr, *text = nullptr;
  if (cuGetErrorName(result, &name) != CUDA_SUCCESS || !name)
    name = "unknown error";
  if (cuGetErrorString(result, &text) != CUDA_SUCCESS || !text)
    text = "";
  moert_status_code code =
      result == CUDA_ERROR_OUT_OF_MEMORY ? MOERT_OUT_OF_MEMORY : MOERT_INTERNAL;
  return moert_status_make(code, "CUDA: %s failed: %s (%d)%s%s", what, name,
                           result, *text ? ": " : "", text);
}

moert_status Context::create(std::shared_ptr<Driver> driver, int ordinal,
                             std::unique_ptr<Context> *out, bool managed) {
  const Driver &d = *driver;
  int count = 0;
  if (moert_status status =
          d.check(d.cuDeviceGetCount(&count), "counting devices"))
    return status;
  if (count == 0)
    return moert_status_make(MOERT_NOT_FOUND, "no CUDA device%s", kHint);
  if (ordinal < 0 || ordinal >= count)
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "CUDA device %d does not exist (%d device%s)",
                             ordinal, count, count == 1 ? "" : "s");
  std::unique_ptr<Context> context(new Context());
  context->drv = std::move(driver);
  context->managed = managed;
  if (moert_status status =
          d.check(d.cuDeviceGet(&context->device, ordinal), "cuDeviceGet"))
    return status;
  if (moert_status status = d.check(
          d.cuDevicePrimaryCtxRetain(&context->context, context->device),
          "creating the device context"))
    return status;
  if (moert_status status = d.check(d.cuCtxSetCurrent(context->context),
                                    "making the context current"))
    return status;
  if (moert_status status = d.check(d.cuStreamCreate(&context->stream_, 0),
                                    "creating the stream"))
    return status;
  *out = std::move(context);
  return nullptr;
}

Context::~Context() {
  if (!drv)
    return;
  for (int i = 0; i < 2; ++i) {
    if (stagingDone[i])
      drv->cuEventDestroy(stagingDone[i]);
    if (staging[i])
      drv->cuMemFreeHost(staging[i]);
  }
  for (auto &[ptr, block] : blocks)
    drv->cuMemFree(ptr);
  if (stream_)
    drv->cuStreamDestroy(stream_);
  if (context)
    drv->cuDevicePrimaryCtxRelease(device);
}

moert_status Context::allocate(uint64_t bytes, CUdeviceptr *out) {
  uint64_t size =
      bytes == 0 ? kGranule : (bytes + kGranule - 1) / kGranule * kGranule;
  // The smallest free block that fits, if it wastes at most half of itself.
  auto it = freeBlocks.lower_bound(size);
  if (it != freeBlocks.end() && it->first <= 2 * size) {
    *out = it->second;
    inUse += it->first;
    blocks[it->second].free = false;
    freeBlocks.erase(it);
    return nullptr;
  }
  drv->cuCtxSetCurrent(context);
  CUdeviceptr ptr = 0;
  auto driverAllocate = [&] {
    return managed ? drv->cuMemAllocManaged(&ptr, size, CU_MEM_ATTACH_GLOBAL)
                   : drv->cuMemAlloc(&ptr, size);
  };
  CUresult result = driverAllocate();
  if (result == CUDA_ERROR_OUT_OF_MEMORY && !freeBlocks.empty()) {
    // Hand the cached blocks back and try once more.
    for (auto &[blockBytes, block] : freeBlocks) {
      drv->cuMemFree(block);
      blocks.erase(block);
      reserved -= blockBytes;
    }
    freeBlocks.clear();
    result = driverAllocate();
  }
  if (result == CUDA_ERROR_OUT_OF_MEMORY) {
    size_t freeBytes = 0, totalBytes = 0;
    drv->cuMemGetInfo(&freeBytes, &totalBytes);
    return moert_status_make(
        MOERT_OUT_OF_MEMORY,
        "out of GPU memory: %llu bytes needed, %llu free of %llu (this "
        "runtime holds %llu)",
        (unsigned long long)size, (unsigned long long)freeBytes,
        (unsigned long long)totalBytes, (unsigned long long)reserved);
  }
  if (moert_status status = drv->check(result, "cuMemAlloc"))
    return status;
  blocks[ptr] = {size, false};
  reserved += size;
  inUse += size;
  *out = ptr;
  return nullptr;
}

void Context::release(CUdeviceptr ptr) {
  auto it = blocks.find(ptr);
  if (it == blocks.end() || it->second.free)
    return; // Not ours, or released already.
  it->second.free = true;
  inUse -= it->second.size;
  freeBlocks.insert({it->second.size, ptr});
}

moert_status Context::computeCapability(int *major, int *minor) const {
  if (moert_status status = drv->check(
          drv->cuDeviceGetAttribute(
              major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device),
          "cuDeviceGetAttribute"))
    return status;
  return drv->check(drv->cuDeviceGetAttribute(
                        minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                        device),
                    "cuDeviceGetAttribute");
}

void Context::makeCurrent() const { drv->cuCtxSetCurrent(context); }

moert_status Context::checkFits(uint64_t bytes, const std::string &what) {
  drv->cuCtxSetCurrent(context);
  size_t freeBytes = 0, totalBytes = 0;
  if (moert_status status =
          drv->check(drv->cuMemGetInfo(&freeBytes, &totalBytes), "cuMemGetInfo"))
    return status;
  uint64_t cached = 0;
  for (const auto &entry : freeBlocks)
    cached += entry.first;
  if (bytes <= freeBytes + cached)
    return nullptr;
  return moert_status_make(
      MOERT_OUT_OF_MEMORY,
      "%s needs %llu bytes of GPU memory, but %llu are free of %llu "
      "(this runtime holds %llu, %llu of them reusable)",
      what.c_str(), (unsigned long long)bytes,
      (unsigned long long)(freeBytes + cached),
      (unsigned long long)totalBytes, (unsigned long long)reserved,
      (unsigned long long)cached);
}

moert_status Context::upload(CUdeviceptr dst, const void *src, uint64_t bytes) {
  drv->cuCtxSetCurrent(context);
  return drv->check(drv->cuMemcpyHtoD(dst, src, bytes), "copying to the GPU");
}

moert_status Context::uploadStaged(CUdeviceptr dst, const void *src,
                                   uint64_t bytes) {
  if (bytes <= kStagingBytes / 4)
    return upload(dst, src, bytes); // Not worth a round through staging.
  drv->cuCtxSetCurrent(context);
  for (int i = 0; i < 2; ++i) {
    if (!staging[i])
      if (moert_status status = drv->check(
              drv->cuMemAllocHost(&staging[i], kStagingBytes),
              "allocating pinned staging memory"))
        return status;
    if (!stagingDone[i])
      if (moert_status status = drv->check(
              drv->cuEventCreate(&stagingDone[i], 0), "cuEventCreate"))
        return status;
  }
  const char *from = static_cast<const char *>(src);
  for (uint64_t at = 0, slice = 0; at < bytes; at += kStagingBytes, ++slice) {
    int i = int(slice % 2);
    uint64_t n = std::min(kStagingBytes, bytes - at);
    // The buffer's previous copy (two slices ago) must be done first.
    if (slice >= 2)
      if (moert_status status = drv->check(
              drv->cuEventSynchronize(stagingDone[i]), "waiting for a copy"))
        return status;
    std::memcpy(staging[i], from + at, n);
    if (moert_status status = drv->check(
            drv->cuMemcpyHtoDAsync(dst + at, staging[i], n, stream_),
            "copying to the GPU"))
      return status;
    if (moert_status status = drv->check(
            drv->cuEventRecord(stagingDone[i], stream_), "cuEventRecord"))
      return status;
  }
  return drv->check(drv->cuStreamSynchronize(stream_), "copying to the GPU");
}

moert_status Context::download(void *dst, CUdeviceptr src, uint64_t bytes) {
  drv->cuCtxSetCurrent(context);
  return drv->check(drv->cuMemcpyDtoH(dst, src, bytes), "copying from the GPU");
}

moert_status Context::loadModule(const std::string &ptx, CUmodule *out) {
  drv->cuCtxSetCurrent(context);
  std::vector<char> info(16384, '\0'), error(16384, '\0');
  int options[] = {CU_JIT_INFO_LOG_BUFFER, CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES,
                   CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *values[] = {
      info.data(), reinterpret_cast<void *>(uintptr_t(info.size() - 1)),
      error.data(), reinterpret_cast<void *>(uintptr_t(error.size() - 1))};
  CUresult result =
      drv->cuModuleLoadDataEx(out, ptx.c_str(), 4, options, values);
  if (result == CUDA_SUCCESS)
    return nullptr;
  moert_status failure = drv->check(result, "JIT-compiling the PTX");
  // One line: the JIT log's non-empty lines joined with "; ".
  std::string log;
  const char *line = error.data();
  while (*line) {
    const char *end = std::strchr(line, '\n');
    size_t length = end ? size_t(end - line) : std::strlen(line);
    if (length) {
      if (!log.empty())
        log += "; ";
      log.append(line, length);
    }
    line += length + (end ? 1 : 0);
  }
  moert_status status = moert_status_make(
      moert_status_get_code(failure), "%s; JIT log: %s",
      moert_status_message(failure), log.empty() ? "(empty)" : log.c_str());
  moert_status_free(failure);
  return status;
}

//===----------------------------------------------------------------------===//
// C API
//===----------------------------------------------------------------------===//

extern "C" moert_status moert_cuda_device_count(int *count) {
  if (!count)
    return moert_status_make(MOERT_INVALID_ARGUMENT, "count is NULL");
  std::shared_ptr<Driver> driver;
  if (moert_status status = Driver::open(nullptr, &driver))
    return status;
  if (moert_status status =
          driver->check(driver->cuDeviceGetCount(count), "counting devices"))
    return status;
  if (*count == 0)
    return moert_status_make(MOERT_NOT_FOUND, "no CUDA device%s", kHint);
  return nullptr;
}

extern "C" moert_status
moert_cuda_device_info_get(int ordinal, moert_cuda_device_info *out) {
  if (!out)
    return moert_status_make(MOERT_INVALID_ARGUMENT, "out is NULL");
  std::shared_ptr<Driver> driver;
  if (moert_status status = Driver::open(nullptr, &driver))
    return status;
  std::unique_ptr<Context> context;
  if (moert_status status = Context::create(driver, ordinal, &context))
    return status;
  const Driver &d = *driver;
  std::memset(out, 0, sizeof(*out));
  out->ordinal = ordinal;
  CUdevice device;
  size_t total = 0, freeBytes = 0, totalNow = 0;
  // Each query in turn; the first failure is the error (later ones are
  // not made).
  moert_status status = nullptr;
  auto ok = [&](CUresult result, const char *what) {
    status = d.check(result, what);
    return status == nullptr;
  };
  if (!(ok(d.cuDeviceGet(&device, ordinal), "cuDeviceGet") &&
        ok(d.cuDeviceGetName(out->name, sizeof(out->name) - 1, device),
           "cuDeviceGetName") &&
        ok(d.cuDeviceGetAttribute(&out->compute_major,
                                  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                  device),
           "cuDeviceGetAttribute") &&
        ok(d.cuDeviceGetAttribute(&out->compute_minor,
                                  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                  device),
           "cuDeviceGetAttribute") &&
        ok(d.cuDeviceTotalMem(&total, device), "cuDeviceTotalMem") &&
        ok(d.cuMemGetInfo(&freeBytes, &totalNow), "cuMemGetInfo") &&
        ok(d.cuDriverGetVersion(&out->driver_version), "cuDriverGetVersion")))
    return status;
  out->total_memory = total;
  out->free_memory = freeBytes;
  return nullptr;
}
