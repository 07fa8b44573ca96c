//===- host_memory.cpp - How much host memory the runtime may use ---------===//
//
// Large allocations (the KV caches, gathered expert stacks) are checked
// against what the machine can still give before they are made: a failed
// malloc inside compiled code has no way to report itself, and an
// overcommitted one is killed later by the OOM killer, far from the cause.
//
//===----------------------------------------------------------------------===//

#include "model_impl.h"

#include <atomic>
#include <cctype>
#include <csetjmp>
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
} // namespace

} // namespace moert

extern "C" void *moert_malloc(size_t bytes) {
  void *p = moert::fitsInHost(bytes) ? std::malloc(bytes) : nullptr;
  if (!p && bytes)
    moert::allocationFailed(bytes);
  return p;
}

extern "C" void *moert_aligned_alloc(size_t alignment, size_t bytes) {
  void *p = moert::fitsInHost(bytes) ? std::aligned_alloc(alignment, bytes)
                                     : nullptr;
  if (!p && bytes)
    moert::allocationFailed(bytes);
  return p;
}
