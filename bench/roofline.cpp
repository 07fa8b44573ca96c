//===- roofline.cpp - The machine's own roof, measured --------------------===//
//
// Prints, as JSON, what this machine can do on all its cores: memory read
// bandwidth (a 1 GiB buffer summed by every thread, best of several passes)
// and peak f32 FLOP/s (independent FMA chains held in registers), and where
// the CPU has AVX512_BF16, peak bf16 FLOP/s (vdpbf16ps chains: what the
// runtime's avx512bf16 kernels use for bf16 prompts). The benchmark reports
// each moec row as a fraction of these. Built with -O3 -march=native, so it
// measures the widest vectors the CPU has.
//
//===----------------------------------------------------------------------===//

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <sched.h>

#if defined(__AVX512BF16__)
#include <immintrin.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;

int cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    return CPU_COUNT(&set);
  return int(std::thread::hardware_concurrency());
}

/// Runs fn(thread) on `threads` threads started together; returns seconds.
template <typename Fn> double onAllCores(int threads, Fn fn) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load())
        ;
      fn(t);
    });
  while (ready.load() != threads)
    ;
  Clock::time_point start = Clock::now();
  go.store(true);
  for (std::thread &th : pool)
    th.join();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#else
constexpr int kVectorBytes = 32;
#endif
constexpr int kLanes = kVectorBytes / 4;
typedef float V __attribute__((vector_size(kVectorBytes)));

double readBandwidth(int threads) {
  const size_t bytes = size_t(1) << 30;
  size_t n = bytes / sizeof(float);
  float *data = static_cast<float *>(std::aligned_alloc(64, bytes));
  // First touch by the thread that later reads each part (NUMA placement).
  onAllCores(threads, [&](int t) {
    size_t lo = n / threads * t, hi = t + 1 == threads ? n : n / threads * (t + 1);
    for (size_t i = lo; i < hi; ++i)
      data[i] = float(i & 7);
  });
  std::vector<float> sink(threads * 16);
  double best = 1e30;
  for (int pass = 0; pass < 5; ++pass) {
    double s = onAllCores(threads, [&](int t) {
      size_t lo = n / threads * t, hi = t + 1 == threads ? n : n / threads * (t + 1);
      lo = lo / (4 * kLanes) * (4 * kLanes);
      V a0 = {}, a1 = {}, a2 = {}, a3 = {};
      size_t i = lo;
      for (; i + 4 * kLanes <= hi; i += 4 * kLanes) {
        V v0, v1, v2, v3;
        std::memcpy(&v0, data + i, kVectorBytes);
        std::memcpy(&v1, data + i + kLanes, kVectorBytes);
        std::memcpy(&v2, data + i + 2 * kLanes, kVectorBytes);
        std::memcpy(&v3, data + i + 3 * kLanes, kVectorBytes);
        a0 += v0;
        a1 += v1;
        a2 += v2;
        a3 += v3;
      }
      V a = a0 + a1 + a2 + a3;
      float total = 0;
      for (int j = 0; j < kLanes; ++j)
        total += a[j];
      sink[t * 16] = total;
    });
    best = std::min(best, s);
  }
  std::free(data);
  volatile float keep = sink[0];
  (void)keep;
  return double(bytes) / best;
}

/// The best of three runs of `chains(t)` on all cores, in seconds; each
/// thread's result is kept so the compiler cannot drop the work.
template <typename Chains> double bestOfThree(int threads, Chains chains) {
  std::vector<float> sink(threads * 16);
  double best = 1e30;
  for (int pass = 0; pass < 3; ++pass)
    best = std::min(best, onAllCores(threads, [&](int t) {
                      sink[t * 16] = chains(t);
                    }));
  volatile float keep = sink[0];
  (void)keep;
  return best;
}

constexpr long kIterations = 50'000'000;

double peakFlops(int threads) {
  double best = bestOfThree(threads, [](int t) {
    // 12 independent accumulators cover the FMA latency on two ports.
    V acc[12];
    for (int j = 0; j < 12; ++j)
      acc[j] = V{} + float(j + t);
    V m = V{} + 0.999999f, c = V{} + 1e-7f;
    for (long i = 0; i < kIterations / 12; ++i)
      for (int j = 0; j < 12; ++j)
        acc[j] = acc[j] * m + c;
    V total = {};
    for (int j = 0; j < 12; ++j)
      total += acc[j];
    return total[0];
  });
  // Each iteration: 12 FMAs of kLanes lanes, 2 FLOPs each.
  return double(kIterations / 12) * 12 * kLanes * 2 * threads / best;
}

#if defined(__AVX512BF16__)
/// Peak bf16 FLOP/s: vdpbf16ps adds two products per f32 lane.
double peakBF16Flops(int threads) {
  double best = bestOfThree(threads, [](int t) {
    __m512 acc[12];
    for (int j = 0; j < 12; ++j)
      acc[j] = _mm512_set1_ps(float(j + t));
    __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80); // (1.0, 1.0)
    __m512bh b = (__m512bh)_mm512_set1_epi32(0x33d633d6); // (1e-7, 1e-7)
    for (long i = 0; i < kIterations / 12; ++i)
      for (int j = 0; j < 12; ++j)
        acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
    __m512 total = _mm512_setzero_ps();
    for (int j = 0; j < 12; ++j)
      total = _mm512_add_ps(total, acc[j]);
    return _mm512_reduce_add_ps(total);
  });
  // Each iteration: 12 instructions of 16 lanes, 2 products (4 FLOPs) each.
  return double(kIterations / 12) * 12 * 16 * 4 * threads / best;
}
#endif

} // namespace

int main(int argc, char **argv) {
  if (argc > 1 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h"))) {
    std::printf("moe-roofline: measures this machine's memory read bandwidth "
                "and peak f32 FLOP/s on all cores (and peak bf16 FLOP/s "
                "where the CPU has AVX512_BF16; null otherwise); prints "
                "JSON.\n"
                "Usage: moe-roofline\n");
    return 0;
  }
  int threads = cores();
  double bandwidth = readBandwidth(threads);
  double flops = peakFlops(threads);
  char bf16[32] = "null";
#if defined(__AVX512BF16__)
  std::snprintf(bf16, sizeof bf16, "%.4g", peakBF16Flops(threads));
#endif
  std::printf("{\"cores\": %d, \"read_bandwidth_bytes_per_s\": %.4g, "
              "\"peak_f32_flops\": %.4g, \"peak_bf16_flops\": %s, "
              "\"vector_bits\": %d}\n",
              threads, bandwidth, flops, bf16, kVectorBytes * 8);
  return 0;
}
