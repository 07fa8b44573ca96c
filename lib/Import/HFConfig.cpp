//===- HFConfig.cpp - Hugging Face config.json, per model family ----------===//
//
// Defaults below are those of the transformers 5.23 configuration classes
// (models/<family>/configuration_<family>.py); where transformers' modeling
// code ignores a field that the hub configs carry (DeepSeek's
// `scoring_func`, `topk_method`, `moe_layer_freq`), a value that would make
// the reference implementations disagree is refused rather than guessed.
//
//===----------------------------------------------------------------------===//

#include "moe/Import/HFConfig.h"

#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>
#include <cstdint>

using namespace llvm;

namespace moe {

StringRef modelTypeName(ModelFamily family) {
  switch (family) {
  case ModelFamily::DeepSeekV3: return "deepseek_v3";
  case ModelFamily::DeepSeekV2: return "deepseek_v2";
  case ModelFamily::Mixtral: return "mixtral";
  case ModelFamily::Qwen2MoE: return "qwen2_moe";
  case ModelFamily::Qwen3MoE: return "qwen3_moe";
  case ModelFamily::OLMoE: return "olmoe";
  case ModelFamily::Llama: return "llama";
  case ModelFamily::Qwen2: return "qwen2";
  }
  llvm_unreachable("unknown family");
}

namespace {
/// More layers than any model has (the largest have ~128); the per-layer
/// tables are allocated from this number.
constexpr int64_t kMaxLayers = 1 << 16;

/// Reads typed fields of one JSON object, remembering the first error.
/// `null` counts as absent, as it does for transformers' configs.
class FieldReader {
public:
  FieldReader(const json::Object &object, StringRef path, StringRef prefix = "")
      : object(object), path(path), prefix(prefix) {}

  bool has(StringRef key) const {
    const json::Value *v = object.get(key);
    return v && v->kind() != json::Value::Null;
  }

  int64_t integer(StringRef key, std::optional<int64_t> fallback) {
    if (!has(key))
      return missing(key, fallback).value_or(0);
    std::optional<int64_t> v = object.get(key)->getAsInteger();
    if (!v) {
      // Configs written by Python sometimes store integral floats (8.0).
      std::optional<double> d = object.get(key)->getAsNumber();
      if (d && std::isfinite(*d) && *d == std::floor(*d) &&
          std::fabs(*d) < 9.0e15)
        return static_cast<int64_t>(*d);
      fail(key, "must be an integer");
      return 0;
    }
    return *v;
  }

  /// A count or size. Above `max` is absurd for any model and would only
  /// make later allocations fail; 2^31 - 1 bounds every axis the compiled
  /// code indexes with i32 (positions, token ids). After an error it
  /// returns 1, so that the arithmetic done before the error is reported
  /// (divisions, per-layer loops) stays harmless.
  int64_t positive(StringRef key, std::optional<int64_t> fallback,
                   int64_t max = INT32_MAX) {
    int64_t v = integer(key, fallback);
    if (!error && v <= 0)
      fail(key, "must be positive, got " + Twine(v));
    else if (!error && v > max)
      fail(key, "is " + Twine(v) + ", beyond any real model (at most " +
                    Twine(max) + ")");
    return error ? 1 : v;
  }

  double number(StringRef key, std::optional<double> fallback) {
    if (!has(key))
      return missing(key, fallback).value_or(0.0);
    std::optional<double> v = object.get(key)->getAsNumber();
    if (!v || !std::isfinite(*v)) {
      fail(key, "must be a finite number");
      return 0.0;
    }
    return *v;
  }

  bool boolean(StringRef key, bool fallback) {
    if (!has(key))
      return fallback;
    std::optional<bool> v = object.get(key)->getAsBoolean();
    if (!v) {
      fail(key, "must be true or false");
      return fallback;
    }
    return *v;
  }

  std::string string(StringRef key, StringRef fallback) {
    if (!has(key))
      return fallback.str();
    std::optional<StringRef> v = object.get(key)->getAsString();
    if (!v) {
      fail(key, "must be a string");
      return fallback.str();
    }
    return v->str();
  }

