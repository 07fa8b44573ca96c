//===- host_memory.cpp - How much host memory the runtime may use ---------===//
//
// Large allocations (the KV caches, gathered expert stacks) are checked
// against what the machine can still give before they are made: a failed
// malloc inside compiled code has no way to report itself, and an
// overcommitted one is killed later by the OOM killer, far from the cause.
//
//===----------------------------------------------------------------------===//

#include "model_impl.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace moert {
namespace {

/// The first number in `path`, or false ("max" and missing files too).
bool readNumber(const std::string &path, uint64_t &out) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text.empty() || !std::isdigit((unsigned char)text[0]))
    return false;
  out = std::strtoull(text.c_str(), nullptr, 10);
  return true;
}

/// MemAvailable from /proc/meminfo, in bytes.
bool memAvailable(uint64_t &out) {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kib;
  std::string unit;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemAvailable:") {
      out = kib * 1024;
      return true;
    }
  }
  return false;
}

/// What this process's cgroup (v2, else v1) still allows.
bool cgroupRemaining(uint64_t &out) {
  std::ifstream self("/proc/self/cgroup");
  std::string line, dir = "/sys/fs/cgroup";
  while (std::getline(self, line))
    if (line.rfind("0::", 0) == 0)
      dir += line.substr(3);
  uint64_t limit = 0, used = 0;
  for (const std::string &base : {dir, std::string("/sys/fs/cgroup")})
    if (readNumber(base + "/memory.max", limit)) {
      readNumber(base + "/memory.current", used);
      out = limit > used ? limit - used : 0;
      return true;
    }
  // v1 reports "no limit" as a huge number; treat above 2^60 as none.
  if (readNumber("/sys/fs/cgroup/memory/memory.limit_in_bytes", limit) &&
      limit < (uint64_t(1) << 60)) {
    readNumber("/sys/fs/cgroup/memory/memory.usage_in_bytes", used);
    out = limit > used ? limit - used : 0;
    return true;
  }
  return false;
}

std::string humanBytes(uint64_t bytes) {
  const char *units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = double(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 6) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  if (unit == 0)
    std::snprintf(text, sizeof(text), "%llu bytes", (unsigned long long)bytes);
  else
    std::snprintf(text, sizeof(text), "%.1f %s", value, units[unit]);
  return text;
}

/// Bytes the runtime's large allocations hold now (reserveHostMemory).
std::atomic<uint64_t> reservedBytes{0};

/// What the machine (kernel and cgroup) can still give, ignoring the
/// budget, which cannot be malformed then; `bound` names the limit.
uint64_t machineAvailable(std::string &bound) {
  uint64_t bytes = UINT64_MAX;
  moert_status status = availableHostMemory(bytes, bound, /*budget=*/false);
  moert_status_free(status); // Only the budget can fail; NULL is fine.
  return bytes;
}

} // namespace

moert_status availableHostMemory(uint64_t &bytes, std::string &bound,
                                 bool budget) {
  bytes = UINT64_MAX;
  bound = "no limit known";
  uint64_t value;
  if (memAvailable(value) && value < bytes) {
    bytes = value;
    bound = "MemAvailable in /proc/meminfo";
  }
  if (cgroupRemaining(value) && value < bytes) {
    bytes = value;
    bound = "the cgroup's memory limit";
  }
  const char *env = budget ? std::getenv("MOERT_HOST_MEMORY_LIMIT") : nullptr;
  if (env) {
    char *end = nullptr;
    unsigned long long limit = std::strtoull(env, &end, 10);
    int shift = 0;
    switch (end && *end ? std::toupper((unsigned char)*end++) : 0) {
    case 0: break;
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    default: end = nullptr;
    }
    if (!end || *end || !std::isdigit((unsigned char)env[0]) ||
        limit > (UINT64_MAX >> shift))
      return moert_status_make(MOERT_INVALID_ARGUMENT,
                               "MOERT_HOST_MEMORY_LIMIT='%s' is not a size "
                               "(bytes, or a number with K, M, G or T)",
                               env);
    // A budget for this runtime's large allocations together.
    value = uint64_t(limit) << shift;
    uint64_t held = reservedBytes.load();
    value = value > held ? value - held : 0;
    if (value < bytes) {
      bytes = value;
      bound = "MOERT_HOST_MEMORY_LIMIT";
    }
  }
  return nullptr;
}

