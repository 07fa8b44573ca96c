//===- kernels.cpp - Expert FFN, projection and routing kernels -----------===//
//
// The functions of moe/Runtime/moert_kernels.h. Each kernel converts its
// activations to f32 once, splits its weight rows into blocks that the
// thread pool runs in parallel, and computes every block with the dot tiles
// of dot.h (several tokens against several weight rows, so that each weight
// vector loaded from memory feeds up to four tokens). Scratch buffers are
// owned by the calling thread and only ever grow, so a decode step
// allocates nothing once the first step has run.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/moert_kernels.h"

#include "dot.h"
#include "thread_pool.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>
#include <vector>

namespace moert::kernels {
namespace {

//===----------------------------------------------------------------------===//
// Element types and views of memref descriptors
//===----------------------------------------------------------------------===//

int byteSize(DType t) { return t == DType::F32 ? 4 : 2; }

float toF32(DType t, const char *p) {
  switch (t) {
  case DType::F32: {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  case DType::BF16: {
    uint16_t h;
    std::memcpy(&h, p, 2);
    uint32_t w = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &w, 4);
    return f;
  }
  case DType::F16: {
    _Float16 h;
    std::memcpy(&h, p, 2);
    return float(h);
  }
  }
  return 0;
}

/// Stores `v` rounded to nearest even, as arith.truncf does.
void fromF32(DType t, float v, char *p) {
  switch (t) {
  case DType::F32:
    std::memcpy(p, &v, 4);
    return;
  case DType::BF16: {
    uint32_t w;
    std::memcpy(&w, &v, 4);
    uint16_t h = std::isnan(v) ? uint16_t((w >> 16) | 0x40)
                               : uint16_t((w + 0x7fff + ((w >> 16) & 1)) >> 16);
    std::memcpy(p, &h, 2);
    return;
  }
  case DType::F16: {
    _Float16 h = _Float16(v);
    std::memcpy(p, &h, 2);
    return;
  }
  }
}

/// `v` rounded to type `t` and back.
float roundTo(DType t, float v) {
  char bytes[4];
  fromF32(t, v, bytes);
  return toF32(t, bytes);
}

/// A rank-R memref descriptor with its element type.
template <int R> struct View {
  char *data = nullptr;
  int64_t size[R] = {};
  int64_t stride[R] = {};
  DType type = DType::F32;
  int bytes = 4;

  template <typename Desc> View(const Desc *d, DType t) : type(t) {
    bytes = byteSize(t);
    data = static_cast<char *>(d->aligned) + d->offset * bytes;
    for (int i = 0; i < R; ++i) {
      size[i] = d->sizes[i];
      stride[i] = d->strides[i];
    }
  }
  bool present() const {
    for (int i = 0; i < R; ++i)
      if (size[i] != 0)
        return true;
    return false;
  }
  char *at(int64_t i) const { return data + i * stride[0] * bytes; }
  char *at(int64_t i, int64_t j) const {
    return data + (i * stride[0] + j * stride[1]) * bytes;
  }
  char *at(int64_t i, int64_t j, int64_t l) const {
    return data + (i * stride[0] + j * stride[1] + l * stride[2]) * bytes;
  }
  float f32(int64_t i) const { return toF32(type, at(i)); }
  float f32(int64_t i, int64_t j) const { return toF32(type, at(i, j)); }
};

/// A grow-only buffer owned by one thread.
template <typename T> T *scratch(std::vector<T> &buffer, size_t n) {
  if (buffer.size() < n)
    buffer.resize(n);
  return buffer.data();
}

} // namespace
} // namespace moert::kernels

// runtime/host_memory.cpp: checks large sizes against free host memory and,
// on failure, jumps back to the entry point that the calling thread runs.
extern "C" void *moert_malloc(size_t bytes);
extern "C" void moert_free(void *p);

namespace moert::kernels {
namespace {

/// A grow-only buffer of the thread that calls a kernel (the one running
/// the compiled code), for the large per-call arrays. It grows through
/// moert_malloc, so a size the host cannot back becomes the entry point's
/// MOERT_OUT_OF_MEMORY instead of an exception unwinding compiled code.
template <typename T> class CallerBuffer {
public:
  ~CallerBuffer() { moert_free(data); }
  T *get(size_t n) {
    if (n > size) {
      moert_free(data);
      data = nullptr;
      size = 0;
      data = static_cast<T *>(moert_malloc(n * sizeof(T)));
      size = n;
    }
    return data;
  }

private:
  T *data = nullptr;
  size_t size = 0;
};

/// Copies the first `count` rows of a [rows, K] view into f32, row-major.
void rowsToF32(const View<2> &v, int64_t count, float *out) {
  int64_t k = v.size[1];
  parallelFor((count + 15) / 16, [&](int64_t block) {
    for (int64_t r = block * 16; r < std::min(count, block * 16 + 16); ++r) {
      if (v.type == DType::F32 && v.stride[1] == 1) {
        std::memcpy(out + r * k, v.at(r, 0), k * sizeof(float));
        continue;
      }
      for (int64_t c = 0; c < k; ++c)
        out[r * k + c] = v.f32(r, c);
    }
  });
}

/// Stores an f32 row into row `r` of `v`, converting to its type.
void storeRow(const View<2> &v, int64_t r, const float *row) {
  if (v.type == DType::F32 && v.stride[1] == 1) {
    std::memcpy(v.at(r, 0), row, v.size[1] * sizeof(float));
    return;
  }
  for (int64_t c = 0; c < v.size[1]; ++c)
    fromF32(v.type, row[c], v.at(r, c));
}

//===----------------------------------------------------------------------===//
// The dot-tile driver
//===----------------------------------------------------------------------===//

/// The best instruction set the CPU has, at most MOERT_ISA's (avx512bf16,
/// avx512, avx2 or generic; avx512bf16-emulated picks the test build).
const Isa &chooseIsa() {
  const char *cap = std::getenv("MOERT_ISA");
  std::string_view want = cap ? cap : "avx512bf16";
  if (want == "avx512bf16-emulated")
    return isaEmulatedAVX512BF16();
  // The builds in order of preference; an unknown name allows only the
  // portable one.
  const int allowed = want == "avx512bf16" ? 3
                      : want == "avx512"   ? 2
                      : want == "avx2"     ? 1
                                           : 0;
#if defined(__x86_64__)
  __builtin_cpu_init();
  bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
              __builtin_cpu_supports("f16c");
  bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                __builtin_cpu_supports("avx512bw");
  bool bf16 = avx512 && __builtin_cpu_supports("avx512bf16");
  if (bf16 && allowed >= 3)
    return isaAVX512BF16();
  if (avx512 && allowed >= 2)
    return isaAVX512();
  if (avx2 && allowed >= 1)
    return isaAVX2();
#else
  (void)allowed;
#endif
  return isaGeneric();
}

const Isa &isa() {
  static const Isa &chosen = chooseIsa();
  return chosen;
}

/// Weight rows of one matrix (a 2-D view, or one expert of a 3-D one):
/// row(i) points at K contiguous elements. A transposed view (rows one
/// element apart) has a kernel of its own (dotBlock); rows with any other
/// layout are copied into `pack` first.
struct Rows {
  const char *base;
  int64_t rowStride, colStride, k;
  DType type;
  int bytes;
  int64_t origin = 0;   // the row at `base`
  bool widened = false; // an f32 copy in a cached scratch buffer