  std::vector<int64_t> integers(StringRef key) {
    std::vector<int64_t> out;
    if (!has(key))
      return out;
    const json::Array *array = object.get(key)->getAsArray();
    if (!array) {
      fail(key, "must be a list of integers");
      return out;
    }
    for (const json::Value &v : *array) {
      std::optional<int64_t> i = v.getAsInteger();
      if (!i) {
        fail(key, "must be a list of integers");
        return {};
      }
      out.push_back(*i);
    }
    return out;
  }

  std::vector<std::string> strings(StringRef key) {
    std::vector<std::string> out;
    if (!has(key))
      return out;
    const json::Array *array = object.get(key)->getAsArray();
    for (size_t i = 0; array && i < array->size(); ++i) {
      std::optional<StringRef> s = (*array)[i].getAsString();
      if (!s)
        break;
      out.push_back(s->str());
    }
    if (!array || out.size() != array->size())
      fail(key, "must be a list of strings");
    return out;
  }

  /// Records `what` about `key` as the error unless one is already recorded.
  void fail(StringRef key, const Twine &what) {
    if (!error)
      error = (path + ": field '" + prefix + key + "' " + what).str();
  }

  /// The recorded error, or success.
  Error takeError() {
    if (!error)
      return Error::success();
    return createStringError(inconvertibleErrorCode(), *error);
  }

  bool failed() const { return error.has_value(); }

  /// Takes over the first error of a reader of a nested object.
  void adopt(const FieldReader &nested) {
    if (!error)
      error = nested.error;
  }

private:
  template <typename T>
  std::optional<T> missing(StringRef key, std::optional<T> fallback) {
    if (!fallback)
      fail(key, "is missing");
    return fallback;
  }

