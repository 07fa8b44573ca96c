//===- CudaRuntimeTest.cpp - The runtime's CUDA host logic, on a stub -----===//
//
// Runs the runtime's driver loading, error reporting, memory pool and JIT
// error path against CudaDriverStub.c, a fake driver on host memory, so
// that they are tested where there is no GPU. On a machine with a GPU,
// scripts/gpu-check.sh (issue 6) runs the real driver.
//
//===----------------------------------------------------------------------===//

#include "cuda.h"

#include "gtest/gtest.h"

// What compiled CUDA code calls (runtime/gpu_launch.cpp).
extern "C" {
void *mgpuModuleLoadJIT(void *data, int optLevel);
void mgpuModuleUnload(void *module);
void *mgpuModuleGetFunction(void *module, const char *name);
void *mgpuStreamCreate();
void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
                      intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                      intptr_t blockZ, int32_t sharedBytes, void *stream,
                      void **params, void **extra, size_t paramCount);
void *moert_device_malloc(size_t bytes);
void moert_device_free(void *ptr);
}

#include <cstdlib>
#include <dlfcn.h>
#include <vector>
#include <cstring>
#include <string>

using namespace moert::cuda;

namespace {
/// Takes ownership of a status: its code and message, and frees it.
struct Result {
  moert_status_code code;
  std::string message;
  explicit Result(moert_status status)
      : code(moert_status_get_code(status)),
        message(moert_status_message(status)) {
    moert_status_free(status);
  }
};

class CudaRuntimeTest : public ::testing::Test {
protected:
  void SetUp() override {
    unsetenv("MOERT_STUB_DEVICES");
    unsetenv("MOERT_STUB_MEMORY");
    unsetenv("MOERT_STUB_JIT_LOG");
  }
  std::shared_ptr<Driver> openStub() {
    std::shared_ptr<Driver> driver;
    Result r(Driver::open(MOERT_CUDA_STUB_PATH, &driver));
    EXPECT_EQ(r.code, MOERT_OK) << r.message;
    return driver;
  }
  std::unique_ptr<Context> context() {
    std::unique_ptr<Context> ctx;
    Result r(Context::create(openStub(), 0, &ctx));
    EXPECT_EQ(r.code, MOERT_OK) << r.message;
    return ctx;
  }
};

TEST_F(CudaRuntimeTest, NoDriverSuggestsTheCPU) {
  std::shared_ptr<Driver> driver;
  Result r(Driver::open("/nonexistent/libcuda.so.1", &driver));
  EXPECT_EQ(r.code, MOERT_NOT_FOUND);
  EXPECT_NE(r.message.find("no NVIDIA driver: cannot load "
                           "/nonexistent/libcuda.so.1"),
            std::string::npos)
      << r.message;
  EXPECT_NE(r.message.find("run on the CPU with --device=cpu"),
            std::string::npos);
  EXPECT_EQ(driver, nullptr);
}

TEST_F(CudaRuntimeTest, NoDeviceSuggestsTheCPU) {
  setenv("MOERT_STUB_DEVICES", "0", 1);
  std::shared_ptr<Driver> driver;
  Result r(Driver::open(MOERT_CUDA_STUB_PATH, &driver));
  EXPECT_EQ(r.code, MOERT_NOT_FOUND);
  EXPECT_EQ(r.message, "no CUDA device; run on the CPU with --device=cpu");
}

TEST_F(CudaRuntimeTest, DeviceInfoThroughTheCAPI) {
  setenv("MOERT_CUDA_DRIVER", MOERT_CUDA_STUB_PATH, 1);
  setenv("MOERT_STUB_MEMORY", "8192", 1);
  int count = 0;
  Result c(moert_cuda_device_count(&count));
  ASSERT_EQ(c.code, MOERT_OK) << c.message;
  EXPECT_EQ(count, 1);
  moert_cuda_device_info info;
  Result r(moert_cuda_device_info_get(0, &info));
  ASSERT_EQ(r.code, MOERT_OK) << r.message;
  EXPECT_STREQ(info.name, "Stub GPU");
  EXPECT_EQ(info.compute_major, 9);
  EXPECT_EQ(info.compute_minor, 0);
  EXPECT_EQ(info.total_memory, 8192u);
  EXPECT_EQ(info.free_memory, 8192u);
  EXPECT_EQ(info.driver_version, 12080);
  Result bad(moert_cuda_device_info_get(3, &info));
  EXPECT_EQ(bad.code, MOERT_INVALID_ARGUMENT);
  EXPECT_EQ(bad.message, "CUDA device 3 does not exist (1 device)");
  unsetenv("MOERT_CUDA_DRIVER");
}

TEST_F(CudaRuntimeTest, PoolReusesFreedBlocks) {
  std::unique_ptr<Context> ctx = context();
  ASSERT_TRUE(ctx);
  CUdeviceptr a = 0, b = 0, c = 0;
  ASSERT_EQ(Result(ctx->allocate(1000, &a)).code, MOERT_OK);
  EXPECT_EQ(ctx->bytesInUse(), 1024u); // rounded up to the 256-byte granule
  ctx->release(a);
  ctx->release(a); // a second release is ignored
  EXPECT_EQ(ctx->bytesInUse(), 0u);
  ASSERT_EQ(Result(ctx->allocate(900, &b)).code, MOERT_OK);
  EXPECT_EQ(b, a); // the freed block, not a new one
  ASSERT_EQ(Result(ctx->allocate(900, &c)).code, MOERT_OK);
  EXPECT_NE(c, a); // in use: a new block
  EXPECT_EQ(ctx->bytesReserved(), 2048u);
  // A freed block more than twice the request is not handed out.
  ctx->release(b);
  CUdeviceptr small = 0;
  ASSERT_EQ(Result(ctx->allocate(256, &small)).code, MOERT_OK);
  EXPECT_NE(small, b);
}

TEST_F(CudaRuntimeTest, OutOfMemoryTrimsThePoolThenSaysWhatWasNeeded) {
  setenv("MOERT_STUB_MEMORY", "4096", 1);
  std::unique_ptr<Context> ctx = context();
  ASSERT_TRUE(ctx);
  CUdeviceptr a = 0, b = 0, c = 0;
  ASSERT_EQ(Result(ctx->allocate(2048, &a)).code, MOERT_OK);
  ctx->release(a); // cached by the pool, still held from the driver
  // 4096 only fits once the cached block is returned to the driver.
  Result big(ctx->allocate(4096, &b));
  ASSERT_EQ(big.code, MOERT_OK) << big.message;
  EXPECT_EQ(ctx->bytesReserved(), 4096u);
  Result none(ctx->allocate(1, &c));
  EXPECT_EQ(none.code, MOERT_OUT_OF_MEMORY);
  EXPECT_EQ(none.message, "out of GPU memory: 256 bytes needed, 0 free of "
                          "4096 (this runtime holds 4096)");
}

TEST_F(CudaRuntimeTest, CheckFitsCountsFreeAndReusableMemory) {
  setenv("MOERT_STUB_MEMORY", "8192", 1);
  std::unique_ptr<Context> ctx = context();
  ASSERT_TRUE(ctx);
  CUdeviceptr a = 0, b = 0;
  ASSERT_EQ(Result(ctx->allocate(2048, &a)).code, MOERT_OK);
  ASSERT_EQ(Result(ctx->allocate(2048, &b)).code, MOERT_OK);
  ctx->release(a); // reusable: counts as available
  EXPECT_EQ(Result(ctx->checkFits(6144, "weights")).code, MOERT_OK);
  Result tooBig(ctx->checkFits(6145, "m.moec: weights and KV cache"));
  EXPECT_EQ(tooBig.code, MOERT_OUT_OF_MEMORY);
  EXPECT_EQ(tooBig.message,
            "m.moec: weights and KV cache needs 6145 bytes of GPU memory, but "
            "6144 are free of 8192 (this runtime holds 4096, 2048 of them "
            "reusable)");
}

TEST_F(CudaRuntimeTest, CopiesRoundTrip) {
  std::unique_ptr<Context> ctx = context();
  ASSERT_TRUE(ctx);
  CUdeviceptr p = 0;
  ASSERT_EQ(Result(ctx->allocate(64, &p)).code, MOERT_OK);
  char in[64], out[64] = {};
  for (int i = 0; i < 64; ++i)
    in[i] = static_cast<char>(i * 3);
  ASSERT_EQ(Result(ctx->upload(p, in, sizeof(in))).code, MOERT_OK);
  ASSERT_EQ(Result(ctx->download(out, p, sizeof(out))).code, MOERT_OK);
  EXPECT_EQ(std::memcmp(in, out, sizeof(in)), 0);
}

TEST_F(CudaRuntimeTest, JitFailureCarriesTheLog) {
  setenv("MOERT_STUB_JIT_LOG",
         "ptxas fatal   : Unresolved extern function 'moe_kernel'\n"
         "ptxas info    : 0 bytes gmem\n",
         1);
  std::unique_ptr<Context> ctx = context();
  ASSERT_TRUE(ctx);
  CUmodule module = nullptr;
  Result r(ctx->loadModule(".version 8.0\n.target sm_90\n", &module));
  EXPECT_EQ(r.code, MOERT_INTERNAL);
  EXPECT_EQ(r.message,
            "CUDA: JIT-compiling the PTX failed: CUDA_ERROR_INVALID_PTX (218): "
            "a PTX JIT compilation failed; JIT log: ptxas fatal   : "
            "Unresolved extern function 'moe_kernel'; ptxas info    : 0 bytes "
            "gmem");
}

TEST_F(CudaRuntimeTest, JitSuccess) {
  std::unique_ptr<Context> ctx = context();
  ASSERT_TRUE(ctx);
  CUmodule module = nullptr;
  EXPECT_EQ(Result(ctx->loadModule(".version 8.0\n", &module)).code, MOERT_OK);
  EXPECT_NE(module, nullptr);
  ctx->driver().cuModuleUnload(module);
}

const char kPTX[] = ".version 8.0\n.target sm_90a\n.address_size 64\n"
                    ".visible .entry scale_k0(\n.param .u64 p\n)\n{\nret;\n}\n";

TEST_F(CudaRuntimeTest, CompiledCodeLaunchesThroughTheScope) {
  std::unique_ptr<Context> ctx = context();
  ASSERT_TRUE(ctx);
  DeviceScope scope(ctx.get());
  void *module = mgpuModuleLoadJIT(const_cast<char *>(kPTX), 3);
  ASSERT_NE(module, nullptr);
  void *kernel = mgpuModuleGetFunction(module, "scale_k0");
  ASSERT_NE(kernel, nullptr);
  // One stream per model.
  EXPECT_EQ(mgpuStreamCreate(), ctx->stream());
  void *buffer = moert_device_malloc(1000);
  ASSERT_NE(buffer, nullptr);
  EXPECT_EQ(ctx->bytesInUse(), 1024u);
  void *params[] = {&buffer};
  mgpuLaunchKernel(kernel, 4, 1, 1, 128, 1, 1, 0, ctx->stream(), params,
                   nullptr, 1);
  moert_device_free(buffer);
  EXPECT_EQ(ctx->bytesInUse(), 0u);
  EXPECT_EQ(Result(scope.takeError()).code, MOERT_OK);
  mgpuModuleUnload(module);
}

TEST_F(CudaRuntimeTest, KernelProfileTimesEachLaunch) {
  std::unique_ptr<Context> ctx = context();
  ASSERT_TRUE(ctx);
  DeviceScope scope(ctx.get());
  void *module = mgpuModuleLoadJIT(const_cast<char *>(kPTX), 3);
  ASSERT_NE(module, nullptr);
  void *params[] = {nullptr};
  // Not profiled: nothing is kept.
  void *kernel = mgpuModuleGetFunction(module, "scale_k0");
  mgpuLaunchKernel(kernel, 1, 1, 1, 1, 1, 1, 0, ctx->stream(), params,
                   nullptr, 1);
  EXPECT_EQ(takeKernelProfile(), "");
  setenv("MOERT_CUDA_PROFILE", "1", 1);
  kernel = mgpuModuleGetFunction(module, "scale_k0");
  for (int i = 0; i < 3; ++i)
    mgpuLaunchKernel(kernel, 4, 2, 1, 128, 1, 1, 0, ctx->stream(), params,
                     nullptr, 1);
  std::string table = takeKernelProfile();
  EXPECT_NE(table.find("3 launches of 1 kernels"), std::string::npos) << table;
  // Launches, then threads of the last launch (4 x 2 blocks of 128).
  EXPECT_NE(table.find("  3       1024  scale_k0\n"), std::string::npos)
      << table;
  // Taken: cleared, but the name stays for the function already found.
  EXPECT_EQ(takeKernelProfile(), "");
  mgpuLaunchKernel(kernel, 1, 1, 1, 1, 1, 1, 0, ctx->stream(), params,
                   nullptr, 1);
  table = takeKernelProfile();
  EXPECT_NE(table.find("  1          1  scale_k0\n"), std::string::npos)
      << table;
  unsetenv("MOERT_CUDA_PROFILE");
  EXPECT_EQ(Result(scope.takeError()).code, MOERT_OK);
  mgpuModuleUnload(module);
}

TEST_F(CudaRuntimeTest, CompiledCodeErrorsAreKeptForTheScope) {
  std::unique_ptr<Context> ctx = context();
  ASSERT_TRUE(ctx);
  DeviceScope scope(ctx.get());
  void *module = mgpuModuleLoadJIT(const_cast<char *>(kPTX), 3);
  ASSERT_NE(module, nullptr);
  // A kernel the PTX lacks: recorded; the launch after it is skipped.
  EXPECT_EQ(mgpuModuleGetFunction(module, "missing_k1"), nullptr);
  void *params[] = {nullptr};
  mgpuLaunchKernel(mgpuModuleGetFunction(module, "scale_k0"), 1, 1, 1, 1, 1,
                   1, 0, ctx->stream(), params, nullptr, 1);
  Result r(scope.takeError());
  EXPECT_EQ(r.code, MOERT_INTERNAL);
  EXPECT_EQ(r.message, "CUDA: finding kernel missing_k1 failed: "
                       "CUDA_ERROR_NOT_FOUND (500): stub error");
  // Taken: the scope is clean again.
  EXPECT_EQ(Result(scope.takeError()).code, MOERT_OK);
  // A launch wider than a block may be is the driver's error.
  mgpuLaunchKernel(mgpuModuleGetFunction(module, "scale_k0"), 1, 1, 1, 2048,
                   1, 1, 0, ctx->stream(), params, nullptr, 1);
  EXPECT_EQ(Result(scope.takeError()).code, MOERT_INTERNAL);
  mgpuModuleUnload(module);
}

TEST_F(CudaRuntimeTest, CompiledCodeWithoutADevice) {
  {
    DeviceScope none(nullptr);
    EXPECT_EQ(mgpuModuleLoadJIT(const_cast<char *>(kPTX), 3), nullptr);
    Result r(none.takeError());
    EXPECT_EQ(r.code, MOERT_INTERNAL);
    EXPECT_NE(r.message.find("mgpuModuleLoadJIT outside a model loaded on a "
                             "device"),
              std::string::npos)
        << r.message;
  }
  // Without a scope at all, an allocation fails instead of touching a
  // device, and a later scope does not inherit the error.
  EXPECT_EQ(moert_device_malloc(64), nullptr);
  std::unique_ptr<Context> ctx = context();
  ASSERT_TRUE(ctx);
  DeviceScope scope(ctx.get());
  EXPECT_EQ(Result(scope.takeError()).code, MOERT_OK);
}

TEST_F(CudaRuntimeTest, LargeUploadsGoThroughPinnedStaging) {
  std::shared_ptr<Driver> driver = openStub();
  ASSERT_TRUE(driver);
  auto copies = reinterpret_cast<long (*)()>(
      dlsym(driver->handle, "moert_stub_pinned_copies"));
  ASSERT_NE(copies, nullptr);
  std::unique_ptr<Context> ctx;
  ASSERT_EQ(Result(Context::create(driver, 0, &ctx, /*managed=*/true)).code,
            MOERT_OK);
  // 100 MiB: four slices of the 32 MiB staging buffers, in order.
  const uint64_t bytes = uint64_t(100) << 20;
  std::vector<uint8_t> in(bytes);
  for (uint64_t i = 0; i < bytes; ++i)
    in[i] = uint8_t(i * 2654435761u >> 24);
  CUdeviceptr p = 0;
  ASSERT_EQ(Result(ctx->allocate(bytes, &p)).code, MOERT_OK);
  long before = copies();
  ASSERT_EQ(Result(ctx->uploadStaged(p, in.data(), bytes)).code, MOERT_OK);
  EXPECT_EQ(copies() - before, 4);
  EXPECT_EQ(std::memcmp(reinterpret_cast<void *>(p), in.data(), bytes), 0);
  // Small uploads go straight through.
  before = copies();
  ASSERT_EQ(Result(ctx->uploadStaged(p, in.data(), 4096)).code, MOERT_OK);
  EXPECT_EQ(copies() - before, 0);
}
} // namespace