  const void *row(int64_t i, std::vector<char> &pack, int slot) const {
    const char *p = base + (i - origin) * rowStride * bytes;
    if (colStride == 1)
      return p;
    char *dst = scratch(pack, size_t(kMaxCols) * k * bytes) + slot * k * bytes;
    for (int64_t c = 0; c < k; ++c)
      std::memcpy(dst + c * bytes, p + c * colStride * bytes, bytes);
    return dst;
  }
};

Rows rowsOf(const View<2> &v) {
  return {v.data, v.stride[0], v.stride[1], v.size[1], v.type, v.bytes};
}
Rows rowsOf(const View<3> &v, int64_t e) {
  return {v.at(e), v.stride[1], v.stride[2], v.size[2], v.type, v.bytes};
}

/// Activation rows one call of dotBlock takes: with K split into chunks,
/// a few weight rows stay in L1 while all these rows stream past them.
constexpr int64_t kTokenTile = 64;
/// K elements per chunk (4 KiB of f32 per row; shorter chunks cost more in
/// horizontal sums than they save in cache misses, measured on Zen). A
/// decode-sized call (at most kMaxRows activation rows) takes K whole: no
/// rows stream past the weights there, and chunks would cut each weight
/// row's stream into pieces (mixtral's 7 KiB bf16 down rows read ~10%
/// slower from DRAM that way).
constexpr int64_t kChunk = 1024;

/// out[m * ldo + (n - n0)] = a[m] . w.row(n) for m < count (at most
/// kTokenTile), n in [n0, n1).
void dotBlock(const float *const *a, int64_t count, const Rows &w, int64_t n0,
              int64_t n1, float *out, int64_t ldo) {
  if (w.colStride != 1 && w.rowStride == 1) {
    // Stored transposed: row n is column n of a [K, N] matrix.
    DotTileTransposedFn dot = isa().dotTransposed[int(w.type)];
    const char *b = w.base + n0 * w.bytes;
    for (int64_t m = 0; m < count; m += kMaxRows) {
      int rows = int(std::min<int64_t>(kMaxRows, count - m));
      dot(rows, n1 - n0, a + m, b, w.colStride, w.k, out + m * ldo, ldo);
    }
    return;
  }
  thread_local std::vector<char> pack;
  DotTileFn dot = isa().dot[int(w.type)];
  // Rows read in place take a tile's kMaxCols rows from kMaxCols equal
  // runs of the block, not from neighbours: each column then streams its
  // run in address order, which the hardware prefetchers follow, where
  // neighbouring rows (2 KiB of bf16 at K = 1024) make short streams that
  // each start cold. A 19 MB bf16 GEMV from DRAM ran at 22 GB/s on one Zen
  // core this way, against 11 GB/s with neighbours. Widened copies are in
  // cache already, and there neighbours measured 2-3% faster (T = 1024).
  // Each product's sum is the same either way.
  const int64_t total = n1 - n0;
  const int64_t tiles = (total + kMaxCols - 1) / kMaxCols;
  const int64_t step = w.widened ? kMaxCols : 1; // from one tile to the next
  const int64_t ldn = w.widened ? 1 : tiles;     // between a tile's rows
  const int64_t chunk = count <= kMaxRows ? std::max<int64_t>(w.k, 1) : kChunk;
  for (int64_t k0 = 0; k0 < w.k || k0 == 0; k0 += chunk) {
    int64_t k1 = std::min(w.k, k0 + chunk);
    for (int64_t j = 0; j < tiles; ++j) {
      const void *b[kMaxCols];
      int cols = 0;
      for (; cols < kMaxCols && j * step + cols * ldn < total; ++cols)
        b[cols] = w.row(n0 + j * step + cols * ldn, pack, cols);
      for (int64_t m = 0; m < count; m += kMaxRows) {
        int rows = int(std::min<int64_t>(kMaxRows, count - m));
        dot(rows, cols, a + m, b, k0, k1, out + m * ldo + j * step, ldo, ldn,
            k0 > 0);
      }
    }
  }
}

/// Rows n0..n1 of `w` as f32 rows in `buffer` when `count` activation rows
/// will read them: 16-bit weights are then widened once rather than in
/// every tile, where the conversion competes with the FMAs for the vector
/// ports. Returns `w` itself for f32 weights, transposed weights and
/// decode-sized counts (there the halved bytes matter more).
Rows widenFor(const Rows &w, int64_t n0, int64_t n1, int64_t count,
              std::vector<float> &buffer) {
  if (w.type == DType::F32 || count <= kMaxRows ||
      (w.colStride != 1 && w.rowStride == 1))
    return w;
  thread_local std::vector<char> pack;
  float *rows = scratch(buffer, size_t(n1 - n0) * w.k);
  for (int64_t n = n0; n < n1; ++n)
    isa().widen[int(w.type)](w.row(n, pack, 0), rows + (n - n0) * w.k, w.k);
  Rows wide{reinterpret_cast<const char *>(rows), w.k, 1, w.k, DType::F32, 4};
  wide.origin = n0;
  wide.widened = true;
  return wide;
}

/// Weight rows per parallel task: enough work to amortise the hand-out,
/// small enough to keep every thread busy at one token; a multiple of 3
/// (rows per tile) and of 16 (lanes of the transposed form's vectors).
constexpr int64_t kBlock = 48;
/// The same for decode-sized steps (at most kMaxRows activation rows per
/// weight row), which only stream the weights: longer runs of rows per
/// tile column keep the prefetchers ahead (dotBlock). kTokenTile * kBlock
/// outputs still hold kMaxRows * kDecodeBlock.
constexpr int64_t kDecodeBlock = 192;
static_assert(kMaxRows * kDecodeBlock <= kTokenTile * kBlock, "tile buffers");

/// Whether `gate` and `up` are the even and odd rows of one tensor read in
/// place (row n of `up` right after row n of `gate`).
bool interleaved(const Rows &gate, const Rows &up) {
  return gate.colStride == 1 && up.colStride == 1 && !gate.widened &&
         !up.widened && gate.type == up.type && gate.k == up.k &&
         gate.origin == 0 && up.origin == 0 && gate.rowStride == 2 * gate.k &&
         up.rowStride == gate.rowStride &&
         up.base == gate.base + gate.k * gate.bytes;
}

/// Weight rows per task for steps of `tokens` activation rows.
int64_t blockFor(int64_t tokens) {
  return tokens <= kMaxRows ? kDecodeBlock : kBlock;
}

//===----------------------------------------------------------------------===//
// The outer-product driver (prompt-sized calls)
//===----------------------------------------------------------------------===//

/// Activation rows from which a call packs them into panels and takes the
/// outer-product tiles. Below it the dot tiles win (measured on Zen: qwen3's
/// T=128 layer, 16 rows per expert, ran about 15% slower in panels):
/// packing costs a pass over the rows, and a half-empty panel wastes FMAs.
constexpr int64_t kOuterMinRows = 32;
/// K elements per chunk of the outer form: long runs per weight row keep
/// the prefetchers ahead (on Zen, mixtral's and qwen3's T=1024 layers ran
/// as fast as or faster than with 256, 512 or whole K).
constexpr int64_t kOuterChunk = 1024;
static_assert(kOuterChunk % 2 == 0, "chunks start on a bf16 pair");

/// The widest panel of any ISA (AVX-512: two 16-lane vectors).
constexpr int64_t kMaxPanel = 32;

/// Whether a call with `count` activation rows against `w` takes the outer
/// form: rows contiguous along K (transposed weights keep their own kernel,
/// other strided rows the dot tiles' copies).
bool useOuter(int64_t count, const Rows &w) {
  return count >= kOuterMinRows && w.colStride == 1;
}

/// Whether products of activations of type `act` with rows of `w` in the
/// outer form take the ISA's bf16 dot products (OuterPairsTileFn): bf16
/// weights read in place, and bf16 activations. Packing those into pairs
/// loses nothing; only the experts' intermediate activations are rounded
/// to bf16 for the down projection, where a bf16 model (transformers')
/// rounds them too. With f32 activations the products stay in f32.
bool usePairs(const Rows &w, DType act) {
  return act == DType::BF16 && w.type == DType::BF16 && w.colStride == 1 &&
         isa().outerPairs;
}

/// Words one panel of rows of length `k` takes in the pair form.
int64_t pairWords(int64_t k) { return (k + 1) / 2 * isa().panel; }

/// Activation rows packed for the outer form: `f32` as packPanel writes
/// them and, where bf16 weights take the bf16 dot products, `pairs`: the
/// same panels rounded to bf16 in PackPairsFn's form (packed once per
/// call like the panels: per task, every block of weight rows would pack
/// them again).
struct Panels {
  float *f32 = nullptr;
  uint32_t *pairs = nullptr;
  int64_t k = 0;

