//===- HeapTest.cpp - The compiled code's heap (host_memory.cpp) ----------===//
//
// moert_malloc / moert_aligned_alloc / moert_free keep freed blocks per
// thread and hand them out again: a decode step in steady state must not
// reach the system allocator. These cases pin that down, with the
// alignment and size-class edges it depends on. Sanitizer builds keep no
// blocks (AddressSanitizer must see each lifetime); there only the
// allocation contract is checked.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/moert.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

extern "C" void *moert_malloc(size_t bytes);
extern "C" void *moert_aligned_alloc(size_t alignment, size_t bytes);
extern "C" void moert_free(void *p);

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kCaching = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kCaching = false;
#else
constexpr bool kCaching = true;
#endif
#else
constexpr bool kCaching = true;
#endif

bool aligned(const void *p, uintptr_t to) {
  return reinterpret_cast<uintptr_t>(p) % to == 0;
}

TEST(Heap, BlocksAreUsableAndAligned) {
  for (size_t bytes : {size_t(0), size_t(1), size_t(63), size_t(64),
                       size_t(65), size_t(1000), size_t(1) << 20}) {
    auto *p = static_cast<unsigned char *>(moert_malloc(bytes));
    ASSERT_NE(p, nullptr) << bytes;
    EXPECT_TRUE(aligned(p, 64)) << bytes;
    std::memset(p, 0xab, bytes);
    moert_free(p);
  }
  for (size_t alignment : {size_t(16), size_t(64), size_t(128), size_t(4096)}) {
    void *p = moert_aligned_alloc(alignment, 3000);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(aligned(p, alignment)) << alignment;
    std::memset(p, 0xcd, 3000);
    moert_free(p);
  }
  moert_free(nullptr);
}

TEST(Heap, StepsInSteadyStateDoNotReachTheSystem) {
  // A "step": buffers of assorted sizes (a class boundary, 1 KiB, a
  // logits row, 3 MiB) allocated, written and freed in another order.
  auto step = [] {
    std::vector<void *> blocks;
    for (size_t bytes : {size_t(128), size_t(129), size_t(1024),
                         size_t(32000 * 4), size_t(3) << 20})
      blocks.push_back(moert_malloc(bytes));
    blocks.push_back(moert_aligned_alloc(64, 4096));
    for (void *p : blocks)
      std::memset(p, 1, 128);
    for (size_t i = blocks.size(); i-- > 0;)
      moert_free(blocks[i]);
  };
  step();
  uint64_t before = moert_heap_system_allocations();
  for (int i = 0; i < 10; ++i)
    step();
  uint64_t calls = moert_heap_system_allocations() - before;
  if (kCaching)
    EXPECT_EQ(calls, 0u);
  else
    EXPECT_EQ(calls, 60u); // every block, every step
}

TEST(Heap, ReusesAFreedBlockOfTheSameClass) {
  void *a = moert_malloc(5000);
  moert_free(a);
  // 4800 bytes is in the same class (4096 * 1.25 = 5120): the same block,
  // without a system call (sanitizer builds: a new one, with one).
  uint64_t before = moert_heap_system_allocations();
  void *b = moert_malloc(4800);
  uint64_t calls = moert_heap_system_allocations() - before;
  if (kCaching) {
    EXPECT_EQ(a, b);
    EXPECT_EQ(calls, 0u);
  } else {
    EXPECT_EQ(calls, 1u);
  }
  moert_free(b);
}

TEST(Heap, LargeAndOverAlignedBlocksGoBackToTheSystem) {
  // Above 64 MiB and above 64-byte alignment, blocks are not kept: each
  // allocation reaches the system.
  uint64_t before = moert_heap_system_allocations();
  for (int i = 0; i < 2; ++i) {
    void *big = moert_malloc((size_t(64) << 20) + 1);
    ASSERT_NE(big, nullptr);
    moert_free(big);
    void *page = moert_aligned_alloc(4096, 100);
    ASSERT_NE(page, nullptr);
    moert_free(page);
  }
  EXPECT_EQ(moert_heap_system_allocations() - before, 4u);
}

TEST(Heap, BlocksMayBeFreedOnAnotherThread) {
  std::vector<void *> blocks;
  for (int i = 0; i < 8; ++i)
    blocks.push_back(moert_malloc(256 * (i + 1)));
  std::thread other([&] {
    for (void *p : blocks)
      moert_free(p);
    // The other thread's kept blocks are released when it exits.
  });
  other.join();
  void *p = moert_malloc(256);
  ASSERT_NE(p, nullptr);
  moert_free(p);
}

} // namespace
