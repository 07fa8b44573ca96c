//===- FuseNormRopeResidual.cpp - Prologue and epilogue fusion -----------===//
//
// Implements -moe-fuse-norm-rope-residual: RMSNorm into the prologue of the
// projections that read it, RoPE into the attention prologue, residual adds
// into the epilogue of the projection that produces the update.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEFUSENORMROPERESIDUALPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

namespace {
/// A collapse that keeps the innermost dimension as a group of its own, so
/// that a norm over it commutes with the collapse.
bool keepsInnermost(tensor::CollapseShapeOp collapse) {
  ReassociationIndices last = collapse.getReassociationIndices().back();
  return last.size() == 1;
}

/// True when every use of `value`, looking through innermost-preserving
/// collapses, is the input of a moe.linear without a norm.
bool onlyFeedsPlainLinears(Value value) {
  return llvm::all_of(value.getUses(), [](OpOperand &use) {
    Operation *user = use.getOwner();
    if (auto collapse = dyn_cast<tensor::CollapseShapeOp>(user))
      return keepsInnermost(collapse) &&
             onlyFeedsPlainLinears(collapse.getResult());
    auto linear = dyn_cast<LinearOp>(user);
    return linear && use.getOperandNumber() == 0 && !linear.getNormWeight();
  });
}

/// linear(collapse?(rms_norm(x))) -> linear(collapse?(x)) norm(w), when all
/// of the norm's users are projections: each recomputes the row statistics
/// (O(T*K), against the O(T*K*N) of the GEMM) and nobody stores the
/// normalised rows.
struct FuseNormIntoLinear : OpRewritePattern<LinearOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LinearOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getNormWeight())
      return rewriter.notifyMatchFailure(op, "already has a norm prologue");
    Value input = op.getInput();
    auto collapse = input.getDefiningOp<tensor::CollapseShapeOp>();
    if (collapse && !keepsInnermost(collapse))
      return rewriter.notifyMatchFailure(op, "the collapse merges the "
                                             "normalised dimension");
    auto norm =
        (collapse ? collapse.getSrc() : input).getDefiningOp<RMSNormOp>();
    if (!norm)
      return rewriter.notifyMatchFailure(op, "input is not an RMSNorm");
    if (!onlyFeedsPlainLinears(norm.getResult()))
      return rewriter.notifyMatchFailure(
          op, "the normalised rows are also read by other ops");
    Value source = norm.getInput();
    if (collapse)
      source =
          tensor::CollapseShapeOp::create(rewriter, collapse.getLoc(), source,
                                          collapse.getReassociationIndices());
    rewriter.modifyOpInPlace(op, [&] {
      op.getInputMutable().assign(source);
      op.getNormWeightMutable().assign(norm.getWeight());
      op.setNormEpsAttr(norm.getEpsilonAttr());
      op.setNormWeightInF32(norm.getWeightInF32());
    });
    return success();
  }
};

/// The reassociation that undoes `update`, a reshape of a [T, N] projection
/// result into [..., N] that only splits T (expand_shape, or the
/// tensor.reshape the importer uses instead), if it is one.
std::optional<llvm::SmallVector<ReassociationIndices>>
splitOfRows(Value update, LinearOp &linear) {
  Operation *def = update.getDefiningOp();
  if (!def || !def->hasOneUse())
    return std::nullopt;
  Value src;
  if (auto expand = dyn_cast<tensor::ExpandShapeOp>(def))
    src = expand.getSrc();
  else if (auto reshape = dyn_cast<tensor::ReshapeOp>(def))
    src = reshape.getSource();
  else
    return std::nullopt;
  linear = src.getDefiningOp<LinearOp>();
  auto to = cast<RankedTensorType>(update.getType());
  auto from = cast<RankedTensorType>(src.getType());
  if (!linear || to.getRank() < 2 || from.getRank() != 2 ||
      to.isDynamicDim(to.getRank() - 1) ||
      to.getDimSize(to.getRank() - 1) != from.getDimSize(1))
    return std::nullopt;
  ReassociationIndices rows;
  for (int64_t i = 0; i + 1 < to.getRank(); ++i)
    rows.push_back(i);
  return llvm::SmallVector<ReassociationIndices>{
      rows, ReassociationIndices{to.getRank() - 1}};
}

/// True when `value` is defined before `op` in its block, or is an argument
/// of a block enclosing it.
bool isAvailableAt(Value value, Operation *op) {
  if (Operation *def = value.getDefiningOp())
    return def->getBlock() == op->getBlock() && def->isBeforeInBlock(op);
  return value.getParentBlock()->findAncestorOpInBlock(*op) != nullptr;
}