  /// The panels from panel `t` on.
  Panels from(int64_t t) const {
    return {f32 + t * isa().panel * k,
            pairs ? pairs + t * pairWords(k) : nullptr, k};
  }
};

/// Floats that `count` packed rows of length `k` take.
int64_t panelFloats(int64_t count, int64_t k) {
  const int64_t P = isa().panel;
  return (count + P - 1) / P * P * k;
}

/// Packs panel `t` of `count` rows, row m at rowOf(m) with `k` floats,
/// into `panels` (see OuterTileFn); a last panel's missing rows are zero.
template <typename RowOf>
void packPanel(RowOf &&rowOf, int64_t count, int64_t k, int64_t t,
               float *panels) {
  const int64_t P = isa().panel;
  float *dst = panels + t * P * k;
  const int64_t rows = std::min(P, count - t * P);
  const float *src[kMaxPanel];
  for (int64_t m = 0; m < rows; ++m)
    src[m] = rowOf(t * P + m);
  isa().transpose(src, rows, k, dst, P);
  if (rows < P)
    for (int64_t i = 0; i < k; ++i)
      std::fill(dst + i * P + rows, dst + (i + 1) * P, 0.0f);
}

/// The products of the `count` rows packed in `panels` with weight rows
/// [n0, n1) (at most kBlock), for the whole K, n-major per panel as
/// OuterTileFn leaves them: row m's product with row n is
/// acc[(m / P * kBlock + n - n0) * P + m % P]. Chunk by chunk, every panel
/// against the block's chunk. 16-bit rows are widened whole first
/// (widenFor: one long stream per row; widening each chunk's 256-element
/// pieces took a quarter of mixtral's bf16 T=128 layer).
void outerSums(const Panels &panels, int64_t count, const Rows &w, int64_t n0,
               int64_t n1, float *acc) {
  const Isa &is = isa();
  const int64_t P = is.panel, K = w.k, numPanels = (count + P - 1) / P;
  // Panels have a pair form only for bf16 activations.
  const bool pairs = panels.pairs && usePairs(w, DType::BF16);
  thread_local std::vector<float> wideRows;
  thread_local std::vector<char> pack;
  // Widened whatever `count` is (a projection's last token tile may have
  // only a few rows), unless the pair form reads the bf16 rows in place.
  const Rows src = pairs ? w : widenFor(w, n0, n1, kOuterMinRows, wideRows);
  for (int64_t k0 = 0; k0 < K || k0 == 0; k0 += kOuterChunk) {
    const int64_t k1 = std::min(K, k0 + kOuterChunk), len = k1 - k0;
    const float *b[kBlock];
    const uint16_t *bh[kBlock];
    for (int64_t n = n0; n < n1; ++n) {
      const char *row =
          static_cast<const char *>(src.row(n, pack, 0)) + k0 * src.bytes;
      if (pairs)
        bh[n - n0] = reinterpret_cast<const uint16_t *>(row);
      else
        b[n - n0] = reinterpret_cast<const float *>(row);
    }
    for (int64_t t = 0; t < numPanels; ++t) {
      for (int64_t n = n0; n < n1; n += kOuterCols) {
        const int cols = int(std::min<int64_t>(kOuterCols, n1 - n));
        float *c = acc + (t * kBlock + (n - n0)) * P;
        // k0 is even (a multiple of the chunk): word k0 / 2 starts it.
        if (pairs)
          is.outerPairs(cols, panels.pairs + t * pairWords(K) + k0 / 2 * P,
                        bh + (n - n0), len, c, k0 > 0);
        else
          is.outer(cols, panels.f32 + t * P * K + k0 * P, b + (n - n0), len, c,
                   k0 > 0);
      }
    }
  }
}

/// outerSums transposed into rows: out[m * ldo + (n - n0)].
void outerBlock(const Panels &panels, int64_t count, const Rows &w, int64_t n0,
                int64_t n1, float *out, int64_t ldo) {
  const int64_t P = isa().panel, numPanels = (count + P - 1) / P;
  thread_local std::vector<float> sums;
  float *acc = scratch(sums, numPanels * kBlock * P);
  outerSums(panels, count, w, n0, n1, acc);
  for (int64_t t = 0; t < numPanels; ++t) {
    const float *rows[kBlock];
    for (int64_t n = 0; n < n1 - n0; ++n)
      rows[n] = acc + (t * kBlock + n) * P;
    isa().transpose(rows, n1 - n0, std::min(P, count - t * P),
                    out + t * P * ldo, ldo);
  }
}

float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }

/// The products x[t] . w.row(n) for t < T, n < N, in parallel tasks of up
/// to kTokenTile rows by blockFor(T) weight rows; `epilogue(t, n0, n1, row)`
/// receives row t's f32 products for columns [n0, n1). `act` is the type
/// the activations had (x holds its values in f32).
template <typename Epilogue>
void projectRows(const float *x, DType act, int64_t T, int64_t K, const Rows &w,
                 int64_t N, Epilogue &&epilogue) {
  const int64_t block = blockFor(T);
  int64_t blocks = (N + block - 1) / block;
  int64_t tokenBlocks = (T + kTokenTile - 1) / kTokenTile;
  Panels panels;
  if (useOuter(T, w)) {
    thread_local CallerBuffer<float> panelBuf;
    thread_local CallerBuffer<uint32_t> pairBuf;
    float *packed = panelBuf.get(panelFloats(T, K));
    const int64_t P = isa().panel, numPanels = (T + P - 1) / P;
    uint32_t *pairs =
        usePairs(w, act) ? pairBuf.get(numPanels * pairWords(K)) : nullptr;
    parallelFor(numPanels, [&](int64_t t) {
      packPanel([&](int64_t m) { return x + m * K; }, T, K, t, packed);
      if (pairs)
        isa().packPairs(packed + t * P * K, K, pairs + t * pairWords(K));
    });
    panels = {packed, pairs, K};
  }
  static_assert(kTokenTile % kMaxPanel == 0, "token tiles start panels");
  parallelFor(blocks * tokenBlocks, [&](int64_t task) {
    int64_t n0 = (task % blocks) * block, n1 = std::min(N, n0 + block);
    int64_t t0 = (task / blocks) * kTokenTile;
    int64_t rows = std::min(T, t0 + kTokenTile) - t0;
    float tileOut[kTokenTile * kBlock];
    if (panels.f32) {
      outerBlock(panels.from(t0 / isa().panel), rows, w, n0, n1, tileOut,
                 block);
    } else {
      const float *a[kTokenTile];
      for (int64_t m = 0; m < rows; ++m)
        a[m] = x + (t0 + m) * K;
      thread_local std::vector<float> wideRows;
      Rows wt = widenFor(w, n0, n1, rows, wideRows);
      dotBlock(a, rows, wt, n0, n1, tileOut, block);
    }
    for (int64_t m = 0; m < rows; ++m)
      epilogue(t0 + m, n0, n1, tileOut + m * block);
  });
}

//===----------------------------------------------------------------------===//
// Expert FFNs
//===----------------------------------------------------------------------===//

struct ExpertsArgs {
  View<2> x, ids, weights;
  View<3> gate, up, down;
  View<2> gateBias, upBias, downBias, sharedGate, sharedUp, sharedDown,
      sharedExpertGate, out;
  int64_t activation;
  float alpha, limit, beta;
};

void experts(const ExpertsArgs &p) {
  const int64_t T = p.x.size[0], H = p.x.size[1], k = p.ids.size[1];
  const int64_t E = p.gate.size[0], I = p.gate.size[1];
  const int64_t S = p.sharedGate.present() ? p.sharedGate.size[0] : 0;
  if (T == 0)
    return;
  thread_local CallerBuffer<float> xBuf, actBuf, yBuf, shActBuf, shYBuf;
  thread_local CallerBuffer<int64_t> intBuf;
  float *x = xBuf.get(T * H);
  rowsToF32(p.x, T, x);

  // Group the T * k (token, slot) pairs by expert: segment e holds
  // positions [start[e], start[e + 1]); slotAt[pos] is the pair's slot.
  int64_t *ints = intBuf.get(4 * (E + 2) + 2 * T * k);
  int64_t *start = ints, *cursor = ints + E + 1, *active = ints + 2 * (E + 1);
  int64_t *panelStart = ints + 3 * (E + 1);
  int64_t *slotAt = panelStart + E + 3, *posOf = slotAt + T * k;
  std::fill(start, start + E + 1, 0);
  auto expertOf = [&](int64_t slot) {
    int32_t id;
    std::memcpy(&id, p.ids.at(slot / k, slot % k), 4);
    return std::clamp<int64_t>(id, 0, E - 1);
  };
  for (int64_t s = 0; s < T * k; ++s)
    ++start[expertOf(s) + 1];
  int64_t numActive = 0;
  for (int64_t e = 0; e < E; ++e) {
    if (start[e + 1])
      active[numActive++] = e;
    start[e + 1] += start[e];
    cursor[e] = start[e];
  }
  for (int64_t s = 0; s < T * k; ++s) {
    int64_t pos = cursor[expertOf(s)]++;
    slotAt[pos] = s;
    posOf[s] = pos;
  }

  float *y = yBuf.get(T * k * H);
  float *shY = S ? shYBuf.get(T * H) : nullptr;

  // Group g < numActive is expert active[g]; group numActive, the shared
  // expert over all tokens. A group's rows and weights:
  const int64_t groups = numActive + (S ? 1 : 0);
  auto countOf = [&](int64_t g) {
    return g == numActive ? T : start[active[g] + 1] - start[active[g]];
  };
  auto weightsOf = [&](int64_t g, const View<3> &routed, const View<2> &sh) {
    return g == numActive ? rowsOf(sh) : rowsOf(routed, active[g]);
  };

  // Groups with enough rows take the outer form: their rows of x are
  // packed into panels here, and stage 1 writes their activations packed
  // for stage 2. Group g's panels start at panel panelStart[g].
  const int64_t P = isa().panel;
  panelStart[0] = 0;
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t count = countOf(g);
    bool outer = useOuter(count, weightsOf(g, p.gate, p.sharedGate)) &&
                 useOuter(count, weightsOf(g, p.up, p.sharedUp)) &&
                 useOuter(count, weightsOf(g, p.down, p.sharedDown));
    panelStart[g + 1] = panelStart[g] + (outer ? (count + P - 1) / P : 0);
  }
  auto isOuter = [&](int64_t g) { return panelStart[g + 1] > panelStart[g]; };
  const int64_t routedPanels = panelStart[numActive];
  // Activations of the other groups, one row per pair (or token).
  bool routedDot = false;
  for (int64_t g = 0; g < numActive; ++g)
    routedDot |= !isOuter(g);
  float *act = routedDot ? actBuf.get(T * k * I) : nullptr;
  float *shAct = S && !isOuter(numActive) ? shActBuf.get(T * S) : nullptr;
  // The pair forms too where bf16 weights take the bf16 dot products
  // (usePairs): x's for stage 1, the activations' for stage 2.
  auto anyPairs = [&](const View<3> &routed, const View<2> &sh) {
    return (numActive && usePairs(rowsOf(routed, active[0]), p.x.type)) ||
           (S && usePairs(rowsOf(sh), p.x.type));
  };
  const bool xPairs =
      anyPairs(p.gate, p.sharedGate) || anyPairs(p.up, p.sharedUp);
  const bool actPairs = anyPairs(p.down, p.sharedDown);
  float *xPanels = nullptr, *actPanels = nullptr;
  uint32_t *xPairPanels = nullptr, *actPairPanels = nullptr;
  // The group a panel index belongs to.
  auto groupOf = [&](int64_t panel) {
    return std::upper_bound(panelStart, panelStart + groups + 1, panel) -
           panelStart - 1;
  };
  if (panelStart[groups] > 0) {
    thread_local CallerBuffer<float> xPanelBuf, actPanelBuf;
    thread_local CallerBuffer<uint32_t> xPairBuf, actPairBuf;
    xPanels = xPanelBuf.get(panelStart[groups] * P * H);
    actPanels = actPanelBuf.get(routedPanels * P * I +
                                (panelStart[groups] - routedPanels) * P * S);
    if (xPairs)
      xPairPanels = xPairBuf.get(panelStart[groups] * pairWords(H));
    if (actPairs)
      actPairPanels =
          actPairBuf.get(routedPanels * pairWords(I) +
                         (panelStart[groups] - routedPanels) * pairWords(S));
    parallelFor(panelStart[groups], [&](int64_t panel) {
      int64_t g = groupOf(panel);
      int64_t p0 = g == numActive ? 0 : start[active[g]];
      packPanel(
          [&](int64_t m) {
            return x + (g == numActive ? m : slotAt[p0 + m] / k) * H;
          },
          countOf(g), H, panel - panelStart[g],
          xPanels + panelStart[g] * P * H);
      if (xPairs)
        isa().packPairs(xPanels + panel * P * H, H,
                        xPairPanels + panel * pairWords(H));
    });
  }
  auto xPanelsOf = [&](int64_t g) {
    return Panels{xPanels, xPairPanels, H}.from(panelStart[g]);
  };
  // Group g's packed activations: the routed groups' rows of I, then the
  // shared expert's of S.
  auto actPanelsOf = [&](int64_t g) {
    if (g == numActive)
      return Panels{actPanels + routedPanels * P * I,
                    actPairPanels ? actPairPanels + routedPanels * pairWords(I)
                                  : nullptr,
                    S};
    return Panels{actPanels, actPairPanels, I}.from(panelStart[g]);
  };

