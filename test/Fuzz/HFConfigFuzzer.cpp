//===- HFConfigFuzzer.cpp - libFuzzer target for config.json --------------===//
//
// Parses arbitrary bytes as a Hugging Face config.json. Whatever the reader
// accepts must satisfy the invariants the importer builds on; a violation
// traps so that libFuzzer reports it.
//
//===----------------------------------------------------------------------===//

#include "moe/Import/HFConfig.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::Expected<llvm::json::Value> json = llvm::json::parse(
      llvm::StringRef(reinterpret_cast<const char *>(data), size));
  if (!json) {
    llvm::consumeError(json.takeError());
    return 0;
  }
  llvm::Expected<moe::ModelConfig> config =
      moe::parseHFConfig(*json, "fuzz/config.json");
  if (!config) {
    llvm::consumeError(config.takeError());
    return 0;
  }
  const moe::ModelConfig &c = *config;
  // Names the broken invariant before trapping, for triage.
  auto check = [](bool ok, const char *what) {
    if (!ok) {
      std::fprintf(stderr, "invariant broken: %s\n", what);
      __builtin_trap();
    }
  };
  check(c.vocabSize > 0 && c.hiddenSize > 0 && c.numLayers > 0 &&
            c.numHeads > 0 && c.numKVHeads > 0,
        "sizes are positive");
  check(c.headDim > 0, "head_dim is positive");
  check(c.numHeads % c.numKVHeads == 0, "kv heads divide heads");
  check(int64_t(c.moeLayers.size()) == c.numLayers &&
            int64_t(c.slidingWindow.size()) == c.numLayers,
        "one entry per layer");
  check(c.rmsNormEps >= 0, "rms_norm_eps >= 0");
  if (c.router) {
    const moe::RouterConfig &r = *c.router;
    check(r.numExperts > 0 && r.topK > 0 && r.topK <= r.numExperts,
          "0 < top-k <= experts");
    check(r.nGroup > 0 && r.numExperts % r.nGroup == 0,
          "groups divide experts");
    check(r.topkGroup > 0 && r.topkGroup <= r.nGroup, "0 < topk_group <= n_group");
    check(r.topK <= r.topkGroup * (r.numExperts / r.nGroup),
          "top-k fits in the kept groups");
    check(c.moeIntermediateSize > 0, "moe_intermediate_size is positive");
  }
  if (c.mla)
    check(c.mla->kvLoraRank > 0 && c.mla->qkRopeHeadDim > 0 &&
              c.mla->vHeadDim > 0 && c.mla->qLoraRank >= 0,
          "MLA sizes are positive");
  return 0;
}
