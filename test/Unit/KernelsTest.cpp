//===- KernelsTest.cpp - The runtime's CPU kernels on awkward shapes ------===//
//
// The lit tests compare whole models through the kernels with the reference
// lowering and transformers; these cases aim at the kernels' edges instead:
// sizes that are not multiples of the vector width, the 4 x 3 tile, the
// 48- and 192-row task blocks or the 1024-element K chunk, the outer-product
// form's panels; transposed and row-strided weights; 16-bit weights;
// biases, shared experts and the clamped activation; ids outside [0, E).
// Each is checked against a plain double loop of the op's definition. CTest
// runs the binary again with MOERT_ISA=generic, so the portable code is
// checked on every CPU, and with MOERT_ISA=avx512bf16-emulated, the AVX-512
// build's code (64-byte vectors, bf16 dot products) in portable
// instructions.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/moert_kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace {

uint16_t toBF16(float v) {
  uint32_t w;
  std::memcpy(&w, &v, 4);
  return uint16_t((w + 0x7fff + ((w >> 16) & 1)) >> 16);
}
float fromBF16(uint16_t h) {
  uint32_t w = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &w, 4);
  return f;
}

/// A row-major tensor in f32 or bf16 with its descriptor; `transposed`
/// stores a 2-D [R, C] tensor column-major (strides [1, R]), and
/// `rowPadding` spaces rows further apart than their length.
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> values; // logical, row-major
  std::vector<char> storage;
  bool bf16 = false;
  bool transposed = false;
  int64_t rowPadding = 0;

  Tensor(std::vector<int64_t> s, std::mt19937 &rng, bool isBF16 = false,
         float scale = 1.0f)
      : shape(std::move(s)), bf16(isBF16) {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    std::normal_distribution<float> normal(0.0f, scale);
    values.resize(n);
    for (float &v : values) {
      v = normal(rng);
      if (bf16)
        v = fromBF16(toBF16(v));
    }
  }
  static Tensor zeros(std::vector<int64_t> s) {
    std::mt19937 rng(0);
    Tensor t(std::move(s), rng);
    std::fill(t.values.begin(), t.values.end(), 0.0f);
    return t;
  }
  int bytes() const { return bf16 ? 2 : 4; }

  std::vector<int64_t> strides() const {
    int r = int(shape.size());
    std::vector<int64_t> st(r, 1);
    if (transposed) {
      st[0] = 1;
      st[1] = shape[0];
      return st;
    }
    for (int i = r - 2; i >= 0; --i)
      st[i] = st[i + 1] * shape[i + 1] + (i == r - 2 ? rowPadding : 0);
    return st;
  }

  /// Writes `values` into `storage` with the layout's strides.
  void pack() {
    std::vector<int64_t> st = strides();
    int64_t extent = 1;
    for (size_t i = 0; i < shape.size(); ++i)
      extent += (shape[i] - 1) * st[i];
    storage.assign(extent * bytes(), 0);
    std::vector<int64_t> idx(shape.size(), 0);
    for (size_t flat = 0; flat < values.size(); ++flat) {
      int64_t off = 0, rem = int64_t(flat);
      for (int i = int(shape.size()) - 1; i >= 0; --i) {
        idx[i] = rem % shape[i];
        rem /= shape[i];
        off += idx[i] * st[i];
      }
      if (bf16) {
        uint16_t h = toBF16(values[flat]);
        std::memcpy(&storage[off * 2], &h, 2);
      } else {
        std::memcpy(&storage[off * 4], &values[flat], 4);
      }
    }
  }

  template <typename Desc> Desc desc() {
    pack();
    Desc d{};
    d.allocated = d.aligned = storage.data();
    std::vector<int64_t> st = strides();
    for (size_t i = 0; i < shape.size(); ++i) {
      d.sizes[i] = shape[i];
      d.strides[i] = st[i];
    }
    return d;
  }

  /// Reads results back out of `storage`.
  float at(int64_t r, int64_t c) const {
    std::vector<int64_t> st = strides();
    int64_t off = r * st[0] + c * st[1];
    if (bf16) {
      uint16_t h;
      std::memcpy(&h, &storage[off * 2], 2);
      return fromBF16(h);
    }
    float f;
    std::memcpy(&f, &storage[off * 4], 4);
    return f;
  }
  float v(int64_t i, int64_t j) const { return values[i * shape[1] + j]; }
  float v(int64_t e, int64_t i, int64_t j) const {
    return values[(e * shape[1] + i) * shape[2] + j];
  }
};

