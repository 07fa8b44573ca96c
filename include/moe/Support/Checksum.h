//===- Checksum.h - The artifact checksum -----------------------*- C++ -*-===//
//
// The 64-bit checksum moec writes into artifacts (manifest, code, embedded
// weights, checkpoint shard headers) and the runtime verifies at load.
// Plain C++ so that the compiler and the runtime, which must agree bit for
// bit, share one definition.
//
// Four independent multiply-rotate lanes over 8-byte little-endian words
// (several GB/s, so verifying embedded weights at load stays cheap), the
// tail bytes folded into a fifth step, then an avalanche. It detects
// corruption and edits; it is not a cryptographic hash.
// test/Runtime/edit_manifest.py has the same function in Python.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_SUPPORT_CHECKSUM_H
#define MOE_SUPPORT_CHECKSUM_H

#include <cstdint>
#include <string>

namespace moe {

inline uint64_t checksum(const void *data, uint64_t size) {
  constexpr uint64_t p1 = 0x9E3779B185EBCA87ull, p2 = 0xC2B2AE3D27D4EB4Full,
                     p3 = 0x165667B19E3779F9ull;
  auto rotl = [](uint64_t x, int r) { return (x << r) | (x >> (64 - r)); };
  auto load = [](const unsigned char *p) {
    uint64_t w = 0;
    for (int i = 7; i >= 0; --i) // little-endian on any host
      w = (w << 8) | p[i];
    return w;
  };
  const unsigned char *p = static_cast<const unsigned char *>(data);
  uint64_t h[4] = {size ^ p1, p2, p3, p1 ^ p2};
  uint64_t i = 0;
  for (; i + 32 <= size; i += 32)
    for (int j = 0; j < 4; ++j)
      h[j] = rotl(h[j] ^ (load(p + i + 8 * j) * p1), 31) * p2;
  for (; i + 8 <= size; i += 8)
    h[0] = rotl(h[0] ^ (load(p + i) * p1), 31) * p2;
  for (; i < size; ++i)
    h[1] = rotl(h[1] ^ (uint64_t(p[i]) * p3), 23) * p1;
  uint64_t x = h[0] ^ rotl(h[1], 7) ^ rotl(h[2], 12) ^ rotl(h[3], 18);
  x ^= x >> 33;
  x *= p2;
  x ^= x >> 29;
  x *= p3;
  x ^= x >> 32;
  return x;
}

/// The checksum of a sequence of buffers: the checksum of their checksums
/// (8 little-endian bytes each), in the order added. The artifact's `data`
/// line is this over every embedded weight part, in manifest order.
class PartsChecksum {
public:
  void add(const void *data, uint64_t size) {
    uint64_t sum = checksum(data, size);
    for (int i = 0; i < 8; ++i)
      sums.push_back(char(sum >> (8 * i)));
  }
  uint64_t value() const { return checksum(sums.data(), sums.size()); }

private:
  std::string sums;
};

} // namespace moe

#endif // MOE_SUPPORT_CHECKSUM_H