moert_status checkHostMemory(uint64_t bytes, const std::string &what,
                             const std::string &hint, bool budget) {
  uint64_t available;
  std::string bound;
  if (moert_status status = availableHostMemory(available, bound, budget))
    return status;
  if (bytes <= available)
    return nullptr;
  return fail(MOERT_OUT_OF_MEMORY,
              what + " needs " + humanBytes(bytes) + " of host memory, but " +
                  humanBytes(available) + " is available (" + bound + "); " +
                  hint);
}

moert_status reserveHostMemory(uint64_t bytes, const std::string &what,
                               const std::string &hint) {
  if (moert_status status = checkHostMemory(bytes, what, hint))
    return status;
  reservedBytes += bytes;
  return nullptr;
}

void releaseHostMemory(uint64_t bytes) { reservedBytes -= bytes; }

// --- Allocations of compiled code -------------------------------------------

thread_local std::jmp_buf *allocationTrap = nullptr;
thread_local uint64_t failedAllocationBytes = 0;

moert_status allocationFailure(const std::string &what) {
  std::string bound;
  uint64_t available = machineAvailable(bound);
  return fail(MOERT_OUT_OF_MEMORY,
              what + ": the compiled code needed " +
                  humanBytes(failedAllocationBytes) + " at once, but " +
                  humanBytes(available) + " is available (" + bound +
                  "); run smaller inputs or free memory");
}