template <typename Desc> Desc absent() { return Desc{}; }

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

struct ExpertsCase {
  int64_t T, H, E, I, k, S;
  bool bf16, biases, clamped, sharedGate, transposedShared, padded;
  /// Gate and up rows alternating in one [E, 2I, H] tensor, as
  /// com.microsoft.MoE's swiglu_fusion = 1 stores them.
  bool interleaved;
};

class ExpertsKernel : public ::testing::TestWithParam<ExpertsCase> {};

TEST_P(ExpertsKernel, MatchesDefinition) {
  const ExpertsCase c = GetParam();
  std::mt19937 rng(unsigned(c.T * 131 + c.H * 7 + c.I));
  Tensor x({c.T, c.H}, rng, c.bf16);
  Tensor gate({c.E, c.I, c.H}, rng, c.bf16, 0.2f), up({c.E, c.I, c.H}, rng,
                                                        c.bf16, 0.2f);
  Tensor down({c.E, c.H, c.I}, rng, c.bf16, 0.2f);
  Tensor gb({c.E, c.I}, rng, c.bf16, 0.1f), ub({c.E, c.I}, rng, c.bf16, 0.1f),
      db({c.E, c.H}, rng, c.bf16, 0.1f);
  Tensor sg({std::max<int64_t>(c.S, 1), c.H}, rng, c.bf16, 0.2f),
      su({std::max<int64_t>(c.S, 1), c.H}, rng, c.bf16, 0.2f),
      sd({c.H, std::max<int64_t>(c.S, 1)}, rng, c.bf16, 0.2f),
      sgate({1, c.H}, rng, c.bf16, 0.2f);
  if (c.padded) {
    gate.rowPadding = 5; // rows 5 elements apart beyond their length
    x.rowPadding = 3;
  }
  if (c.transposedShared)
    sd.transposed = sg.transposed = true;
  // Ids: spread over the experts, with repeats and out-of-range ids that
  // the kernel clamps.
  std::vector<int32_t> idv(c.T * c.k);
  std::uniform_int_distribution<int> pick(-1, int(c.E));
  for (int32_t &id : idv)
    id = pick(rng);
  Tensor w({c.T, c.k}, rng, false, 0.5f);
  moert_memref2d ids{idv.data(), idv.data(), 0, {c.T, c.k}, {c.k, 1}};
  Tensor out = Tensor::zeros({c.T, c.H});
  out.bf16 = c.bf16;

  auto xd = x.desc<moert_memref2d>(), wd = w.desc<moert_memref2d>();
  auto gd = gate.desc<moert_memref3d>(), ud = up.desc<moert_memref3d>(),
       dd = down.desc<moert_memref3d>();
  // Interleaved: row 2i of `fused` is gate row i, row 2i + 1 up row i, and
  // the gate and up views are its even and odd rows.
  Tensor fused = Tensor::zeros({c.E, 2 * c.I, c.H});
  if (c.interleaved) {
    fused.bf16 = c.bf16;
    for (int64_t e = 0; e < c.E; ++e)
      for (int64_t i = 0; i < c.I; ++i)
        for (int64_t j = 0; j < c.H; ++j) {
          fused.values[((e * 2 * c.I) + 2 * i) * c.H + j] = gate.v(e, i, j);
          fused.values[((e * 2 * c.I) + 2 * i + 1) * c.H + j] = up.v(e, i, j);
        }
    gd = ud = fused.desc<moert_memref3d>();
    gd.sizes[1] = ud.sizes[1] = c.I;
    gd.strides[1] = ud.strides[1] = 2 * c.H;
    ud.aligned = fused.storage.data() + c.H * fused.bytes();
  }
  auto gbd = c.biases ? gb.desc<moert_memref2d>() : absent<moert_memref2d>();
  auto ubd = c.biases ? ub.desc<moert_memref2d>() : absent<moert_memref2d>();
  auto dbd = c.biases ? db.desc<moert_memref2d>() : absent<moert_memref2d>();
  auto sgd = c.S ? sg.desc<moert_memref2d>() : absent<moert_memref2d>();
  auto sud = c.S ? su.desc<moert_memref2d>() : absent<moert_memref2d>();
  auto sdd = c.S ? sd.desc<moert_memref2d>() : absent<moert_memref2d>();
  auto sgated = c.S && c.sharedGate ? sgate.desc<moert_memref2d>()
                                    : absent<moert_memref2d>();
  auto od = out.desc<moert_memref2d>();
  const float alpha = 1.702f, limit = 0.3f, beta = 1.0f;
  auto call = c.bf16 ? _mlir_ciface_moert_experts_bf16_bf16
                     : _mlir_ciface_moert_experts_f32_f32;
  call(&xd, &ids, &wd, &gd, &ud, &dd, &gbd, &ubd, &dbd, &sgd, &sud, &sdd,
       &sgated, &od,
       c.clamped ? MOERT_ACT_SWIGLU_CLAMPED : MOERT_ACT_SWIGLU, alpha, limit,
       beta);

  // One FFN on token t in double (its whole output row): weights through
  // accessors, optional biases, the routed or the plain activation.
  auto ffn = [&](int64_t t, int64_t width, auto gw, auto uw, auto dw,
                 auto gbias, auto ubias, bool act2) {
    std::vector<double> act(width), y(c.H, 0.0);
    for (int64_t i = 0; i < width; ++i) {
      double g = gbias(i), u = ubias(i);
      for (int64_t j = 0; j < c.H; ++j) {
        g += gw(i, j) * x.v(t, j);
        u += uw(i, j) * x.v(t, j);
      }
      act[i] = g * sigmoid(g) * u;
      if (act2) {
        double gc = std::min<double>(g, limit);
        double uc = std::clamp<double>(u, -limit, limit);
        act[i] = (uc + beta) * gc * sigmoid(gc * alpha);
      }
    }
    for (int64_t h = 0; h < c.H; ++h)
      for (int64_t i = 0; i < width; ++i)
        y[h] += dw(h, i) * act[i];
    return y;
  };
  auto zero = [](int64_t) { return 0.0; };
  double worst = 0, scale = 0;
  for (int64_t t = 0; t < c.T; ++t) {
    std::vector<double> acc(c.H, 0.0);
    for (int64_t j = 0; j < c.k; ++j) {
      int64_t e = std::clamp<int64_t>(idv[t * c.k + j], 0, c.E - 1);
      auto gbias = [&](int64_t i) { return c.biases ? gb.v(e, i) : 0.0; };
      auto ubias = [&](int64_t i) { return c.biases ? ub.v(e, i) : 0.0; };
      std::vector<double> y = ffn(
          t, c.I, [&](int64_t i, int64_t jj) { return gate.v(e, i, jj); },
          [&](int64_t i, int64_t jj) { return up.v(e, i, jj); },
          [&](int64_t hh, int64_t i) { return down.v(e, hh, i); }, gbias,
          ubias, c.clamped);
      for (int64_t h = 0; h < c.H; ++h)
        acc[h] += w.v(t, j) * (y[h] + (c.biases ? db.v(e, h) : 0.0));
    }
    if (c.S) {
      double s = 1;
      if (c.sharedGate) {
        double z = 0;
        for (int64_t jj = 0; jj < c.H; ++jj)
          z += sgate.v(0, jj) * x.v(t, jj);
        s = sigmoid(z);
      }
      std::vector<double> y =
          ffn(t, c.S, [&](int64_t i, int64_t jj) { return sg.v(i, jj); },
              [&](int64_t i, int64_t jj) { return su.v(i, jj); },
              [&](int64_t hh, int64_t i) { return sd.v(hh, i); }, zero, zero,
              false);
      for (int64_t h = 0; h < c.H; ++h)
        acc[h] += s * y[h];
    }
    for (int64_t h = 0; h < c.H; ++h) {
      worst = std::max(worst, std::abs(acc[h] - out.at(t, h)));
      scale = std::max(scale, std::abs(acc[h]));
    }
  }
  // f32: summation order only; bf16: one rounding of the output.
  EXPECT_LE(worst, (c.bf16 ? 8e-3 : 2e-5) * scale)
      << "max |diff| " << worst << " of max |ref| " << scale;
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ExpertsKernel,
    ::testing::Values(
        // T, H, E, I, k, S, bf16, biases, clamped, sharedGate,
        // transposedShared, padded, interleaved
        ExpertsCase{1, 64, 4, 48, 2, 0, false, false, false, false, false,
                    false, false},
        ExpertsCase{7, 37, 5, 53, 3, 0, false, false, false, false, false,
                    false, false},
        ExpertsCase{70, 1030, 3, 50, 2, 19, false, false, false, true, false,
                    false, false},
        ExpertsCase{9, 40, 4, 11, 2, 0, false, true, true, false, false,
                    true, false},
        ExpertsCase{13, 33, 6, 17, 2, 24, false, false, false, false, true,
                    false, false},
        ExpertsCase{66, 72, 4, 20, 2, 16, true, false, false, true, false,
                    false, false},
        ExpertsCase{2, 24, 8, 32, 4, 8, true, true, true, false, true,
                    false, false},
        // Decode-sized blocks (192 rows) with tails of 16 and 8 rows.
        ExpertsCase{3, 400, 3, 200, 2, 7, true, false, false, false, false,
                    false, false},
        // The outer-product form (32 or more rows per expert): panels with
        // missing rows, K chunks with tails, strided gate rows, biases,
        // and a transposed shared expert that keeps the dot form.
        ExpertsCase{50, 300, 2, 70, 2, 20, false, true, true, false, false,
                    true, false},
        ExpertsCase{80, 520, 2, 100, 1, 33, true, true, false, true, true,
                    false, false},
        // bf16 in the outer form with odd K (1031 for the gate and up,
        // chunked; 35 and 21 for the down projections): with bf16 dot
        // products (the avx512bf16 builds) the last pair is half empty.
        ExpertsCase{96, 1031, 2, 35, 2, 21, true, true, false, false, false,
                    false, false},
        // Gate and up rows interleaved in one tensor: decode (192 fused
        // rows per block and a tail), token tiles (under 32 rows per
        // expert) with 16-bit rows widened, and the outer form.
        ExpertsCase{1, 300, 4, 200, 2, 0, true, true, false, false, false,
                    false, true},
        ExpertsCase{3, 64, 3, 48, 2, 5, false, false, true, false, false,
                    false, true},
        ExpertsCase{24, 40, 3, 60, 2, 0, true, true, false, false, false,
                    false, true},
        ExpertsCase{40, 72, 2, 30, 2, 0, false, false, false, false, false,
                    false, true}));

