//===- AbsorbMLA.cpp - Weight-absorbed latent attention for decode -------===//
//
// Implements -moe-absorb-mla: moe.mla runs as moe.mla_absorbed for steps
// with few new tokens, chosen by a multiply-add count (see Passes.td).
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

#include <limits>

namespace mlir::moe {
#define GEN_PASS_DEF_MOEABSORBMLAPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

/// The largest number of new tokens S for which the absorbed form needs
/// fewer multiply-adds than the naive one, over a cache of L >= S rows:
/// S * (2R + Dr - (Dn + Dr + Dv)) < R * (Dn + Dv) in the limit of large L.
int64_t getMLAAbsorbThreshold(int64_t r, int64_t dn, int64_t dv) {
  int64_t perToken = 2 * r - dn - dv;
  if (perToken <= 0)
    return std::numeric_limits<int64_t>::max();
  int64_t fixed = r * (dn + dv);
  return (fixed - 1) / perToken; // largest S with S * perToken < fixed
}

namespace {
struct AbsorbMLA : OpRewritePattern<MLAOp> {
  AbsorbMLA(MLIRContext *ctx, int64_t maxAbsorbedTokens)
      : OpRewritePattern(ctx), maxAbsorbedTokens(maxAbsorbedTokens) {}

  LogicalResult matchAndRewrite(MLAOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto qType = op.getQNope().getType();
    int64_t n = qType.getDimSize(2), dn = qType.getDimSize(3);
    int64_t r = op.getLatent().getType().getDimSize(2);
    int64_t dv = op.getResult().getType().getDimSize(3);
    auto kvbType = op.getKvBWeight().getType();
    if (ShapedType::isDynamic(n) || ShapedType::isDynamic(dn) ||
        ShapedType::isDynamic(r) || ShapedType::isDynamic(dv) ||
        !kvbType.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "head sizes are not static");
    int64_t threshold = maxAbsorbedTokens >= 0
                            ? maxAbsorbedTokens
                            : getMLAAbsorbThreshold(r, dn, dv);
    int64_t seq = qType.getDimSize(1);
    if (!ShapedType::isDynamic(seq) && seq > threshold)
      return rewriter.notifyMatchFailure(op, "the naive form is cheaper");

    // W_UK and W_UV: head n's row blocks of kv_b, as views.
    Value kvb = op.getKvBWeight();
    Type et = kvbType.getElementType();
    auto headsType = RankedTensorType::get({n, dn + dv, r}, et);
    Value heads = tensor::ExpandShapeOp::create(
        rewriter, loc, headsType, kvb,
        llvm::ArrayRef<ReassociationIndices>{{0, 1}, {2}});
    auto slice = [&](int64_t offset, int64_t rows) -> Value {
      return tensor::ExtractSliceOp::create(
          rewriter, loc, RankedTensorType::get({n, rows, r}, et), heads,
          ValueRange{}, ValueRange{}, ValueRange{},
          rewriter.getDenseI64ArrayAttr({0, offset, 0}),
          rewriter.getDenseI64ArrayAttr({n, rows, r}),
          rewriter.getDenseI64ArrayAttr({1, 1, 1}));
    };
    Value wuk = slice(0, dn), wuv = slice(dn, dv);
    auto absorbed = [&](OpBuilder &b, Location l) {
      return MLAAbsorbedOp::create(
          b, l, op.getResult().getType(), op.getNewCache().getType(),
          op.getQNope(), op.getQPe(), op.getLatent(), op.getKPe(), wuk, wuv,
          op.getCache(), op.getCachePosition(), op.getPositions(),
          op.getScaleAttr(), op.getRopeStyleAttr(), op.getRopeAttr());
    };
    if (!ShapedType::isDynamic(seq)) {
      rewriter.replaceOp(op, absorbed(rewriter, loc)->getResults());
      return success();
    }
    // Dynamic S: both forms, chosen at run time.
    Value s = tensor::DimOp::create(rewriter, loc, op.getQNope(), 1);
    Value few = arith::CmpIOp::create(
        rewriter, loc, arith::CmpIPredicate::ule, s,
        arith::ConstantIndexOp::create(
            rewriter, loc, std::min<int64_t>(threshold, INT32_MAX)));
    auto choice = scf::IfOp::create(
        rewriter, loc, few,
        [&](OpBuilder &b, Location l) {
          scf::YieldOp::create(b, l, absorbed(b, l)->getResults());
        },
        [&](OpBuilder &b, Location l) {
          scf::YieldOp::create(b, l, b.clone(*op)->getResults());
        });
    rewriter.replaceOp(op, choice.getResults());
    return success();
  }

  int64_t maxAbsorbedTokens;
};

struct MoEAbsorbMLAPass : impl::MoEAbsorbMLAPassBase<MoEAbsorbMLAPass> {
  using Base::Base;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<AbsorbMLA>(&getContext(), maxAbsorbedTokens);
    // One visit per op: the naive moe.mla kept for prefill in an scf.if is
    // new and is not visited again.
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};
} // namespace
} // namespace mlir::moe