  // Tasks: one per block of weight rows, the shared expert's (over all
  // tokens) first, then each active expert's. The shared expert's are the
  // longest: all tokens, and at decode weights often stored transposed
  // (ONNX MatMul initializers), which stream at about half the rate. Last
  // in line they left one thread idle for most of a task at the end of
  // each stage (deepseek's T=1 layer).
  const int64_t block = blockFor(T);
  auto forGroups = [&](int64_t rowsRouted, int64_t rowsShared, auto &&body) {
    int64_t perRouted = (rowsRouted + block - 1) / block;
    int64_t perShared = S ? (rowsShared + block - 1) / block : 0;
    int64_t tasks = numActive * perRouted + perShared;
    parallelFor(tasks, [&](int64_t task) {
      int64_t g = numActive, part = task;
      if (task >= perShared) {
        g = (task - perShared) / perRouted;
        part = (task - perShared) % perRouted;
      }
      int64_t rows = g < numActive ? rowsRouted : rowsShared;
      body(g, part * block, std::min(rows, part * block + block));
    });
  };

  // Stage 1: gate and up projections, bias, activation.
  const bool clamped = p.activation == MOERT_ACT_SWIGLU_CLAMPED;
  forGroups(I, S, [&](int64_t g, int64_t n0, int64_t n1) {
    bool shared = g == numActive;
    int64_t e = shared ? 0 : active[g];
    int64_t p0 = shared ? 0 : start[e], count = countOf(g);
    int64_t width = shared ? S : I;
    // Bias and activation of row m's products, into `dst`.
    auto activate = [&](float *gv, float *uv, float *dst) {
      if (!shared && p.gateBias.present())
        for (int64_t n = n0; n < n1; ++n) {
          gv[n - n0] += p.gateBias.f32(e, n);
          uv[n - n0] += p.upBias.f32(e, n);
        }
      isa().activation(gv, uv, dst, n1 - n0, !shared && clamped, p.alpha,
                       p.limit, p.beta);
    };
    if (isOuter(g)) {
      // The sums come out n-major per panel, which is how stage 2 takes
      // its activations packed: columns [n0, n1) of each panel are
      // activated in place of a transposition into rows and back.
      const int64_t numPanels = (count + P - 1) / P;
      thread_local std::vector<float> gBuf, uBuf;
      float *gAcc = scratch(gBuf, numPanels * kBlock * P);
      float *uAcc = scratch(uBuf, numPanels * kBlock * P);
      const Panels panels = xPanelsOf(g);
      outerSums(panels, count, weightsOf(g, p.gate, p.sharedGate), n0, n1,
                gAcc);
      outerSums(panels, count, weightsOf(g, p.up, p.sharedUp), n0, n1, uAcc);
      for (int64_t t = 0; t < numPanels; ++t) {
        float *gv = gAcc + t * kBlock * P, *uv = uAcc + t * kBlock * P;
        if (!shared && p.gateBias.present())
          for (int64_t n = n0; n < n1; ++n)
            for (int64_t m = 0; m < P; ++m) {
              gv[(n - n0) * P + m] += p.gateBias.f32(e, n);
              uv[(n - n0) * P + m] += p.upBias.f32(e, n);
            }
        float *dst = actPanelsOf(g).f32 + t * P * width + n0 * P;
        isa().activation(gv, uv, dst, (n1 - n0) * P, !shared && clamped,
                         p.alpha, p.limit, p.beta);
        // A last panel's missing rows stay zero.
        for (int64_t m = std::max<int64_t>(count - t * P, 0); m < P; ++m)
          for (int64_t n = 0; n < n1 - n0; ++n)
            dst[n * P + m] = 0.0f;
      }
      return;
    }
    // Gate and up rows may alternate in one tensor (com.microsoft.MoE's
    // swiglu_fusion = 1): then one pass over rows [2 n0, 2 n1) of that
    // tensor reads it in order, where a pass per projection read every
    // other row and the hardware prefetchers fetched the skipped rows too
    // (stage 1 of qwen3's bf16 T=1 layer streamed at 14 GB/s that way,
    // stage 2 at 17-19 GB/s).
    const Rows gateRows = weightsOf(g, p.gate, p.sharedGate);
    const Rows upRows = weightsOf(g, p.up, p.sharedUp);
    const bool fused = interleaved(gateRows, upRows);
    Rows both = gateRows;
    both.rowStride = gateRows.k;
    thread_local std::vector<float> wideGate, wideUp;
    Rows gw = fused ? widenFor(both, 2 * n0, 2 * n1, count, wideGate)
                    : widenFor(gateRows, n0, n1, count, wideGate);
    Rows uw = fused ? gw : widenFor(upRows, n0, n1, count, wideUp);
    float *dst = shared ? shAct : act + p0 * I;
    float gTile[kTokenTile * kBlock], uTile[kTokenTile * kBlock];
    const float *a[kTokenTile];
    for (int64_t m0 = 0; m0 < count; m0 += kTokenTile) {
      int64_t rows = std::min<int64_t>(kTokenTile, count - m0);
      for (int64_t m = 0; m < rows; ++m) {
        int64_t t = shared ? m0 + m : slotAt[p0 + m0 + m] / k;
        a[m] = x + t * H;
      }
      if (fused) {
        float pair[kTokenTile * 2 * kBlock];
        dotBlock(a, rows, gw, 2 * n0, 2 * n1, pair, 2 * block);
        for (int64_t m = 0; m < rows; ++m)
          for (int64_t n = 0; n < n1 - n0; ++n) {
            gTile[m * block + n] = pair[m * 2 * block + 2 * n];
            uTile[m * block + n] = pair[m * 2 * block + 2 * n + 1];
          }
      } else {
        dotBlock(a, rows, gw, n0, n1, gTile, block);
        dotBlock(a, rows, uw, n0, n1, uTile, block);
      }
      for (int64_t m = 0; m < rows; ++m)
        activate(gTile + m * block, uTile + m * block,
                 dst + (m0 + m) * width + n0);
    }
  });