TEST(LinearKernel, NormBiasResidualTransposed) {
  std::mt19937 rng(5);
  for (bool transposed : {false, true})
    for (int64_t T : {1, 5, 32, 67}) {
      // N: two decode-sized blocks (192 rows) and a tail of 17.
      const int64_t K = 1100, N = 401;
      Tensor x({T, K}, rng), norm({K}, rng, false, 0.5f),
          bias({N}, rng, false, 0.1f), res({T, N}, rng);
      Tensor weight(transposed ? std::vector<int64_t>{N, K}
                               : std::vector<int64_t>{N, K},
                    rng, false, 0.05f);
      if (transposed) {
        // A [N, K] view of a column-major buffer: strides [1, N].
        weight.transposed = true;
      }
      Tensor out = Tensor::zeros({T, N});
      auto xd = x.desc<moert_memref2d>(), wd = weight.desc<moert_memref2d>(),
           rd = res.desc<moert_memref2d>(), od = out.desc<moert_memref2d>();
      auto bd = bias.desc<moert_memref1d>(), nd = norm.desc<moert_memref1d>();
      _mlir_ciface_moert_linear_f32_f32(&xd, &wd, &bd, &nd, &rd, &od,
                                        MOERT_LINEAR_NORM, 1e-6f);
      double worst = 0, scale = 0;
      for (int64_t t = 0; t < T; ++t) {
        double ss = 0;
        for (int64_t i = 0; i < K; ++i)
          ss += double(x.v(t, i)) * x.v(t, i);
        double inv = 1.0 / std::sqrt(ss / K + 1e-6);
        for (int64_t n = 0; n < N; ++n) {
          double acc = bias.values[n];
          for (int64_t i = 0; i < K; ++i)
            acc += x.v(t, i) * inv * norm.values[i] * weight.v(n, i);
          acc += res.v(t, n);
          worst = std::max(worst, std::abs(acc - out.at(t, n)));
          scale = std::max(scale, std::abs(acc));
        }
      }
      EXPECT_LE(worst, 2e-5 * scale)
          << "T=" << T << (transposed ? " transposed" : "");
    }
}

