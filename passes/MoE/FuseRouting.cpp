//===- FuseRouting.cpp - Routing as one kernel with its permutation ------===//
//
// Implements -moe-fuse-routing: moe.route feeding moe.experts becomes
// moe.fused_route, which also sorts the routed tokens by expert for the
// grouped GEMMs of -moe-fuse-experts.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEFUSEROUTINGPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

namespace {
struct FuseRoute : OpRewritePattern<RouteOp> {
  FuseRoute(MLIRContext *ctx, int64_t tile)
      : OpRewritePattern(ctx), tile(tile) {}

  LogicalResult matchAndRewrite(RouteOp op,
                                PatternRewriter &rewriter) const override {
    if (llvm::none_of(op->getUsers(),
                      [](Operation *user) { return isa<ExpertsOp>(user); }))
      return rewriter.notifyMatchFailure(op,
                                         "no moe.experts reads the routing");
    int64_t numExperts = op.getNumExperts(), k = op.getTopK();
    int64_t tokens = op.getHidden().getType().getDimSize(0);
    Type i32 = rewriter.getI32Type();
    auto offsetsType = RankedTensorType::get({numExperts + 1}, i32);
    // T * k slots plus the padding each expert's segment may need.
    int64_t slots = ShapedType::isDynamic(tokens)
                        ? ShapedType::kDynamic
                        : tokens * k + numExperts * (tile - 1);
    auto slotsType = RankedTensorType::get({slots}, i32);
    // Same operands and attributes (including the operand segments), plus
    // the tile.
    llvm::SmallVector<NamedAttribute> attrs(op->getAttrDictionary().getValue());
    attrs.push_back(
        rewriter.getNamedAttr("tile", rewriter.getI64IntegerAttr(tile)));
    auto fused = FusedRouteOp::create(rewriter, op.getLoc(),
                                      TypeRange{op.getExpertIds().getType(),
                                                op.getExpertWeights().getType(),
                                                offsetsType, slotsType},
                                      op->getOperands(), attrs);
    rewriter.replaceOp(op, {fused.getExpertIds(), fused.getExpertWeights()});
    return success();
  }

  int64_t tile;
};

struct MoEFuseRoutingPass : impl::MoEFuseRoutingPassBase<MoEFuseRoutingPass> {
  using Base::Base;

  void runOnOperation() override {
    if (tile < 1) {
      getOperation().emitError() << "-moe-fuse-routing: 'tile' must be "
                                    "positive, got "
                                 << tile;
      return signalPassFailure();
    }
    RewritePatternSet patterns(&getContext());
    patterns.add<FuseRoute>(&getContext(), tile);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
} // namespace mlir::moe