  const json::Object &object;
  StringRef path;
  std::string prefix;
  std::optional<std::string> error;
};

/// The family's transformers defaults for the fields every family has.
struct FamilyDefaults {
  int64_t vocab, hidden, intermediate, layers, heads;
  std::optional<int64_t> kvHeads; // nullopt: as many as query heads.
  double rmsEps;
  int64_t maxPositions;
  double ropeTheta;
};

FamilyDefaults defaultsFor(ModelFamily family) {
  switch (family) {
  case ModelFamily::DeepSeekV3:
    return {129280, 7168, 18432, 61, 128, 128, 1e-6, 4096, 10000.0};
  case ModelFamily::DeepSeekV2:
    return {102400, 4096, 11008, 32, 32, std::nullopt, 1e-6, 2048, 10000.0};
  case ModelFamily::Mixtral:
    return {32000, 4096, 14336, 32, 32, 8, 1e-5, 4096 * 32, 1000000.0};
  case ModelFamily::Qwen2MoE:
    return {151936, 2048, 5632, 24, 16, 16, 1e-6, 32768, 10000.0};
  case ModelFamily::Qwen3MoE:
    return {151936, 2048, 6144, 24, 32, 4, 1e-6, 32768, 10000.0};
  case ModelFamily::OLMoE:
    return {50304, 2048, 2048, 16, 16, std::nullopt, 1e-5, 4096, 10000.0};
  case ModelFamily::Llama:
    return {32000, 4096, 11008, 32, 32, std::nullopt, 1e-6, 2048, 10000.0};
  case ModelFamily::Qwen2:
    return {151936, 4096, 22016, 32, 32, 32, 1e-6, 32768, 10000.0};
  }
  llvm_unreachable("unknown family");
}
} // namespace

/// RoPE from `rope_parameters` (v5) or `rope_theta` + `rope_scaling` (v4;
/// transformers lets `rope_scaling` win when both are present).
static void parseRope(const json::Object &root, FieldReader &top,
                      StringRef path, double defaultTheta,
                      int64_t maxPositions, RopeParams &rope) {
  const char *blockName = nullptr;
  const json::Object *block = nullptr;
  for (const char *name : {"rope_scaling", "rope_parameters"}) {
    const json::Value *v = root.get(name);
    if (!v || v->kind() == json::Value::Null)
      continue;
    block = v->getAsObject();
    blockName = name;
    if (!block)
      top.fail(name, "must be an object");
    break;
  }
  rope.theta = top.number("rope_theta", defaultTheta);
  if (!block)
    return;

  FieldReader fields(*block, path, (Twine(blockName) + ".").str());
  if (fields.has("rope_theta"))
    rope.theta = fields.number("rope_theta", defaultTheta);
  std::string type =
      fields.string("rope_type", fields.string("type", "default"));
  if (type == "default") {
    rope.kind = RopeScalingKind::Default;
  } else if (type == "linear") {
    rope.kind = RopeScalingKind::Linear;
    rope.factor = fields.number("factor", std::nullopt);
  } else if (type == "yarn") {
    rope.kind = RopeScalingKind::Yarn;
    rope.originalMaxPosition =
        fields.positive("original_max_position_embeddings", maxPositions);
    // transformers derives a missing factor from the context extension.
    rope.factor = fields.has("factor")
                      ? fields.number("factor", std::nullopt)
                      : double(maxPositions) / rope.originalMaxPosition;
    // `x or default`: 0 and null both mean the default.
    rope.betaFast = fields.number("beta_fast", 32.0);
    if (rope.betaFast == 0.0)
      rope.betaFast = 32.0;
    rope.betaSlow = fields.number("beta_slow", 1.0);
    if (rope.betaSlow == 0.0)
      rope.betaSlow = 1.0;
    rope.mscale = fields.number("mscale", 0.0);
    rope.mscaleAllDim = fields.number("mscale_all_dim", 0.0);
    rope.attentionFactor = fields.number("attention_factor", 0.0);
    rope.truncate = fields.boolean("truncate", true);
  } else if (type == "llama3") {
    rope.kind = RopeScalingKind::Llama3;
    rope.factor = fields.number("factor", std::nullopt);
    rope.lowFreqFactor = fields.number("low_freq_factor", std::nullopt);
    rope.highFreqFactor = fields.number("high_freq_factor", std::nullopt);
    rope.originalMaxPosition =
        fields.positive("original_max_position_embeddings", std::nullopt);
  } else {
    fields.fail(block->get("rope_type") ? "rope_type" : "type",
                "'" + type +
                    "' is not a supported RoPE type (default, linear, yarn, "
                    "llama3)");
  }
  if (fields.failed()) {
    top.adopt(fields);
    return;
  }
  std::string problem = validateRopeParams(rope);
  if (!problem.empty())
    top.fail(blockName, "is invalid: " + problem);
}

Expected<ModelConfig> parseHFConfig(const json::Value &config, StringRef path) {
  const json::Object *root = config.getAsObject();
  if (!root)
    return createStringError(inconvertibleErrorCode(),
                             path + ": is not a JSON object");
  FieldReader top(*root, path);

  if (top.has("quantization_config")) {
    std::string method = "unknown";
    if (const json::Object *q = root->getObject("quantization_config"))
      if (std::optional<StringRef> m = q->getString("quant_method"))
        method = m->str();
    top.fail("quantization_config",
             "says the checkpoint is quantised ('" + method +
                 "'); quantised checkpoints are not supported yet");
    return top.takeError();
  }

  std::string modelType = top.string("model_type", "");
  if (top.failed())
    return top.takeError();
  std::optional<ModelFamily> family =
      StringSwitch<std::optional<ModelFamily>>(modelType)
          .Case("deepseek_v3", ModelFamily::DeepSeekV3)
          .Case("deepseek_v2", ModelFamily::DeepSeekV2)
          .Case("mixtral", ModelFamily::Mixtral)
          .Case("qwen2_moe", ModelFamily::Qwen2MoE)
          .Case("qwen3_moe", ModelFamily::Qwen3MoE)
          .Case("olmoe", ModelFamily::OLMoE)
          .Case("llama", ModelFamily::Llama)
          .Case("qwen2", ModelFamily::Qwen2)
          .Default(std::nullopt);
  if (!family) {
    top.fail("model_type",
             modelType.empty()
                 ? Twine("is missing")
                 : "'" + modelType +
                       "' is not supported (deepseek_v3, deepseek_v2, "
                       "mixtral, qwen2_moe, qwen3_moe, olmoe, llama, qwen2)");
    return top.takeError();
  }

  ModelConfig out;
  out.family = *family;
  out.configPath = path.str();
  FamilyDefaults d = defaultsFor(*family);
  out.vocabSize = top.positive("vocab_size", d.vocab);
  out.hiddenSize = top.positive("hidden_size", d.hidden);
  out.intermediateSize = top.positive("intermediate_size", d.intermediate);
  // Per-layer tables are sized by this before any tensor is read.
  out.numLayers = top.positive("num_hidden_layers", d.layers, kMaxLayers);
  out.numHeads = top.positive("num_attention_heads", d.heads);
  out.numKVHeads =
      top.has("num_key_value_heads")
          ? top.positive("num_key_value_heads", std::nullopt)
          : d.kvHeads.value_or(out.numHeads);
  out.rmsNormEps = top.number("rms_norm_eps", d.rmsEps);
  out.maxPositionEmbeddings =
      top.positive("max_position_embeddings", d.maxPositions);
  out.tieWordEmbeddings = top.boolean("tie_word_embeddings", false);
  std::string act = top.string("hidden_act", "silu");
  if (act != "silu")
    top.fail("hidden_act", "'" + act + "' is not supported (silu is)");
  if (top.failed())
    return top.takeError();
  if (out.numHeads % out.numKVHeads != 0)
    top.fail("num_key_value_heads",
             "(" + Twine(out.numKVHeads) +
                 ") must divide num_attention_heads (" + Twine(out.numHeads) +
                 ")");
  if (!(out.rmsNormEps >= 0.0))
    top.fail("rms_norm_eps", "must not be negative");
  out.headDim = top.has("head_dim") ? top.positive("head_dim", std::nullopt)
                                    : out.hiddenSize / out.numHeads;
  // MLA models set their own head sizes below.
  bool mlaFamily = *family == ModelFamily::DeepSeekV3 ||
                   *family == ModelFamily::DeepSeekV2;
  if (!top.has("head_dim") && !mlaFamily && out.hiddenSize % out.numHeads != 0)
    top.fail("num_attention_heads",
             "(" + Twine(out.numHeads) + ") must divide hidden_size (" +
                 Twine(out.hiddenSize) + ") when head_dim is not given");
  parseRope(*root, top, path, d.ropeTheta, out.maxPositionEmbeddings,
            out.rope);
  out.slidingWindow.assign(out.numLayers, 0);
  out.moeLayers.assign(out.numLayers, false);

  // The expert count has two names in every MoE family: the class field and
  // its transformers attribute_map alias (v5 saves one, hub configs the
  // other).
  auto routerWith = [&](RouterConfig::Score score, StringRef expertsKey,
                        StringRef expertsAlias,
                        std::optional<int64_t> experts,
                        std::optional<int64_t> topK) {
    RouterConfig r;
    r.score = score;
    r.numExperts = top.has(expertsKey) || !top.has(expertsAlias)
                       ? top.positive(expertsKey, experts)
                       : top.positive(expertsAlias, experts);
    r.topK = top.positive("num_experts_per_tok", topK);
    if (!top.failed() && r.topK > r.numExperts)
      top.fail("num_experts_per_tok",
               "(" + Twine(r.topK) + ") exceeds the number of experts (" +
                   Twine(r.numExperts) + ")");
    return r;
  };
  // Qwen-style sparse layers: MoE unless listed in mlp_only_layers or off the
  // decoder_sparse_step grid.
  auto qwenSparseLayers = [&]() {
    int64_t step = top.positive("decoder_sparse_step", 1);
    std::vector<int64_t> mlpOnly = top.integers("mlp_only_layers");
    for (int64_t layer = 0; layer < out.numLayers; ++layer)
      out.moeLayers[layer] =
          !llvm::is_contained(mlpOnly, layer) && (layer + 1) % step == 0;
  };
  // Qwen2 / Qwen2-MoE: sliding windows only with use_sliding_window, on the
  // layers layer_types marks (default: from max_window_layers on).
  auto qwenSlidingWindows = [&]() {
    if (!top.boolean("use_sliding_window", false))
      return;
    int64_t window = top.positive("sliding_window", 4096);
    std::vector<std::string> types = top.strings("layer_types");
    int64_t maxWindowLayers = top.integer("max_window_layers", 28);
    for (int64_t layer = 0; layer < out.numLayers; ++layer) {
      bool sliding = types.empty()
                         ? layer >= maxWindowLayers
                         : (size_t(layer) < types.size() &&
                            types[layer] == "sliding_attention");
      out.slidingWindow[layer] = sliding ? window : 0;
    }
  };

  switch (*family) {
  case ModelFamily::DeepSeekV3:
  case ModelFamily::DeepSeekV2: {
    bool v3 = *family == ModelFamily::DeepSeekV3;
    MLAConfig mla;
    mla.qLoraRank = top.integer("q_lora_rank", 0); // null: plain q_proj.
    mla.kvLoraRank = top.positive("kv_lora_rank", 512);
    mla.qkNopeHeadDim = top.positive("qk_nope_head_dim", 128);
    mla.qkRopeHeadDim = top.positive("qk_rope_head_dim", 64);
    mla.vHeadDim = top.positive("v_head_dim", 128);
    // V2's modeling always rotates interleaved pairs; V3 has the flag.
    mla.ropeInterleave = v3 ? top.boolean("rope_interleave", true) : true;
    if (mla.qLoraRank < 0)
      top.fail("q_lora_rank", "must not be negative");
    if (mla.qkRopeHeadDim % 2 != 0)
      top.fail("qk_rope_head_dim", "must be even");
    out.mla = mla;
    out.headDim = mla.qkRopeHeadDim; // As transformers sets it.
    bool bias = top.boolean("attention_bias", false);
    out.qkvBias = out.outputBias = bias;

    std::string scoring = top.string("scoring_func", v3 ? "sigmoid" : "softmax");
    if (scoring != (v3 ? "sigmoid" : "softmax"))
      top.fail("scoring_func", "'" + scoring + "' is not supported for " +
                                   modelType + " (transformers computes " +
                                   (v3 ? "sigmoid" : "softmax") + ")");
    RouterConfig r =
        routerWith(v3 ? RouterConfig::Score::Sigmoid
                      : RouterConfig::Score::Softmax,
                   "n_routed_experts",
                   v3 ? "num_local_experts" : "num_experts", v3 ? 256 : 64,
                   v3 ? std::optional<int64_t>(8) : std::nullopt);
    if (v3) {
      std::string method = top.string("topk_method", "noaux_tc");
      if (method != "noaux_tc")
        top.fail("topk_method", "'" + method +
                                    "' is not supported for deepseek_v3 "
                                    "(noaux_tc is)");
      r.nGroup = top.has("n_group") ? top.positive("n_group", 1) : 1;
      r.topkGroup = top.has("topk_group") ? top.positive("topk_group", 1) : 1;
      r.groupTop2Sum = true;
      r.selectionBias = true;
      r.renormalize = top.boolean("norm_topk_prob", true);
      r.renormEps = 1e-20;
      r.scalingFactor = top.number("routed_scaling_factor", 2.5);
    } else {
      std::string method = top.string("topk_method", "greedy");
      if (method == "group_limited_greedy") {
        r.nGroup = top.positive("n_group", std::nullopt);
        r.topkGroup = top.positive("topk_group", std::nullopt);
      } else if (method != "greedy") {
        top.fail("topk_method", "'" + method +
                                    "' is not supported for deepseek_v2 "
                                    "(greedy, group_limited_greedy are)");
      }
      // transformers' DeepseekV2 router never renormalises (it ignores
      // norm_topk_prob) and always scales.
      r.scalingFactor = top.number("routed_scaling_factor", 1.0);
    }
    if (!top.failed()) {
      if (r.numExperts % r.nGroup != 0)
        top.fail("n_group", "(" + Twine(r.nGroup) +
                                ") must divide n_routed_experts (" +
                                Twine(r.numExperts) + ")");
      else if (r.topkGroup > r.nGroup)
        top.fail("topk_group", "(" + Twine(r.topkGroup) +
                                   ") exceeds n_group (" + Twine(r.nGroup) +
                                   ")");
      else if (r.topK > r.topkGroup * (r.numExperts / r.nGroup))
        top.fail("num_experts_per_tok",
                 "(" + Twine(r.topK) + ") exceeds the experts of the " +
                     Twine(r.topkGroup) + " groups kept");
    }
    out.router = r;
    out.moeIntermediateSize =
        top.positive("moe_intermediate_size", v3 ? 2048 : 1407);
    out.sharedIntermediateSize =
        out.moeIntermediateSize * top.integer("n_shared_experts", v3 ? 1 : 2);
    int64_t firstDense = top.integer("first_k_dense_replace", v3 ? 3 : 0);
    int64_t freq = top.integer("moe_layer_freq", 1);
    if (freq != 1)
      top.fail("moe_layer_freq",
               "(" + Twine(freq) +
                   ") is not supported: transformers ignores it while the "
                   "reference code honours it, so the model is ambiguous");
    for (int64_t layer = 0; layer < out.numLayers; ++layer)
      out.moeLayers[layer] = layer >= firstDense;
    break;
  }
  case ModelFamily::Mixtral: {
    RouterConfig r = routerWith(RouterConfig::Score::Softmax,
                                "num_local_experts", "num_experts", 8, 2);
    r.renormalize = true;
    r.logitsInModelDtype = true;
    out.router = r;
    out.moeIntermediateSize = out.intermediateSize;
    out.moeLayers.assign(out.numLayers, true);
    if (top.has("sliding_window"))
      out.slidingWindow.assign(out.numLayers,
                               top.positive("sliding_window", std::nullopt));
    break;
  }
  case ModelFamily::Qwen2MoE:
  case ModelFamily::Qwen3MoE: {
    bool qwen2 = *family == ModelFamily::Qwen2MoE;
    RouterConfig r =
        routerWith(RouterConfig::Score::Softmax,
                   qwen2 ? "num_experts" : "num_local_experts",
                   qwen2 ? "num_local_experts" : "num_experts",
                   qwen2 ? 60 : 128, qwen2 ? 4 : 8);
    r.renormalize = top.boolean("norm_topk_prob", false);
    r.logitsInModelDtype = true;
    out.router = r;
    out.moeIntermediateSize =
        top.positive("moe_intermediate_size", qwen2 ? 1408 : 768);
    if (qwen2) {
      out.sharedIntermediateSize =
          top.integer("shared_expert_intermediate_size", 5632);
      out.sharedExpertGated = out.sharedIntermediateSize > 0;
      out.qkvBias = top.boolean("qkv_bias", true);
      qwenSlidingWindows();
    } else {
      out.qkNorm = QKNorm::PerHead;
      out.qkvBias = out.outputBias = top.boolean("attention_bias", false);
      if (top.boolean("use_sliding_window", false))
        out.slidingWindow.assign(out.numLayers,
                                 top.positive("sliding_window", 4096));
    }
    qwenSparseLayers();
    break;
  }
  case ModelFamily::OLMoE: {
    RouterConfig r =
        routerWith(RouterConfig::Score::Softmax, "num_experts",
                   "num_local_experts", 64, 8);
    r.renormalize = top.boolean("norm_topk_prob", false);
    r.logitsInModelDtype = true;
    out.router = r;
    out.moeIntermediateSize = out.intermediateSize;
    out.moeLayers.assign(out.numLayers, true);
    out.qkNorm = QKNorm::WholeProj;
    out.qkvBias = out.outputBias = top.boolean("attention_bias", false);
    if (top.has("clip_qkv"))
      out.clipQKV = top.number("clip_qkv", std::nullopt);
    break;
  }
  case ModelFamily::Llama:
    out.qkvBias = out.outputBias = top.boolean("attention_bias", false);
    if (top.boolean("mlp_bias", false))
      top.fail("mlp_bias", "is true; MLP biases are not supported yet");
    break;
  case ModelFamily::Qwen2:
    out.qkvBias = true; // Qwen2's q/k/v projections always have biases.
    qwenSlidingWindows();
    break;
  }
  if (top.failed())
    return top.takeError();
  if (out.mla == std::nullopt && out.headDim % 2 != 0)
    top.fail("head_dim", "(" + Twine(out.headDim) + ") must be even for RoPE");
  if (top.failed())
    return top.takeError();
  return out;
}

Expected<ModelConfig> parseHFConfig(StringRef path) {
  ErrorOr<std::unique_ptr<MemoryBuffer>> text =
      MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!text)
    return createStringError(inconvertibleErrorCode(),
                             path + ": cannot open: " +
                                 text.getError().message());
  Expected<json::Value> value = json::parse((*text)->getBuffer());
  if (!value)
    return createStringError(inconvertibleErrorCode(),
                             path + ": is not valid JSON: " +
                                 toString(value.takeError()));
  return parseHFConfig(*value, path);
}

} // namespace moe