/// max |x w^T - out| over the elements of out ([T, N]), against x [T, K]
/// and w [N, K] multiplied in double, and max |x w^T|.
std::pair<double, double> productError(const Tensor &x, const Tensor &w,
                                       const Tensor &out) {
  double worst = 0, scale = 0;
  for (int64_t t = 0; t < out.shape[0]; ++t)
    for (int64_t n = 0; n < out.shape[1]; ++n) {
      double acc = 0;
      for (int64_t i = 0; i < x.shape[1]; ++i)
        acc += double(x.v(t, i)) * w.v(n, i);
      worst = std::max(worst, std::abs(acc - out.at(t, n)));
      scale = std::max(scale, std::abs(acc));
    }
  return {worst, scale};
}

TEST(LinearKernel, BF16WeightsInTokenTiles) {
  // bf16 weights with f32 activations: 66 rows take the outer form in
  // tiles of 64 and 2 rows, so the short tile must widen them too.
  std::mt19937 rng(7);
  for (int64_t T : {3, 66}) {
    const int64_t K = 130, N = 50;
    Tensor x({T, K}, rng), weight({N, K}, rng, /*isBF16=*/true, 0.1f);
    Tensor out = Tensor::zeros({T, N});
    auto xd = x.desc<moert_memref2d>(), wd = weight.desc<moert_memref2d>(),
         od = out.desc<moert_memref2d>();
    auto none1 = absent<moert_memref1d>();
    auto none2 = absent<moert_memref2d>();
    _mlir_ciface_moert_linear_f32_bf16(&xd, &wd, &none1, &none1, &none2, &od,
                                       0, 0.0f);
    auto [worst, scale] = productError(x, weight, out);
    EXPECT_LE(worst, 2e-5 * scale) << "T=" << T;
  }
}

