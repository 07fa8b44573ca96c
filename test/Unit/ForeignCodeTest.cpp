//===- ForeignCodeTest.cpp - Calls into code at the start of a page -------===//
//
// The runtime calls compiled code (entry points, parallel-loop tasks)
// through pointers. Under -fsanitize=function such a call reads the 8 bytes
// before its callee, which faulted in CI for a JIT'd task at the start of
// its code page (runtime/foreign_code.h). These tests place a callee at the
// start of a page whose predecessor is unmapped and call it the runtime's
// ways; in the sanitizer build they crash if the check comes back.
//
//===----------------------------------------------------------------------===//

#include "model_impl.h"

#include "moe/Runtime/moert_kernels.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <sys/mman.h>
#include <unistd.h>

namespace {

/// An executable page whose first byte is a function that atomically adds
/// one to the int64 its first argument points at, after an inaccessible
/// page. Null where that cannot be made.
class PageStartCallee {
public:
  PageStartCallee() {
#if defined(__x86_64__)
    page = sysconf(_SC_PAGESIZE);
    void *map =
        mmap(nullptr, 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
      return;
    base = static_cast<char *>(map);
    char *code = base + page;
    // lock add qword ptr [rdi], 1 ; ret
    const unsigned char bytes[] = {0xf0, 0x48, 0x83, 0x07, 0x01, 0xc3};
    if (mprotect(code, page, PROT_READ | PROT_WRITE) != 0)
      return;
    std::memcpy(code, bytes, sizeof bytes);
    if (mprotect(code, page, PROT_READ | PROT_EXEC) != 0)
      return;
    entry = code;
#endif
  }
  ~PageStartCallee() {
    if (base)
      munmap(base, 2 * page);
  }
  void *get() const { return entry; }

private:
  long page = 0;
  char *base = nullptr;
  void *entry = nullptr;
};

TEST(ForeignCode, ParallelForTaskAtPageStart) {
  PageStartCallee callee;
  if (!callee.get())
    GTEST_SKIP() << "needs x86-64 and an executable anonymous mapping";
  std::atomic<int64_t> calls{0};
  auto *task = reinterpret_cast<void (*)(void *, int64_t)>(callee.get());
  moert_parallel_for(1000, task, &calls);
  EXPECT_EQ(calls.load(), 1000);
  // One index runs on the caller alone, a different path in the pool.
  moert_parallel_for(1, task, &calls);
  EXPECT_EQ(calls.load(), 1001);
}

TEST(ForeignCode, EntryPointAtPageStart) {
  PageStartCallee callee;
  if (!callee.get())
    GTEST_SKIP() << "needs x86-64 and an executable anonymous mapping";
  int64_t calls = 0;
  auto fn = reinterpret_cast<moert::PackedFn>(callee.get());
  EXPECT_EQ(moert::callTrapped(fn, reinterpret_cast<void **>(&calls), "x"),
            nullptr);
  EXPECT_EQ(calls, 1);
}

} // namespace
