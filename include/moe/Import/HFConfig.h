//===- HFConfig.h - Hugging Face config.json, per model family --*- C++ -*-===//
//
// Reads a Hugging Face `config.json` into one normalised description of the
// model that the importer lowers to the moe dialect. Every field that
// changes the maths is read, with the defaults of the transformers
// configuration class of its family (transformers 5.23,
// models/*/configuration_*.py) when absent. Both config styles are accepted:
// transformers v4 (`rope_theta` + `rope_scaling` with `type` or `rope_type`)
// and v5 (`rope_parameters`). Values this compiler does not support (an
// unknown `model_type`, `hidden_act`, rope type, `scoring_func`,
// `topk_method`, a `quantization_config`, ...) are errors naming the file and
// the field.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IMPORT_HFCONFIG_H
#define MOE_IMPORT_HFCONFIG_H

#include "moe/Support/RoPE.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace moe {

enum class ModelFamily {
  DeepSeekV3, // deepseek_v3
  DeepSeekV2, // deepseek_v2
  Mixtral,    // mixtral
  Qwen2MoE,   // qwen2_moe
  Qwen3MoE,   // qwen3_moe
  OLMoE,      // olmoe
  Llama,      // llama
  Qwen2,      // qwen2
};

/// The `model_type` string of a family.
llvm::StringRef modelTypeName(ModelFamily family);

/// A router, in the terms of `moe.route`.
struct RouterConfig {
  enum class Score { Softmax, Sigmoid };
  Score score = Score::Softmax;
  int64_t numExperts = 0;
  int64_t topK = 0;
  /// Group-limited selection; 1 and 1 when there are no groups.
  int64_t nGroup = 1;
  int64_t topkGroup = 1;
  /// Groups scored by the sum of their two best scores (DeepSeek-V3) rather
  /// than their best (DeepSeek-V2).
  bool groupTop2Sum = false;
  /// The checkpoint has an f32 `e_score_correction_bias` used for selection.
  bool selectionBias = false;
  bool renormalize = false;
  double renormEps = 0.0;
  double scalingFactor = 1.0;
  /// transformers projects the router in the model's dtype (Mixtral,
  /// Qwen-MoE, OLMoE), so bf16 models round their logits; DeepSeek's
  /// routers project in f32.
  bool logitsInModelDtype = false;
};

/// DeepSeek's multi-head latent attention sizes.
struct MLAConfig {
  /// 0 when the query is a plain `q_proj` (`q_lora_rank` null or 0).
  int64_t qLoraRank = 0;
  int64_t kvLoraRank = 0;
  int64_t qkNopeHeadDim = 0;
  int64_t qkRopeHeadDim = 0;
  int64_t vHeadDim = 0;
  /// Rotate interleaved pairs (DeepSeek's checkpoints) rather than halves.
  bool ropeInterleave = true;
};

/// Where the per-head q/k RMSNorm of a family applies.
enum class QKNorm {
  None,
  PerHead,  // Qwen3-MoE: `q_norm`/`k_norm` of size head_dim, before RoPE.
  WholeProj // OLMoE: over the whole projected q and k.
};

struct ModelConfig {
  ModelFamily family;
  std::string configPath;

  int64_t vocabSize = 0;
  int64_t hiddenSize = 0;
  int64_t numLayers = 0;
  int64_t numHeads = 0;
  int64_t numKVHeads = 0;
  /// Per-head size of q and k for standard attention (for MLA: the rotary
  /// part, as transformers sets it).
  int64_t headDim = 0;
  /// Width of the dense MLP layers.
  int64_t intermediateSize = 0;
  double rmsNormEps = 1e-6;
  int64_t maxPositionEmbeddings = 0;
  RopeParams rope;
  bool tieWordEmbeddings = false;
  /// Bias on the q, k and v projections (Qwen2, Qwen2-MoE).
  bool qkvBias = false;
  /// Bias on the output projection too (`attention_bias` of Llama, OLMoE).
  bool outputBias = false;
  QKNorm qkNorm = QKNorm::None;
  /// OLMoE's clamp of q, k and v.
  std::optional<double> clipQKV;
  /// Sliding-window attention width, 0 for none, per layer.
  std::vector<int64_t> slidingWindow;

  /// MoE; absent for dense models.
  std::optional<RouterConfig> router;
  int64_t moeIntermediateSize = 0;
  /// Shared expert width, 0 for none.
  int64_t sharedIntermediateSize = 0;
  /// Qwen2-MoE multiplies the shared expert by sigmoid(shared_expert_gate x).
  bool sharedExpertGated = false;
  /// Per layer: MoE block (true) or dense MLP (false).
  std::vector<bool> moeLayers;

  std::optional<MLAConfig> mla;
};

/// Parses `path` (a config.json).
llvm::Expected<ModelConfig> parseHFConfig(llvm::StringRef path);

/// Parses an already-read config; `path` is used in messages.
llvm::Expected<ModelConfig> parseHFConfig(const llvm::json::Value &config,
                                          llvm::StringRef path);

} // namespace moe

#endif // MOE_IMPORT_HFCONFIG_H
