//===- RoPETest.cpp - RoPE frequency and MLA scale helpers ----------------===//
//
// Expected values are published facts, not our own arithmetic:
// DeepSeek-V3's config (theta 1e4, yarn factor 40, original context 4096,
// beta 32/1, mscale = mscale_all_dim = 1, qk_rope_head_dim 64, qk head dim
// 192) gives the YaRN blend range of rotary pairs 10..23 and the softmax
// scale 0.13523 (../shared/reference/formats.md, section 1.1.5, from
// transformers' modeling_deepseek_v3.py and modeling_rope_utils.py).
//
//===----------------------------------------------------------------------===//

#include "moe/Support/RoPE.h"

#include <gtest/gtest.h>

#include <cmath>

namespace {

moe::RopeParams deepSeekV3() {
  moe::RopeParams p;
  p.theta = 10000.0;
  p.kind = moe::RopeScalingKind::Yarn;
  p.factor = 40.0;
  p.originalMaxPosition = 4096;
  p.betaFast = 32.0;
  p.betaSlow = 1.0;
  p.mscale = 1.0;
  p.mscaleAllDim = 1.0;
  return p;
}

TEST(RoPE, DefaultFrequenciesAreGeometric) {
  moe::RopeParams p;
  p.theta = 500000.0; // Llama 3
  moe::RopeTable t = moe::computeRopeTable(p, 128);
  ASSERT_EQ(t.invFreq.size(), 64u);
  EXPECT_DOUBLE_EQ(t.invFreq[0], 1.0);
  EXPECT_NEAR(t.invFreq[63], std::pow(500000.0, -126.0 / 128.0), 1e-18);
  EXPECT_DOUBLE_EQ(t.attentionFactor, 1.0);
}

TEST(RoPE, YarnCorrectionRangeOfDeepSeekV3) {
  auto [low, high] = moe::yarnCorrectionRange(deepSeekV3(), 64);
  EXPECT_EQ(low, 10.0);
  EXPECT_EQ(high, 23.0);
}

TEST(RoPE, YarnBlendsInterpolationAndExtrapolation) {
  moe::RopeParams p = deepSeekV3();
  moe::RopeTable t = moe::computeRopeTable(p, 64);
  moe::RopeParams plain;
  moe::RopeTable base = moe::computeRopeTable(plain, 64);
  ASSERT_EQ(t.invFreq.size(), 32u);
  // Below the range frequencies are kept, above it divided by the factor.
  for (int i = 0; i <= 10; ++i)
    EXPECT_DOUBLE_EQ(t.invFreq[i], base.invFreq[i]) << "pair " << i;
  for (int i = 23; i < 32; ++i)
    EXPECT_DOUBLE_EQ(t.invFreq[i], base.invFreq[i] / 40.0) << "pair " << i;
  // Half-way through the ramp (pair 16.5 of 10..23) the blend is even.
  double mid = 0.5 * (base.invFreq[16] + base.invFreq[16] / 40.0);
  EXPECT_GT(t.invFreq[16], base.invFreq[16] / 40.0);
  EXPECT_LT(t.invFreq[16], base.invFreq[16]);
  EXPECT_NEAR(t.invFreq[16], mid, 0.1 * base.invFreq[16]);
  // mscale == mscale_all_dim: cos/sin are not rescaled.
  EXPECT_DOUBLE_EQ(t.attentionFactor, 1.0);
}

TEST(RoPE, YarnAttentionFactorWithoutMScale) {
  moe::RopeParams p = deepSeekV3();
  p.mscale = p.mscaleAllDim = 0.0;
  moe::RopeTable t = moe::computeRopeTable(p, 64);
  EXPECT_NEAR(t.attentionFactor, 0.1 * std::log(40.0) + 1.0, 1e-12);
}

TEST(RoPE, MLASoftmaxScaleOfDeepSeekV3) {
  EXPECT_NEAR(moe::getMLASoftmaxScale(192, deepSeekV3()), 0.13523, 1e-5);
  EXPECT_NEAR(moe::yarnGetMScale(40.0, 1.0), 1.3689, 1e-4);
  moe::RopeParams plain;
  EXPECT_DOUBLE_EQ(moe::getMLASoftmaxScale(192, plain), 1.0 / std::sqrt(192.0));
}

TEST(RoPE, LinearScalingDividesFrequencies) {
  moe::RopeParams p;
  p.kind = moe::RopeScalingKind::Linear;
  p.factor = 4.0;
  EXPECT_EQ(moe::validateRopeParams(p), "");
  moe::RopeTable scaled = moe::computeRopeTable(p, 64);
  moe::RopeTable base = moe::computeRopeTable(moe::RopeParams(), 64);
  for (int i = 0; i < 32; ++i)
    EXPECT_DOUBLE_EQ(scaled.invFreq[i], base.invFreq[i] / 4.0) << "pair " << i;
  EXPECT_DOUBLE_EQ(scaled.attentionFactor, 1.0);
}

// GPT-OSS (head dim 64, theta 150000, yarn factor 32 over 4096 positions)
// sets `truncate: false`; vLLM's fix for it quotes the unrounded correction
// range 8.0928..17.398 (vllm-project/vllm#28244).
TEST(RoPE, YarnWithoutTruncation) {
  moe::RopeParams p;
  p.theta = 150000.0;
  p.kind = moe::RopeScalingKind::Yarn;
  p.factor = 32.0;
  p.originalMaxPosition = 4096;
  p.truncate = false;
  auto [low, high] = moe::yarnCorrectionRange(p, 64);
  EXPECT_NEAR(low, 8.0928, 1e-4);
  EXPECT_NEAR(high, 17.398, 1e-3);
  p.truncate = true;
  auto [lowT, highT] = moe::yarnCorrectionRange(p, 64);
  EXPECT_EQ(lowT, 8.0);
  EXPECT_EQ(highT, 18.0);
}

// Llama 3.1 (theta 500000, factor 8, low 1, high 4, original 8192, head dim
// 128): the band edges are wavelengths 8192 and 2048.
TEST(RoPE, Llama3Bands) {
  moe::RopeParams p;
  p.theta = 500000.0;
  p.kind = moe::RopeScalingKind::Llama3;
  p.factor = 8.0;
  p.lowFreqFactor = 1.0;
  p.highFreqFactor = 4.0;
  p.originalMaxPosition = 8192;
  ASSERT_EQ(moe::validateRopeParams(p), "");
  moe::RopeTable t = moe::computeRopeTable(p, 128);
  moe::RopeParams plain;
  plain.theta = 500000.0;
  moe::RopeTable base = moe::computeRopeTable(plain, 128);
  int kept = 0, scaled = 0, blended = 0;
  for (int i = 0; i < 64; ++i) {
    double wavelen = 2 * M_PI / base.invFreq[i];
    if (wavelen < 2048.0) {
      EXPECT_DOUBLE_EQ(t.invFreq[i], base.invFreq[i]);
      ++kept;
    } else if (wavelen > 8192.0) {
      EXPECT_DOUBLE_EQ(t.invFreq[i], base.invFreq[i] / 8.0);
      ++scaled;
    } else {
      EXPECT_LE(t.invFreq[i], base.invFreq[i]);
      EXPECT_GE(t.invFreq[i], base.invFreq[i] / 8.0);
      ++blended;
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(scaled, 0);
  EXPECT_GT(blended, 0);
}

TEST(RoPE, ValidationNamesTheField) {
  moe::RopeParams p = deepSeekV3();
  p.originalMaxPosition = 0;
  EXPECT_NE(moe::validateRopeParams(p).find("'original_max_position'"),
            std::string::npos);
  p = deepSeekV3();
  p.betaFast = 0.5;
  EXPECT_NE(moe::validateRopeParams(p).find("'beta_fast'"), std::string::npos);
  p = deepSeekV3();
  p.theta = 1.0; // ln(theta) divides the yarn correction range
  EXPECT_NE(moe::validateRopeParams(p).find("'theta' must be greater than 1"),
            std::string::npos);
  p = moe::RopeParams();
  p.theta = -1.0;
  EXPECT_NE(moe::validateRopeParams(p).find("'theta'"), std::string::npos);
  EXPECT_EQ(moe::validateRopeParams(deepSeekV3()), "");
}

} // namespace
