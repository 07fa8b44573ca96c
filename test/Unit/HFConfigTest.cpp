//===- HFConfigTest.cpp - config.json parsing per family ------------------===//
//
// The DeepSeek-V3 values are those of the published hub config (see
// ../shared/reference/formats.md, section 1.1.1); defaults are those of the
// transformers 5.23 configuration classes.
//
//===----------------------------------------------------------------------===//

#include "moe/Import/HFConfig.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace llvm;

namespace {

Expected<moe::ModelConfig> parse(StringRef text) {
  Expected<json::Value> value = json::parse(text);
  if (!value)
    return value.takeError();
  return moe::parseHFConfig(*value, "config.json");
}

std::string errorOf(StringRef text) {
  Expected<moe::ModelConfig> config = parse(text);
  if (config)
    return "";
  return toString(config.takeError());
}

// DeepSeek-V3's hub config.json (transformers v4 style), abridged to the
// fields that matter.
constexpr const char *kDeepSeekV3 = R"({
  "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
  "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432,
  "moe_intermediate_size": 2048, "num_hidden_layers": 61,
  "num_nextn_predict_layers": 1, "num_attention_heads": 128,
  "num_key_value_heads": 128, "n_shared_experts": 1, "n_routed_experts": 256,
  "routed_scaling_factor": 2.5, "kv_lora_rank": 512, "q_lora_rank": 1536,
  "qk_rope_head_dim": 64, "v_head_dim": 128, "qk_nope_head_dim": 128,
  "topk_method": "noaux_tc", "n_group": 8, "topk_group": 4,
  "num_experts_per_tok": 8, "moe_layer_freq": 1, "first_k_dense_replace": 3,
  "norm_topk_prob": true, "scoring_func": "sigmoid", "hidden_act": "silu",
  "max_position_embeddings": 163840, "rms_norm_eps": 1e-06,
  "rope_theta": 10000, "tie_word_embeddings": false,
  "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40,
    "mscale": 1.0, "mscale_all_dim": 1.0,
    "original_max_position_embeddings": 4096, "type": "yarn"}
})";

TEST(HFConfig, DeepSeekV3HubConfig) {
  Expected<moe::ModelConfig> c = parse(kDeepSeekV3);
  ASSERT_TRUE(!!c) << toString(c.takeError());
  EXPECT_EQ(c->family, moe::ModelFamily::DeepSeekV3);
  EXPECT_EQ(c->numLayers, 61);
  EXPECT_EQ(c->headDim, 64);
  ASSERT_TRUE(c->router.has_value());
  const moe::RouterConfig &r = *c->router;
  EXPECT_EQ(r.score, moe::RouterConfig::Score::Sigmoid);
  EXPECT_EQ(r.numExperts, 256);
  EXPECT_EQ(r.topK, 8);
  EXPECT_EQ(r.nGroup, 8);
  EXPECT_EQ(r.topkGroup, 4);
  EXPECT_TRUE(r.groupTop2Sum);
  EXPECT_TRUE(r.selectionBias);
  EXPECT_TRUE(r.renormalize);
  EXPECT_DOUBLE_EQ(r.renormEps, 1e-20);
  EXPECT_DOUBLE_EQ(r.scalingFactor, 2.5);
  ASSERT_TRUE(c->mla.has_value());
  EXPECT_EQ(c->mla->qLoraRank, 1536);
  EXPECT_EQ(c->mla->kvLoraRank, 512);
  EXPECT_EQ(c->mla->qkNopeHeadDim, 128);
  EXPECT_EQ(c->mla->vHeadDim, 128);
  EXPECT_TRUE(c->mla->ropeInterleave);
  EXPECT_EQ(c->moeIntermediateSize, 2048);
  EXPECT_EQ(c->sharedIntermediateSize, 2048);
  EXPECT_FALSE(c->moeLayers[2]);
  EXPECT_TRUE(c->moeLayers[3]);
  EXPECT_TRUE(c->moeLayers[60]);
  EXPECT_EQ(c->rope.kind, moe::RopeScalingKind::Yarn);
  EXPECT_DOUBLE_EQ(c->rope.factor, 40.0);
  EXPECT_EQ(c->rope.originalMaxPosition, 4096);
  EXPECT_DOUBLE_EQ(c->rope.mscaleAllDim, 1.0);
  EXPECT_NEAR(moe::getMLASoftmaxScale(c->mla->qkNopeHeadDim +
                                          c->mla->qkRopeHeadDim,
                                      c->rope),
              0.13523, 1e-5);
}

