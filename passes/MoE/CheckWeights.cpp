//===- CheckWeights.cpp - Module-wide checks of moe.weight references -----===//

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "llvm/ADT/MapVector.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOECHECKWEIGHTSPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

namespace {
struct MoECheckWeightsPass
    : impl::MoECheckWeightsPassBase<MoECheckWeightsPass> {
  using Base::Base;

  void runOnOperation() override {
    // First reference of each name, in program order, so that the manifest
    // and the diagnostics are deterministic.
    llvm::MapVector<StringAttr, std::pair<Type, Location>> first;
    bool conflict = false;
    auto record = [&](StringAttr name, Type type, Operation *op) {
      auto [it, inserted] = first.insert({name, {type, op->getLoc()}});
      if (inserted || it->second.first == type)
        return;
      conflict = true;
      InFlightDiagnostic diag =
          op->emitError() << "weight '" << name.getValue() << "' is used as "
                          << type << " here but as " << it->second.first
                          << " before";
      diag.attachNote(it->second.second) << "first used here";
    };
    getOperation().walk([&](Operation *op) {
      if (auto weight = dyn_cast<WeightOp>(op))
        record(weight.getNameAttr(), weight.getType(), op);
      else if (auto stacked = dyn_cast<StackedWeightOp>(op))
        for (Attribute name : stacked.getNames())
          record(cast<StringAttr>(name), stacked.getElementTensorType(), op);
    });
    if (conflict)
      return signalPassFailure();
    if (!listWeights)
      return;
    for (auto &[name, use] : first)
      llvm::errs() << name.getValue() << ": " << use.first << "\n";
  }
};
} // namespace
} // namespace mlir::moe