/// addf(r, reshape?(linear(...))) -> reshape?(linear(...) residual(r')),
/// with r' = r collapsed to the projection's [T, N], when the projection's
/// only user is the add (through the reshape).
struct FuseResidualIntoLinear : OpRewritePattern<arith::AddFOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(arith::AddFOp add,
                                PatternRewriter &rewriter) const override {
    for (unsigned side = 0; side < 2; ++side) {
      Value update = add->getOperand(side),
            residual = add->getOperand(1 - side);
      LinearOp linear = update.getDefiningOp<LinearOp>();
      std::optional<llvm::SmallVector<ReassociationIndices>> rows;
      if (!linear) {
        rows = splitOfRows(update, linear);
        if (!rows)
          continue;
      }
      if (!linear || linear.getResidual() || !linear->hasOneUse() ||
          !isa<RankedTensorType>(residual.getType()) ||
          !isAvailableAt(residual, linear))
        continue;
      // The residual, shaped like the projection's result, just before it.
      OpBuilder::InsertionGuard guard(rewriter);
      rewriter.setInsertionPoint(linear);
      Location loc = add.getLoc();
      Value flat = residual;
      if (rows)
        flat = tensor::CollapseShapeOp::create(rewriter, loc, residual, *rows);
      if (flat.getType() != linear.getType())
        flat = tensor::CastOp::create(rewriter, loc, linear.getType(), flat);
      rewriter.modifyOpInPlace(
          linear, [&] { linear.getResidualMutable().assign(flat); });
      rewriter.replaceOp(add, update);
      return success();
    }
    return rewriter.notifyMatchFailure(add, "no projection feeds the add");
  }
};

/// Two rotations one prologue can replace: same positions, style and
/// table, over whole heads.
bool sameWholeRotation(RopeOp a, RopeOp b) {
  return a.getPositions() == b.getPositions() && a.getStyle() == b.getStyle() &&
         a.getRope() == b.getRope() && !a.getRotaryDim() && !b.getRotaryDim();
}

/// Gives `op` (attention or MLA) the rope prologue that `rope` performed.
template <typename OpTy> void setRopePrologue(OpTy op, RopeOp rope) {
  op.getPositionsMutable().assign(rope.getPositions());
  op.setRopeStyleAttr(rope.getStyleAttr());
  op.setRopeAttr(rope.getRopeAttr());
}

/// attention(rope(q), rope(k), ...) -> attention(q, k, ...) rope(positions)
/// when both rotations agree and rotate whole heads.
struct FuseRopeIntoAttention : OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getPositions())
      return rewriter.notifyMatchFailure(op, "already has a rope prologue");
    auto q = op.getQuery().getDefiningOp<RopeOp>();
    auto k = op.getKey().getDefiningOp<RopeOp>();
    if (!q || !k)
      return rewriter.notifyMatchFailure(op, "query or key is not rotated");
    if (!sameWholeRotation(q, k))
      return rewriter.notifyMatchFailure(
          op, "query and key rotations differ or are partial");
    rewriter.modifyOpInPlace(op, [&] {
      op.getQueryMutable().assign(q.getInput());
      op.getKeyMutable().assign(k.getInput());
      setRopePrologue(op, q);
    });
    return success();
  }
};

/// mla(q_pe = rope(x), k_pe = collapse(rope(y))) -> mla(x, collapse(y))
/// rope(positions), for both MLA forms, when the rotations agree and rotate
/// whole heads.
template <typename OpTy> struct FuseRopeIntoMLA : OpRewritePattern<OpTy> {
  using OpRewritePattern<OpTy>::OpRewritePattern;
  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    if (op.getPositions())
      return rewriter.notifyMatchFailure(op, "already has a rope prologue");
    auto q = op.getQPe().template getDefiningOp<RopeOp>();
    auto collapse =
        op.getKPe().template getDefiningOp<tensor::CollapseShapeOp>();
    auto k = collapse ? collapse.getSrc().template getDefiningOp<RopeOp>()
                      : RopeOp();
    if (!q || !k)
      return rewriter.notifyMatchFailure(op, "q_pe or k_pe is not rotated");
    if (!sameWholeRotation(q, k))
      return rewriter.notifyMatchFailure(
          op, "q_pe and k_pe rotations differ or are partial");
    Value kPe = tensor::CollapseShapeOp::create(
        rewriter, collapse.getLoc(), k.getInput(),
        collapse.getReassociationIndices());
    rewriter.modifyOpInPlace(op, [&] {
      op.getQPeMutable().assign(q.getInput());
      op.getKPeMutable().assign(kPe);
      setRopePrologue(op, q);
    });
    return success();
  }
};

struct MoEFuseNormRopeResidualPass
    : impl::MoEFuseNormRopeResidualPassBase<MoEFuseNormRopeResidualPass> {
  using Base::Base;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns
        .add<FuseNormIntoLinear, FuseResidualIntoLinear, FuseRopeIntoAttention,
             FuseRopeIntoMLA<MLAOp>, FuseRopeIntoMLA<MLAAbsorbedOp>>(
            &getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
} // namespace mlir::moe
