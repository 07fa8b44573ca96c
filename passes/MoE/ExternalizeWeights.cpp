//===- ExternalizeWeights.cpp - Weights as external memref globals --------===//

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/xxhash.h"

#include <map>

namespace mlir::moe {
#define GEN_PASS_DEF_MOEEXTERNALIZEWEIGHTSPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

std::string getWeightSymbol(llvm::ArrayRef<std::string> names, bool stacked) {
  // Readable where possible; the hash keeps "a.b" and "a_b" apart.
  std::string joined = llvm::join(names, "\n");
  std::string symbol = stacked ? "moe_ws_" : "moe_w_";
  for (char c : names.front())
    symbol += llvm::isAlnum(c) ? c : '_';
  if (stacked)
    symbol += "_x" + std::to_string(names.size());
  symbol += "_" + llvm::utohexstr(llvm::xxh3_64bits(joined), /*LowerCase=*/true);
  return symbol;
}

namespace {
struct MoEExternalizeWeightsPass
    : impl::MoEExternalizeWeightsPassBase<MoEExternalizeWeightsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    OpBuilder builder(module.getContext());
    std::map<std::string, memref::GlobalOp> globals;
    llvm::SmallVector<NamedAttribute> manifest;

    auto globalFor = [&](Location loc, llvm::ArrayRef<std::string> names,
                         bool stacked, RankedTensorType type) {
      std::string symbol = getWeightSymbol(names, stacked);
      auto it = globals.find(symbol);
      if (it != globals.end())
        return it->second;
      OpBuilder::InsertionGuard guard(builder);
      builder.setInsertionPointToStart(module.getBody());
      auto memrefType = MemRefType::get(type.getShape(), type.getElementType());
      // No initial value: an external declaration the loader binds.
      auto global = memref::GlobalOp::create(
          builder, loc, symbol, builder.getStringAttr("public"), memrefType,
          Attribute(), /*constant=*/true, IntegerAttr());
      globals[symbol] = global;
      manifest.push_back(builder.getNamedAttr(
          symbol, builder.getStrArrayAttr(llvm::to_vector(llvm::map_range(
                      names, [](const std::string &s) {
                        return llvm::StringRef(s);
                      })))));
      return global;
    };

    IRRewriter rewriter(module.getContext());
    bool failed = false;
    module.walk([&](Operation *op) {
      std::vector<std::string> names;
      bool stacked = false;
      if (auto weight = dyn_cast<WeightOp>(op)) {
        names.push_back(weight.getName().str());
      } else if (auto stackedOp = dyn_cast<StackedWeightOp>(op)) {
        stacked = true;
        for (Attribute name : stackedOp.getNames())
          names.push_back(cast<StringAttr>(name).getValue().str());
      } else {
        return;
      }
      auto type = cast<RankedTensorType>(op->getResult(0).getType());
      memref::GlobalOp global = globalFor(op->getLoc(), names, stacked, type);
      if (global.getType() !=
          MemRefType::get(type.getShape(), type.getElementType())) {
        op->emitError() << "weight '" << names.front()
                        << "' is referenced with two types (run "
                           "-moe-check-weights for details)";
        failed = true;
        return;
      }
      rewriter.setInsertionPoint(op);
      Value buffer = memref::GetGlobalOp::create(
          rewriter, op->getLoc(), global.getType(), global.getSymName());
      // restrict: nothing else aliases it; not writable: kernels never
      // update weights in place.
      Value tensor = bufferization::ToTensorOp::create(
          rewriter, op->getLoc(), type, buffer, /*restrict=*/true,
          /*writable=*/false);
      rewriter.replaceOp(op, tensor);
    });
    if (failed)
      return signalPassFailure();
    module->setAttr("moe.weights", builder.getDictionaryAttr(manifest));
  }
};
} // namespace
} // namespace mlir::moe