  // The activations' pair forms, once stage 1 has written all columns.
  if (actPairPanels)
    parallelFor(panelStart[groups], [&](int64_t panel) {
      const int64_t g = groupOf(panel), t = panel - panelStart[g];
      const Panels act = actPanelsOf(g);
      isa().packPairs(act.f32 + t * P * act.k, act.k,
                      act.pairs + t * pairWords(act.k));
    });

  // Stage 2: down projection (and its bias) into one row per pair.
  forGroups(H, H, [&](int64_t g, int64_t n0, int64_t n1) {
    bool shared = g == numActive;
    int64_t e = shared ? 0 : active[g];
    int64_t p0 = shared ? 0 : start[e], count = countOf(g);
    int64_t width = shared ? S : I;
    float *dst = shared ? shY : y + p0 * H;
    Rows down = weightsOf(g, p.down, p.sharedDown);
    bool bias = !shared && p.downBias.present();
    if (isOuter(g)) {
      outerBlock(actPanelsOf(g), count, down, n0, n1, dst + n0, H);
      if (bias)
        for (int64_t m = 0; m < count; ++m)
          for (int64_t n = n0; n < n1; ++n)
            dst[m * H + n] += p.downBias.f32(e, n);
      return;
    }
    thread_local std::vector<float> wideDown;
    Rows dw = widenFor(down, n0, n1, count, wideDown);
    const float *src = shared ? shAct : act + p0 * I;
    const float *a[kTokenTile];
    float tileOut[kTokenTile * kBlock];
    for (int64_t m0 = 0; m0 < count; m0 += kTokenTile) {
      int64_t rows = std::min<int64_t>(kTokenTile, count - m0);
      for (int64_t m = 0; m < rows; ++m)
        a[m] = src + (m0 + m) * width;
      dotBlock(a, rows, dw, n0, n1, tileOut, block);
      for (int64_t m = 0; m < rows; ++m) {
        float *row = tileOut + m * block;
        if (bias)
          for (int64_t n = n0; n < n1; ++n)
            row[n - n0] += p.downBias.f32(e, n);
        std::memcpy(dst + (m0 + m) * H + n0, row, (n1 - n0) * sizeof(float));
      }
    }
  });