TEST(LinearKernel, BF16ActivationsAndWeights) {
  // bf16 both sides in the outer form (with bf16 dot products where the
  // ISA has them): odd K, a short last token tile, a panel with missing
  // rows. The activations are bf16 already, so the only rounding beyond
  // the order of sums is the output's.
  std::mt19937 rng(8);
  for (int64_t T : {33, 67}) {
    const int64_t K = 131, N = 53;
    Tensor x({T, K}, rng, /*isBF16=*/true),
        weight({N, K}, rng, /*isBF16=*/true, 0.1f);
    Tensor out = Tensor::zeros({T, N});
    out.bf16 = true;
    auto xd = x.desc<moert_memref2d>(), wd = weight.desc<moert_memref2d>(),
         od = out.desc<moert_memref2d>();
    auto none1 = absent<moert_memref1d>();
    auto none2 = absent<moert_memref2d>();
    _mlir_ciface_moert_linear_bf16_bf16(&xd, &wd, &none1, &none1, &none2,
                                        &od, 0, 0.0f);
    auto [worst, scale] = productError(x, weight, out);
    EXPECT_LE(worst, 4e-3 * scale) << "T=" << T;
  }
}

TEST(KernelsIsa, BestUnderTheCap) {
  // The build the runtime picks: the emulated one when MOERT_ISA names it,
  // else the best this CPU has, at most MOERT_ISA's. A wrong pick would
  // make the CTest runs meant for one build test another.
  // scripts/avx512-emulator-check.sh reads this line.
  std::printf("CPU kernels: %s\n", moert_kernels_isa());
  const char *cap = std::getenv("MOERT_ISA");
  std::string want = cap ? cap : "avx512bf16";
  if (want == "avx512bf16-emulated") {
    EXPECT_EQ(want, moert_kernels_isa());
    return;
  }
  const std::vector<std::string> order = {"generic", "avx2", "avx512",
                                          "avx512bf16"};
  size_t best = 0;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c")) {
    best = 1;
    if (__builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw"))
      best = __builtin_cpu_supports("avx512bf16") ? 3 : 2;
  }
#endif
  size_t capped = std::find(order.begin(), order.end(), want) - order.begin();
  if (capped == order.size())
    capped = 0; // an unknown name gets the portable code
  EXPECT_EQ(order[std::min(best, capped)], moert_kernels_isa());
}

