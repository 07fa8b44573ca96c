//===- RoPE.h - Rotary position embedding frequencies -----------*- C++ -*-===//
//
// The frequency tables behind `#moe.rope` and the MLA softmax scale, computed
// the way Hugging Face transformers computes them (modeling_rope_utils.py,
// `_compute_default_rope_parameters`, `_compute_linear_scaling_rope_parameters`,
// `_compute_yarn_parameters`, `_compute_llama3_parameters`;
// modeling_deepseek_v3.py, `yarn_get_mscale`). Computed in double;
// transformers computes the base powers in f32 (relative differences of
// about 1e-7).
// Plain C++ so that the importers, the lowering and the runtime share it.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_SUPPORT_ROPE_H
#define MOE_SUPPORT_ROPE_H

#include <cstdint>
#include <string>
#include <vector>

namespace moe {

enum class RopeScalingKind { Default, Linear, Yarn, Llama3 };

/// The fields of a Hugging Face `rope_scaling` / `rope_parameters` block that
/// change the maths. Zero `mscale`, `mscaleAllDim` or `attentionFactor` mean
/// "absent from the config".
struct RopeParams {
  double theta = 10000.0;
  RopeScalingKind kind = RopeScalingKind::Default;
  double factor = 1.0;
  int64_t originalMaxPosition = 0;
  double betaFast = 32.0;
  double betaSlow = 1.0;
  double mscale = 0.0;
  double mscaleAllDim = 0.0;
  double attentionFactor = 0.0;
  /// Llama 3's band limits (rope_type "llama3"): wavelengths above
  /// original / low are interpolated, below original / high kept, blended
  /// in between.
  double lowFreqFactor = 1.0;
  double highFreqFactor = 4.0;
  /// Round the YaRN correction range outwards (transformers' default;
  /// GPT-OSS sets `truncate: false`).
  bool truncate = true;
};

/// Checks the parameters; returns
/// an empty string when they are usable, else what is wrong, naming the field.
std::string validateRopeParams(const RopeParams &params);

/// YaRN's magnitude correction: `0.1 * mscale * ln(scale) + 1` for
/// `scale > 1`, else 1.
double yarnGetMScale(double scale, double mscale = 1.0);

/// The YaRN correction range `[low, high]` (in rotary pair indices, clamped
/// to `[0, rotaryDim - 1]`, rounded outwards when `truncate`) between which
/// frequencies blend.
std::pair<double, double> yarnCorrectionRange(const RopeParams &params,
                                              int64_t rotaryDim);

/// The rotation table: `rotaryDim / 2` inverse frequencies (the angle of
/// pair `i` at position `p` is `p * invFreq[i]`; linear scaling is already
/// folded in) and the factor that multiplies cos and sin (1 unless YaRN).
struct RopeTable {
  std::vector<double> invFreq;
  double attentionFactor = 1.0;
};
RopeTable computeRopeTable(const RopeParams &params, int64_t rotaryDim);

/// The MLA softmax scale: `qkHeadDim^-0.5`, times `mscale^2` with
/// `mscale = yarnGetMScale(factor, mscale_all_dim)` when a scaled RoPE sets
/// `mscale_all_dim` (modeling_deepseek_v3.py, `DeepseekV3Attention`).
double getMLASoftmaxScale(int64_t qkHeadDim, const RopeParams &params);

} // namespace moe

#endif // MOE_SUPPORT_ROPE_H