  // Combine: the weighted sum of each token's rows, plus the shared
  // expert (scaled by sigmoid(shared_expert_gate . x) when gated).
  parallelFor(T, [&](int64_t t) {
    thread_local std::vector<float> rowBuf;
    float *row = scratch(rowBuf, H);
    std::fill(row, row + H, 0.0f);
    for (int64_t j = 0; j < k; ++j) {
      float w = p.weights.f32(t, j);
      const float *src = y + posOf[t * k + j] * H;
      for (int64_t h = 0; h < H; ++h)
        row[h] += w * src[h];
    }
    if (S) {
      float scale = 1.0f;
      if (p.sharedExpertGate.present()) {
        float s = 0;
        for (int64_t h = 0; h < H; ++h)
          s += p.sharedExpertGate.f32(0, h) * x[t * H + h];
        scale = sigmoid(s);
      }
      const float *src = shY + t * H;
      for (int64_t h = 0; h < H; ++h)
        row[h] += scale * src[h];
    }
    storeRow(p.out, t, row);
  });
}

//===----------------------------------------------------------------------===//
// Projections
//===----------------------------------------------------------------------===//

struct LinearArgs {
  View<2> x, weight;
  View<1> bias, normWeight;
  View<2> residual, out;
  int64_t flags;
  float eps;
};