namespace {
/// Allocations from this size on are checked against the host's free
/// memory first: Linux overcommits, so a malloc too large to be backed
/// could succeed and the process be killed when it is touched. Below it
/// the check (reading /proc/meminfo) would cost more than it saves.
constexpr uint64_t kCheckedAllocation = uint64_t(64) << 20;

[[noreturn]] void allocationFailed(uint64_t bytes) {
  failedAllocationBytes = bytes;
  if (allocationTrap)
    std::longjmp(*allocationTrap, 1);
  // Called outside an entry point: nothing can take the error.
  std::fprintf(stderr, "moert: error: compiled code could not allocate %llu "
                       "bytes\n", (unsigned long long)bytes);
  std::abort();
}

bool fitsInHost(uint64_t bytes) {
  if (bytes < kCheckedAllocation)
    return true;
  std::string bound;
  return bytes <= machineAvailable(bound);
}

// --- The compiled code's heap ------------------------------------------------
//
// A decode step allocates the same buffers as the step before (127 for the
// deepseek_v3 test fixture: activations, attention scores, logits), and
// frees them before it returns. Freed blocks are kept per thread in size
// classes and handed out again, so that a decode step in steady state makes
// no call to the system allocator. A header just before each block records
// its class and what malloc returned. Sanitizer builds pass every call
// through, so that AddressSanitizer still sees each buffer's lifetime.

#if defined(__SANITIZE_ADDRESS__)
#define MOERT_HEAP_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MOERT_HEAP_CACHE 0
#endif
#endif
#ifndef MOERT_HEAP_CACHE
#define MOERT_HEAP_CACHE 1
#endif

struct BlockHeader {
  void *base;         // what the system allocator returned
  uint32_t sizeClass; // kUncached: not kept when freed
  uint32_t magic;
};
constexpr uint32_t kBlockMagic = 0x6d6f6568; // "moeh"
/// Every block is aligned to at least a cache line.
constexpr size_t kMinAlignment = 64;
/// Classes 2^e * (4 + q) / 4 bytes, four per octave (at most 25% slack),
/// from 64 bytes up to kCheckedAllocation; larger blocks are not kept.
constexpr int kClasses = (26 - 6) * 4 + 1;
constexpr uint32_t kUncached = kClasses;
/// Bytes a thread keeps in freed blocks at most; past it, frees return
/// blocks to the system (a long prompt's buffers are not held forever).
constexpr uint64_t kCacheLimit = uint64_t(256) << 20;

size_t classBytes(int c) {
  return (size_t(4 + c % 4) << (6 + c / 4)) / 4;
}

/// The smallest class that holds `bytes`, or kUncached.
uint32_t classOf(size_t bytes) {
  if (bytes <= 64)
    return 0;
  if (bytes > kCheckedAllocation)
    return kUncached;
  int e = 63 - __builtin_clzll(uint64_t(bytes - 1)); // 2^e < bytes <= 2^(e+1)
  size_t quarter = (size_t(1) << e) / 4;
  size_t q = (bytes - (size_t(1) << e) + quarter - 1) / quarter; // 1..4
  return uint32_t((e - 6) * 4 + q);
}

struct HeapCache {
  void *free[kClasses] = {}; // each block's first word links the next
  uint64_t bytes = 0;
  ~HeapCache() {
    for (void *head : free)
      while (head) {
        void *next = *static_cast<void **>(head);
        std::free(static_cast<BlockHeader *>(head)[-1].base);
        head = next;
      }
  }
};
/// Trivially destructible, so that a block freed while this thread's
/// cache is being destroyed (or after) finds it gone rather than a dead
/// object.
thread_local HeapCache *heapCache = nullptr;
thread_local bool heapCacheGone = false;
struct HeapCacheOwner {
  ~HeapCacheOwner() {
    heapCacheGone = true;
    delete heapCache;
    heapCache = nullptr;
  }
};
thread_local HeapCacheOwner heapCacheOwner;

HeapCache *threadCache() {
  if (!MOERT_HEAP_CACHE || heapCacheGone)
    return nullptr;
  if (!heapCache) {
    (void)&heapCacheOwner; // constructs it, so that it destroys the cache
    heapCache = new HeapCache;
  }
  return heapCache;
}

std::atomic<uint64_t> systemAllocations{0};

/// A block of at least `bytes` aligned to `alignment` (a power of two), or
/// null when the system has none.
void *allocate(size_t bytes, size_t alignment) {
  alignment = std::max(alignment, kMinAlignment);
  uint32_t c = alignment == kMinAlignment ? classOf(bytes) : kUncached;
  if (c != kUncached)
    if (HeapCache *cache = threadCache(); cache && cache->free[c]) {
      void *p = cache->free[c];
      cache->free[c] = *static_cast<void **>(p);
      cache->bytes -= classBytes(c);
      return p;
    }
  // The header, then up to alignment - 1 bytes to the aligned pointer.
  const size_t room = sizeof(BlockHeader) + alignment - 1;
  size_t size = c == kUncached ? bytes : classBytes(c);
  if (size > SIZE_MAX - room || !fitsInHost(size))
    return nullptr;
  char *base = static_cast<char *>(std::malloc(size + room));
  if (!base)
    return nullptr;
  ++systemAllocations;
  uintptr_t user = (reinterpret_cast<uintptr_t>(base) + sizeof(BlockHeader) +
                    alignment - 1) & ~uintptr_t(alignment - 1);
  void *p = reinterpret_cast<void *>(user);
  static_cast<BlockHeader *>(p)[-1] = {base, c, kBlockMagic};
  return p;
}

void release(void *p) {
  if (!p)
    return;
  BlockHeader &header = static_cast<BlockHeader *>(p)[-1];
  if (header.magic != kBlockMagic) {
    std::fprintf(stderr, "moert: error: moert_free of %p, which the "
                         "runtime's heap did not allocate\n", p);
    std::abort();
  }
  uint32_t c = header.sizeClass;
  HeapCache *cache = c == kUncached ? nullptr : threadCache();
  if (!cache || cache->bytes + classBytes(c) > kCacheLimit) {
    std::free(header.base);
    return;
  }
  *static_cast<void **>(p) = cache->free[c];
  cache->free[c] = p;
  cache->bytes += classBytes(c);
}

} // namespace

void *heapAllocate(uint64_t bytes) {
  return allocate(bytes ? bytes : 1, alignof(std::max_align_t));
}

} // namespace moert

extern "C" void *moert_malloc(size_t bytes) {
  void *p = moert::heapAllocate(bytes);
  if (!p)
    moert::allocationFailed(bytes);
  return p;
}

extern "C" void *moert_aligned_alloc(size_t alignment, size_t bytes) {
  if (alignment == 0 || (alignment & (alignment - 1)))
    alignment = alignof(std::max_align_t); // C11 leaves it undefined
  void *p = moert::allocate(bytes ? bytes : 1, alignment);
  if (!p)
    moert::allocationFailed(bytes);
  return p;
}

extern "C" void moert_free(void *p) { moert::release(p); }

extern "C" uint64_t moert_heap_system_allocations(void) {
  return moert::systemAllocations.load();
}