TEST(RouteKernel, GroupedSigmoidWithPermutation) {
  std::mt19937 rng(9);
  const int64_t T = 11, H = 40, E = 16, k = 3, tile = 4;
  Tensor x({T, H}, rng), gate({E, H}, rng, false, 0.3f),
      bias({E}, rng, false, 0.05f);
  std::vector<int32_t> ids(T * k), offsets(E + 1), slots(T * k + E * (tile - 1));
  std::vector<float> weights(T * k);
  auto xd = x.desc<moert_memref2d>(), gd = gate.desc<moert_memref2d>();
  auto bd = bias.desc<moert_memref1d>();
  moert_memref1d none{};
  moert_memref2d idd{ids.data(), ids.data(), 0, {T, k}, {k, 1}};
  moert_memref2d wd{weights.data(), weights.data(), 0, {T, k}, {k, 1}};
  moert_memref1d od{offsets.data(), offsets.data(), 0, {E + 1}, {1}};
  moert_memref1d sd{slots.data(), slots.data(), 0, {int64_t(slots.size())},
                    {1}};
  _mlir_ciface_moert_route_f32_f32(
      &xd, &gd, &bd, &none, &idd, &wd, &od, &sd, MOERT_SCORE_SIGMOID,
      MOERT_ROUTE_GROUP_TOP2_SUM | MOERT_ROUTE_RENORM, 4, 2, tile, 1e-20f,
      2.5f);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> score(E), sel(E);
    for (int64_t e = 0; e < E; ++e) {
      double l = 0;
      for (int64_t h = 0; h < H; ++h)
        l += x.v(t, h) * gate.v(e, h);
      score[e] = sigmoid(l);
      sel[e] = score[e] + bias.values[e];
    }
    // Groups of 4 scored by their two best; keep 2.
    std::vector<std::pair<double, int>> groups;
    for (int g = 0; g < 4; ++g) {
      std::vector<double> m(sel.begin() + 4 * g, sel.begin() + 4 * g + 4);
      std::sort(m.rbegin(), m.rend());
      groups.push_back({m[0] + m[1], g});
    }
    std::sort(groups.begin(), groups.end(),
              [](auto a, auto b) { return a.first > b.first; });
    std::vector<std::pair<double, int>> eligible;
    for (int e = 0; e < E; ++e)
      if (e / 4 == groups[0].second || e / 4 == groups[1].second)
        eligible.push_back({sel[e], e});
    std::sort(eligible.begin(), eligible.end(),
              [](auto a, auto b) { return a.first > b.first; });
    double total = 0;
    for (int j = 0; j < k; ++j)
      total += score[eligible[j].second];
    for (int j = 0; j < k; ++j) {
      EXPECT_EQ(ids[t * k + j], eligible[j].second) << "token " << t;
      EXPECT_NEAR(weights[t * k + j],
                  2.5 * score[eligible[j].second] / (total + 1e-20), 1e-5);
    }
  }
  // The permutation: segments padded to `tile`, slots in increasing order.
  EXPECT_EQ(offsets[0], 0);
  int64_t placed = 0;
  for (int64_t e = 0; e < E; ++e) {
    int64_t prev = -1, n = 0;
    for (int64_t i = offsets[e]; i < offsets[e + 1]; ++i) {
      if (slots[i] < 0)
        continue;
      EXPECT_EQ(ids[slots[i]], e);
      EXPECT_GT(slots[i], prev);
      prev = slots[i];
      ++n;
    }
    EXPECT_EQ((offsets[e + 1] - offsets[e]) % tile, 0);
    EXPECT_LT(offsets[e + 1] - offsets[e] - n, tile);
    placed += n;
  }
  EXPECT_EQ(placed, T * k);
}

} // namespace