void linear(const LinearArgs &p) {
  const int64_t T = p.x.size[0], K = p.x.size[1], N = p.weight.size[0];
  if (T == 0)
    return;
  thread_local CallerBuffer<float> xBuf;
  float *x = xBuf.get(T * K);
  rowsToF32(p.x, T, x);
  if (p.flags & MOERT_LINEAR_NORM) {
    // moe.rms_norm's arithmetic: f32 statistics, the normalised value cast
    // to the input type before the multiply by the weight (or the product
    // in f32 with norm_weight_in_f32), then cast again.
    DType at = p.x.type;
    bool weightInF32 = p.flags & MOERT_LINEAR_NORM_WEIGHT_F32;
    parallelFor(T, [&](int64_t t) {
      float *row = x + t * K, sumSq = 0;
      for (int64_t i = 0; i < K; ++i)
        sumSq += row[i] * row[i];
      float inv = 1.0f / std::sqrt(sumSq / float(K) + p.eps);
      for (int64_t i = 0; i < K; ++i) {
        float normed = row[i] * inv, nw = p.normWeight.f32(i);
        row[i] = weightInF32 ? roundTo(at, normed * nw)
                             : roundTo(at, roundTo(at, normed) *
                                               roundTo(at, nw));
      }
    });
  }
  Rows w = rowsOf(p.weight);
  thread_local CallerBuffer<float> biasBuf;
  const float *bias = nullptr;
  if (p.bias.present()) {
    float *b = biasBuf.get(N);
    for (int64_t n = 0; n < N; ++n)
      b[n] = p.bias.f32(n);
    bias = b;
  }
  const bool fastStore = p.out.type == DType::F32 && p.out.stride[1] == 1;
  projectRows(x, p.x.type, T, K, w, N,
              [&](int64_t t, int64_t n0, int64_t n1, float *row) {
                if (bias)
                  for (int64_t n = n0; n < n1; ++n)
                    row[n - n0] += bias[n];
                if (p.residual.present())
                  for (int64_t n = n0; n < n1; ++n)
                    row[n - n0] = roundTo(p.out.type, row[n - n0]) +
                                  p.residual.f32(t, n);
                if (fastStore) {
                  std::memcpy(p.out.at(t, n0), row, (n1 - n0) * sizeof(float));
                  return;
                }
                for (int64_t n = n0; n < n1; ++n)
                  fromF32(p.out.type, row[n - n0], p.out.at(t, n));
              });
}

//===----------------------------------------------------------------------===//
// Routing
//===----------------------------------------------------------------------===//

struct RouteArgs {
  View<2> x, gate;
  View<1> selectionBias, logitBias;
  View<2> ids, weights;
  View<1> offsets, slots;
  int64_t score, flags, nGroup, topkGroup, tile;
  float renormEps, scalingFactor;
};

/// arith.maximumf: NaN if either operand is.
float maximum(float a, float b) {
  if (std::isnan(a) || std::isnan(b))
    return std::numeric_limits<float>::quiet_NaN();
  return a > b ? a : b;
}

/// The first eligible index, then any strictly greater (the reference
/// lowering's argmax; ties go to the lower index).
template <typename Value, typename Eligible>
int64_t argmax(int64_t n, Value value, Eligible eligible) {
  int64_t best = -1;
  float bestValue = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) {
    if (!eligible(i))
      continue;
    float v = value(i);
    if (best < 0 || v > bestValue) {
      best = i;
      bestValue = v;
    }
  }
  return best;
}