TEST(HFConfig, V4AndV5RopeStylesAgree) {
  std::string v4 = kDeepSeekV3;
  std::string v5 = v4;
  // transformers v5 writes the block as rope_parameters with rope_type and
  // the theta inside it.
  size_t at = v5.find("\"rope_scaling\"");
  v5.replace(at, std::string("\"rope_scaling\"").size(), "\"rope_parameters\"");
  v5.replace(v5.find("\"type\": \"yarn\""), 14,
             "\"rope_type\": \"yarn\", \"rope_theta\": 10000.0");
  v5.replace(v5.find("\"rope_theta\": 10000,"), 20, "");
  Expected<moe::ModelConfig> a = parse(v4), b = parse(v5);
  ASSERT_TRUE(!!a) << toString(a.takeError());
  ASSERT_TRUE(!!b) << toString(b.takeError());
  EXPECT_EQ(a->rope.kind, b->rope.kind);
  EXPECT_DOUBLE_EQ(a->rope.theta, b->rope.theta);
  EXPECT_DOUBLE_EQ(a->rope.factor, b->rope.factor);
  EXPECT_EQ(a->rope.originalMaxPosition, b->rope.originalMaxPosition);
  EXPECT_DOUBLE_EQ(a->rope.mscale, b->rope.mscale);
}

TEST(HFConfig, DeepSeekV2LiteHasNoGroupsAndPlainQuery) {
  Expected<moe::ModelConfig> c = parse(R"({"model_type": "deepseek_v2",
      "q_lora_rank": null, "n_routed_experts": 64, "num_experts_per_tok": 6,
      "topk_method": "greedy", "n_group": null, "topk_group": null,
      "first_k_dense_replace": 1, "norm_topk_prob": false,
      "num_hidden_layers": 27, "hidden_size": 2048, "num_attention_heads": 16})");
  ASSERT_TRUE(!!c) << toString(c.takeError());
  EXPECT_EQ(c->mla->qLoraRank, 0);
  EXPECT_EQ(c->router->score, moe::RouterConfig::Score::Softmax);
  EXPECT_EQ(c->router->nGroup, 1);
  EXPECT_FALSE(c->router->renormalize);
  EXPECT_FALSE(c->moeLayers[0]);
  EXPECT_TRUE(c->moeLayers[1]);
  EXPECT_EQ(c->sharedIntermediateSize, 2 * 1407);
}

TEST(HFConfig, QwenSparseLayersAndGatedSharedExpert) {
  Expected<moe::ModelConfig> c = parse(R"({"model_type": "qwen2_moe",
      "num_hidden_layers": 4, "decoder_sparse_step": 2,
      "mlp_only_layers": [3], "num_experts": 8, "num_experts_per_tok": 2,
      "shared_expert_intermediate_size": 32})");
  ASSERT_TRUE(!!c) << toString(c.takeError());
  EXPECT_EQ(c->moeLayers, (std::vector<bool>{false, true, false, false}));
  EXPECT_TRUE(c->sharedExpertGated);
  EXPECT_EQ(c->sharedIntermediateSize, 32);
  EXPECT_TRUE(c->qkvBias);
  EXPECT_FALSE(c->router->renormalize);
}

TEST(HFConfig, FamilyDefaults) {
  Expected<moe::ModelConfig> mixtral = parse(R"({"model_type": "mixtral"})");
  ASSERT_TRUE(!!mixtral) << toString(mixtral.takeError());
  EXPECT_DOUBLE_EQ(mixtral->rope.theta, 1000000.0);
  EXPECT_TRUE(mixtral->router->renormalize);
  EXPECT_EQ(mixtral->numKVHeads, 8);
  Expected<moe::ModelConfig> qwen3 = parse(R"({"model_type": "qwen3_moe",
      "head_dim": 128})");
  ASSERT_TRUE(!!qwen3) << toString(qwen3.takeError());
  EXPECT_EQ(qwen3->qkNorm, moe::QKNorm::PerHead);
  EXPECT_EQ(qwen3->headDim, 128);
  Expected<moe::ModelConfig> llama = parse(R"({"model_type": "llama",
      "num_attention_heads": 32, "num_key_value_heads": 8,
      "tie_word_embeddings": true})");
  ASSERT_TRUE(!!llama) << toString(llama.takeError());
  EXPECT_FALSE(llama->router.has_value());
  EXPECT_TRUE(llama->tieWordEmbeddings);
  EXPECT_EQ(llama->headDim, 128);
}

