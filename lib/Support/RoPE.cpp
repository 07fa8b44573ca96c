//===- RoPE.cpp - Rotary position embedding frequencies -------------------===//

#include "moe/Support/RoPE.h"

#include <algorithm>
#include <cmath>

namespace moe {

static bool isPositiveFinite(double x) { return x > 0.0 && std::isfinite(x); }
static bool isNonNegativeFinite(double x) {
  return x >= 0.0 && std::isfinite(x);
}

std::string validateRopeParams(const RopeParams &p) {
  if (!isPositiveFinite(p.theta))
    return "'theta' must be a positive finite number";
  if (p.kind == RopeScalingKind::Default)
    return {};
  if (!isPositiveFinite(p.factor))
    return "'factor' must be a positive finite number";
  if (p.kind == RopeScalingKind::Linear)
    return {};
  if (p.kind == RopeScalingKind::Llama3) {
    if (p.originalMaxPosition <= 0)
      return "'original_max_position' must be positive for llama3 scaling";
    if (!isPositiveFinite(p.lowFreqFactor) ||
        !isPositiveFinite(p.highFreqFactor) ||
        p.highFreqFactor <= p.lowFreqFactor)
      return "'low_freq_factor' and 'high_freq_factor' must be positive "
             "finite numbers with high_freq_factor > low_freq_factor";
    return {};
  }
  if (p.originalMaxPosition <= 0)
    return "'original_max_position' must be positive for yarn scaling";
  // The correction range divides by ln(theta).
  if (p.theta <= 1.0)
    return "'theta' must be greater than 1 for yarn scaling";
  if (!isPositiveFinite(p.betaFast) || !isPositiveFinite(p.betaSlow))
    return "'beta_fast' and 'beta_slow' must be positive finite numbers";
  if (p.betaFast <= p.betaSlow)
    return "'beta_fast' must be greater than 'beta_slow'";
  if (!isNonNegativeFinite(p.mscale) || !isNonNegativeFinite(p.mscaleAllDim) ||
      !isNonNegativeFinite(p.attentionFactor))
    return "'mscale', 'mscale_all_dim' and 'attention_factor' must be "
           "non-negative finite numbers";
  return {};
}

double yarnGetMScale(double scale, double mscale) {
  if (scale <= 1.0)
    return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

// The rotary pair index at which a frequency completes `numRotations` turns
// over the original context.
static double findCorrectionDim(double numRotations, int64_t dim, double base,
                                int64_t maxPosition) {
  return (dim * std::log(maxPosition / (numRotations * 2 * M_PI))) /
         (2 * std::log(base));
}

std::pair<double, double> yarnCorrectionRange(const RopeParams &p,
                                              int64_t rotaryDim) {
  double low = findCorrectionDim(p.betaFast, rotaryDim, p.theta,
                                p.originalMaxPosition);
  double high = findCorrectionDim(p.betaSlow, rotaryDim, p.theta,
                                 p.originalMaxPosition);
  if (p.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  return {std::max(low, 0.0), std::min(high, double(rotaryDim - 1))};
}

RopeTable computeRopeTable(const RopeParams &p, int64_t rotaryDim) {
  RopeTable table;
  int64_t half = rotaryDim / 2;
  table.invFreq.resize(half);
  for (int64_t i = 0; i < half; ++i)
    table.invFreq[i] = 1.0 / std::pow(p.theta, double(2 * i) / rotaryDim);
  if (p.kind == RopeScalingKind::Linear) {
    // Positions divided by the factor: the same angles.
    for (double &f : table.invFreq)
      f /= p.factor;
    return table;
  }
  if (p.kind == RopeScalingKind::Llama3) {
    double original = double(p.originalMaxPosition);
    double lowFreqWavelen = original / p.lowFreqFactor;
    double highFreqWavelen = original / p.highFreqFactor;
    for (double &f : table.invFreq) {
      double wavelen = 2 * M_PI / f;
      if (wavelen > lowFreqWavelen) {
        f /= p.factor; // Low frequencies: interpolated.
      } else if (wavelen >= highFreqWavelen) {
        double smooth = (original / wavelen - p.lowFreqFactor) /
                        (p.highFreqFactor - p.lowFreqFactor);
        f = (1 - smooth) * f / p.factor + smooth * f;
      } // High frequencies: kept.
    }
    return table;
  }
  if (p.kind != RopeScalingKind::Yarn)
    return table;

  auto [low, high] = yarnCorrectionRange(p, rotaryDim);
  if (low == high)
    high += 0.001; // Avoid a division by zero in the ramp.
  for (int64_t i = 0; i < half; ++i) {
    double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
    double extrapolationWeight = 1.0 - ramp;
    double extrapolated = table.invFreq[i];
    double interpolated = extrapolated / p.factor;
    table.invFreq[i] = interpolated * (1.0 - extrapolationWeight) +
                       extrapolated * extrapolationWeight;
  }
  if (p.attentionFactor > 0.0)
    table.attentionFactor = p.attentionFactor;
  else if (p.mscale > 0.0 && p.mscaleAllDim > 0.0)
    table.attentionFactor = yarnGetMScale(p.factor, p.mscale) /
                            yarnGetMScale(p.factor, p.mscaleAllDim);
  else
    table.attentionFactor = yarnGetMScale(p.factor);
  return table;
}

double getMLASoftmaxScale(int64_t qkHeadDim, const RopeParams &p) {
  double scale = 1.0 / std::sqrt(double(qkHeadDim));
  if (p.kind != RopeScalingKind::Default && p.mscaleAllDim > 0.0) {
    double m = yarnGetMScale(p.factor, p.mscaleAllDim);
    scale *= m * m;
  }
  return scale;
}

} // namespace moe