void route(const RouteArgs &p) {
  const int64_t T = p.x.size[0], H = p.x.size[1], E = p.gate.size[0];
  const int64_t k = p.ids.size[1];
  if (T > 0) {
    thread_local CallerBuffer<float> xBuf, logitBuf;
    float *x = xBuf.get(T * H);
    rowsToF32(p.x, T, x);
    float *logits = logitBuf.get(T * E);
    projectRows(x, p.x.type, T, H, rowsOf(p.gate), E,
                [&](int64_t t, int64_t n0, int64_t n1, const float *row) {
                  std::memcpy(logits + t * E + n0, row,
                              (n1 - n0) * sizeof(float));
                });

    const bool topkFirst = p.flags & MOERT_ROUTE_TOPK_THEN_SOFTMAX;
    const bool top2 = p.flags & MOERT_ROUTE_GROUP_TOP2_SUM;
    const bool renorm = p.flags & MOERT_ROUTE_RENORM;
    const int64_t groupSize = E / std::max<int64_t>(p.nGroup, 1);
    parallelFor(T, [&](int64_t t) {
      thread_local std::vector<float> rowBuf;
      thread_local std::vector<char> flagBuf;
      float *logit = scratch(rowBuf, 3 * E + p.nGroup);
      float *score = logit + E, *sel = score + E, *groupScore = sel + E;
      char *chosen = scratch(flagBuf, E + p.nGroup), *kept = chosen + E;
      const bool round = p.flags & MOERT_ROUTE_ROUND_LOGITS;
      for (int64_t i = 0; i < E; ++i) {
        logit[i] = logits[t * E + i] +
                   (p.logitBias.present() ? p.logitBias.f32(i) : 0.0f);
        if (round)
          logit[i] = roundTo(p.x.type, logit[i]);
      }
      float maxLogit = 0, sumExp = 0;
      if (p.score == MOERT_SCORE_SOFTMAX && !topkFirst) {
        maxLogit = -std::numeric_limits<float>::infinity();
        for (int64_t i = 0; i < E; ++i)
          maxLogit = maximum(maxLogit, logit[i]);
        for (int64_t i = 0; i < E; ++i)
          sumExp += std::exp(logit[i] - maxLogit);
      }
      for (int64_t i = 0; i < E; ++i) {
        float l = logit[i];
        if (topkFirst || p.score == MOERT_SCORE_NONE)
          score[i] = l;
        else if (p.score == MOERT_SCORE_SOFTMAX)
          score[i] = std::exp(l - maxLogit) / sumExp;
        else
          score[i] = sigmoid(l);
        sel[i] = score[i] +
                 (p.selectionBias.present() ? p.selectionBias.f32(i) : 0.0f);
        chosen[i] = 0;
      }
      auto all = [](int64_t) { return true; };
      if (p.nGroup > 1) {
        for (int64_t gi = 0; gi < p.nGroup; ++gi) {
          const float *member = sel + gi * groupSize;
          int64_t first = argmax(
              groupSize, [&](int64_t i) { return member[i]; }, all);
          float gs = member[first];
          if (top2) {
            int64_t second = argmax(
                groupSize, [&](int64_t i) { return member[i]; },
                [&](int64_t i) { return i != first; });
            gs += second < 0 ? -std::numeric_limits<float>::infinity()
                             : member[second];
          }
          groupScore[gi] = gs;
          kept[gi] = 0;
        }
        for (int64_t r = 0; r < p.topkGroup; ++r) {
          int64_t best = argmax(
              p.nGroup, [&](int64_t i) { return groupScore[i]; },
              [&](int64_t i) { return !kept[i]; });
          if (best >= 0)
            kept[best] = 1;
        }
      }
      thread_local std::vector<int64_t> pickedBuf;
      thread_local std::vector<float> weightBuf;
      int64_t *picked = scratch(pickedBuf, k);
      float *w = scratch(weightBuf, k);
      const int64_t kk = k;
      for (int64_t j = 0; j < kk; ++j) {
        int64_t best = argmax(
            E, [&](int64_t i) { return sel[i]; },
            [&](int64_t i) {
              return !chosen[i] && (p.nGroup <= 1 || kept[i / groupSize]);
            });
        best = std::max<int64_t>(best, 0); // only with k > eligible experts
        chosen[best] = 1;
        picked[j] = best;
      }
      float topMax = -std::numeric_limits<float>::infinity();
      if (topkFirst)
        for (int64_t j = 0; j < kk; ++j)
          topMax = maximum(topMax, logit[picked[j]]);
      float total = 0;
      for (int64_t j = 0; j < kk; ++j) {
        w[j] = topkFirst ? std::exp(logit[picked[j]] - topMax)
                         : score[picked[j]];
        total += w[j];
      }
      for (int64_t j = 0; j < kk; ++j) {
        float v = w[j];
        if (topkFirst)
          v = v / total;
        if (renorm)
          v = v / ((topkFirst ? 1.0f : total) + p.renormEps);
        v = v * p.scalingFactor;
        int32_t id = int32_t(picked[j]);
        std::memcpy(p.ids.at(t, j), &id, 4);
        std::memcpy(p.weights.at(t, j), &v, 4);
      }
    });
  }
  if (!p.offsets.present())
    return;
  // moe.fused_route's permutation: each expert's slots in increasing
  // order, segments padded to a multiple of `tile` with -1.
  thread_local CallerBuffer<int64_t> countBuf;
  int64_t *count = countBuf.get(E);
  std::fill(count, count + E, 0);
  auto idOf = [&](int64_t slot) {
    int32_t id;
    std::memcpy(&id, p.ids.at(slot / k, slot % k), 4);
    return int64_t(id);
  };
  for (int64_t s = 0; s < T * k; ++s)
    ++count[idOf(s)];
  int64_t offset = 0;
  for (int64_t e = 0; e < E; ++e) {
    int32_t o = int32_t(offset);
    std::memcpy(p.offsets.at(e), &o, 4);
    int64_t padded = (count[e] + p.tile - 1) / p.tile * p.tile;
    count[e] = offset; // now the cursor
    offset += padded;
  }
  int32_t end = int32_t(offset), none = -1;
  std::memcpy(p.offsets.at(E), &end, 4);
  for (int64_t i = 0; i < p.slots.size[0]; ++i)
    std::memcpy(p.slots.at(i), &none, 4);
  for (int64_t s = 0; s < T * k; ++s) {
    int32_t slot = int32_t(s);
    std::memcpy(p.slots.at(count[idOf(s)]++), &slot, 4);
  }
}

constexpr DType f32 = DType::F32, bf16 = DType::BF16, f16 = DType::F16;

} // namespace
} // namespace moert::kernels

using namespace moert::kernels;

#define MOERT_DEFINE_KERNELS(A, W)                                             \
  extern "C" void _mlir_ciface_moert_experts_##A##_##W(                        \
      moert_memref2d *x, moert_memref2d *ids, moert_memref2d *weights,         \
      moert_memref3d *gate, moert_memref3d *up, moert_memref3d *down,          \
      moert_memref2d *gate_bias, moert_memref2d *up_bias,                      \
      moert_memref2d *down_bias, moert_memref2d *shared_gate,                  \
      moert_memref2d *shared_up, moert_memref2d *shared_down,                  \
      moert_memref2d *shared_expert_gate, moert_memref2d *out,                 \
      int64_t activation, float alpha, float limit, float beta) {              \
    experts({{x, A}, {ids, f32}, {weights, f32}, {gate, W}, {up, W},           \
             {down, W}, {gate_bias, W}, {up_bias, W}, {down_bias, W},          \
             {shared_gate, W}, {shared_up, W}, {shared_down, W},               \
             {shared_expert_gate, W}, {out, A}, activation, alpha, limit,     \
             beta});                                                           \
  }                                                                            \
  extern "C" void _mlir_ciface_moert_linear_##A##_##W(                         \
      moert_memref2d *x, moert_memref2d *weight, moert_memref1d *bias,         \
      moert_memref1d *norm_weight, moert_memref2d *residual,                   \
      moert_memref2d *out, int64_t flags, float eps) {                         \
    linear({{x, A}, {weight, W}, {bias, W},                                    \
            {norm_weight, (flags & MOERT_LINEAR_NORM_WEIGHT_STORED_F32) ? f32 : A},\
            {residual, A}, {out, A}, flags, eps});                             \
  }                                                                            \
  extern "C" void _mlir_ciface_moert_route_##A##_##W(                          \
      moert_memref2d *x, moert_memref2d *gate, moert_memref1d *selection_bias, \
      moert_memref1d *logit_bias, moert_memref2d *ids,                         \
      moert_memref2d *weights, moert_memref1d *offsets, moert_memref1d *slots, \
      int64_t score, int64_t flags, int64_t n_group, int64_t topk_group,       \
      int64_t tile, float renorm_eps, float scaling_factor) {                  \
    route({{x, A}, {gate, W}, {selection_bias, f32}, {logit_bias, f32},        \
           {ids, f32}, {weights, f32}, {offsets, f32}, {slots, f32}, score,    \
           flags, n_group, topk_group, tile, renorm_eps, scaling_factor});     \
  }
MOERT_KERNEL_TYPES(MOERT_DEFINE_KERNELS)
#undef MOERT_DEFINE_KERNELS

extern "C" const char *moert_kernels_isa(void) { return isa().name; }
extern "C" int moert_kernels_threads(void) { return threadCount(); }

extern "C" void moert_parallel_for(int64_t count,
                                   void (*task)(void *context, int64_t i),
                                   void *context) {
  parallelFor(count, task, context);
}
