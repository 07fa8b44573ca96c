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
    llvm::MapVector<StringAttr, WeightOp> first;
    bool conflict = false;
    getOperation().walk([&](WeightOp op) {
      auto [it, inserted] = first.insert({op.getNameAttr(), op});
      if (inserted || it->second.getType() == op.getType())
        return;
      conflict = true;
      InFlightDiagnostic diag =
          op.emitError() << "weight '" << op.getName() << "' is used as "
                         << op.getType() << " here but as "
                         << it->second.getType() << " before";
      diag.attachNote(it->second.getLoc()) << "first used here";
    });
    if (conflict)
      return signalPassFailure();
    if (!listWeights)
      return;
    for (auto &[name, op] : first)
      llvm::errs() << name.getValue() << ": " << op.getType() << "\n";
  }
};
} // namespace
} // namespace mlir::moe