// DeepSeek-R1-Distill-Llama-8B's config (Llama 3.1 RoPE).
TEST(HFConfig, Llama3Rope) {
  Expected<moe::ModelConfig> c = parse(R"({"model_type": "llama",
      "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
      "max_position_embeddings": 131072, "rope_theta": 500000.0,
      "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0,
        "low_freq_factor": 1.0, "original_max_position_embeddings": 8192,
        "rope_type": "llama3"}})");
  ASSERT_TRUE(!!c) << toString(c.takeError());
  EXPECT_EQ(c->rope.kind, moe::RopeScalingKind::Llama3);
  EXPECT_DOUBLE_EQ(c->rope.factor, 8.0);
  EXPECT_EQ(c->rope.originalMaxPosition, 8192);
  EXPECT_DOUBLE_EQ(c->rope.highFreqFactor, 4.0);
}

TEST(HFConfig, RefusesWhatItCannotCompile) {
  EXPECT_EQ(errorOf(R"({"model_type": "deepseek_v3",
      "quantization_config": {"quant_method": "fp8", "fmt": "e4m3"}})"),
            "config.json: field 'quantization_config' says the checkpoint is "
            "quantised ('fp8'); quantised checkpoints are not supported yet");
  EXPECT_EQ(errorOf(R"({"model_type": "gpt2"})"),
            "config.json: field 'model_type' 'gpt2' is not supported "
            "(deepseek_v3, deepseek_v2, mixtral, qwen2_moe, qwen3_moe, olmoe, "
            "llama, qwen2)");
  EXPECT_EQ(errorOf(R"({"model_type": "llama", "hidden_act": "gelu"})"),
            "config.json: field 'hidden_act' 'gelu' is not supported (silu "
            "is)");
  EXPECT_EQ(errorOf(R"({"model_type": "deepseek_v3", "scoring_func": "softmax"})"),
            "config.json: field 'scoring_func' 'softmax' is not supported for "
            "deepseek_v3 (transformers computes sigmoid)");
  EXPECT_EQ(errorOf(R"({"model_type": "llama",
      "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}})"),
            "config.json: field 'rope_scaling.rope_type' 'dynamic' is not a "
            "supported RoPE type (default, linear, yarn, llama3)");
  EXPECT_EQ(errorOf(R"({"model_type": "deepseek_v2",
      "topk_method": "group_limited_greedy", "num_experts_per_tok": 2})"),
            "config.json: field 'n_group' is missing");
  EXPECT_EQ(errorOf(R"({"model_type": "deepseek_v3", "moe_layer_freq": 2})"),
            "config.json: field 'moe_layer_freq' (2) is not supported: "
            "transformers ignores it while the reference code honours it, so "
            "the model is ambiguous");
  EXPECT_EQ(errorOf(R"({"model_type": "mixtral", "num_key_value_heads": 3})"),
            "config.json: field 'num_key_value_heads' (3) must divide "
            "num_attention_heads (32)");
  EXPECT_EQ(errorOf(R"({"model_type": "mixtral", "hidden_size": "big"})"),
            "config.json: field 'hidden_size' must be an integer");
  EXPECT_EQ(errorOf(R"({"model_type": "qwen3_moe", "num_experts": 4})"),
            "config.json: field 'num_experts_per_tok' (8) exceeds the number "
            "of experts (4)");
  EXPECT_EQ(errorOf(R"({"model_type": "llama", "rope_scaling":
      {"rope_type": "yarn", "factor": 4.0, "beta_fast": 1.0, "beta_slow": 2.0,
       "original_max_position_embeddings": 1024}})"),
            "config.json: field 'rope_scaling' is invalid: 'beta_fast' must be "
            "greater than 'beta_slow'");
}

} // namespace
