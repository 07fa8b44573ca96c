//===- FuseExperts.cpp - Expert FFNs as fused grouped GEMMs ---------------===//
//
// Implements -moe-fuse-experts: moe.experts routed by moe.fused_route
// becomes moe.grouped_experts over the route's permutation.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEFUSEEXPERTSPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

namespace {
struct FuseExperts : OpRewritePattern<ExpertsOp> {
  FuseExperts(MLIRContext *ctx, int64_t gemvMaxTokens)
      : OpRewritePattern(ctx), gemvMaxTokens(gemvMaxTokens) {}

  LogicalResult matchAndRewrite(ExpertsOp op,
                                PatternRewriter &rewriter) const override {
    auto route = op.getExpertIds().getDefiningOp<FusedRouteOp>();
    if (!route || op.getExpertWeights() != route.getExpertWeights())
      return rewriter.notifyMatchFailure(
          op, "routing does not come from one moe.fused_route");
    // The experts' operands, with the permutation after the routing.
    llvm::SmallVector<Value> operands(op->getOperands().take_front(3));
    operands.push_back(route.getExpertOffsets());
    operands.push_back(route.getSortedSlots());
    llvm::append_range(operands, op->getOperands().drop_front(3));
    // Operand segments: five leading singletons, then the experts' weights.
    auto sizes = op.getProperties().operandSegmentSizes;
    llvm::SmallVector<int32_t> segments = {1, 1, 1, 1, 1};
    segments.append(sizes.begin() + 3, sizes.end());

    OperationState state(op.getLoc(), GroupedExpertsOp::getOperationName());
    state.addOperands(operands);
    state.addTypes(op.getResult().getType());
    GroupedExpertsOp::Properties &props =
        state.getOrAddProperties<GroupedExpertsOp::Properties>();
    props.setActivation(op.getActivationAttr());
    props.setAlpha(op.getAlphaAttr());
    props.setLimit(op.getLimitAttr());
    props.setBeta(op.getBetaAttr());
    props.setTile(rewriter.getI64IntegerAttr(route.getTile()));
    props.setGemvMaxTokens(rewriter.getI64IntegerAttr(gemvMaxTokens));
    llvm::copy(segments, props.operandSegmentSizes.begin());
    Operation *grouped = rewriter.create(state);
    rewriter.replaceOp(op, grouped->getResults());
    return success();
  }

  int64_t gemvMaxTokens;
};

struct MoEFuseExpertsPass : impl::MoEFuseExpertsPassBase<MoEFuseExpertsPass> {
  using Base::Base;

  void runOnOperation() override {
    if (gemvMaxTokens < 0) {
      getOperation().emitError() << "-moe-fuse-experts: 'gemv-max-tokens' "
                                    "must be non-negative, got "
                                 << gemvMaxTokens;
      return signalPassFailure();
    }
    RewritePatternSet patterns(&getContext());
    patterns.add<FuseExperts>(&getContext(), gemvMaxTokens);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
} // namespace mlir::moe
