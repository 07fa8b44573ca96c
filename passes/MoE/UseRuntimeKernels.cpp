//===- UseRuntimeKernels.cpp - Call the runtime's CPU kernels -------------===//
//
// Replaces the moe ops that dominate a CPU step (expert FFNs, projections,
// routing) by calls to the runtime's multi-threaded vector kernels
// (moe/Runtime/moert_kernels.h), as IREE does with its microkernels: the
// inner loops are hand-tuned once per instruction set and chosen when the
// artifact loads, instead of being regenerated for every model. The ops are
// rewritten on tensors, before the reference lowering: each tensor operand
// becomes a read-only buffer, each result a fresh buffer the kernel fills.
// Ops whose element types no kernel covers are left for the reference
// lowering.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Runtime/moert_kernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEUSERUNTIMEKERNELSPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

namespace {

/// The kernels' name for an element type, or "" if none covers it.
llvm::StringRef kernelTypeName(Type type) {
  if (type.isF32())
    return "f32";
  if (type.isBF16())
    return "bf16";
  if (type.isF16())
    return "f16";
  return "";
}

Type elementType(Value v) {
  return cast<RankedTensorType>(v.getType()).getElementType();
}

/// Builds one kernel call: operands are appended in the C signature's
/// order, then `emit` declares the callee and calls it.
class KernelCall {
public:
  KernelCall(PatternRewriter &rewriter, Location loc)
      : rewriter(rewriter), loc(loc) {}

  /// A tensor operand, passed as a read-only strided buffer. A transposed
  /// tensor is passed as a transposed view of its source instead: the
  /// kernels read either layout (ONNX MatMul weights are stored [K, N]),
  /// and the copy is never made.
  void input(Value tensor) {
    AffineMap permutation;
    if (auto transpose = tensor.getDefiningOp<linalg::TransposeOp>()) {
      permutation = AffineMap::getPermutationMap(transpose.getPermutation(),
                                                 rewriter.getContext());
      tensor = transpose.getInput();
    }
    auto type = cast<RankedTensorType>(tensor.getType());
    auto layout = dynamicLayout(type.getRank());
    Value buffer = bufferization::ToBufferOp::create(
        rewriter, loc,
        MemRefType::get(type.getShape(), type.getElementType(), layout),
        tensor, /*read_only=*/true);
    if (permutation)
      buffer = memref::TransposeOp::create(rewriter, loc, buffer,
                                           AffineMapAttr::get(permutation));
    operands.push_back(erase(buffer));
  }

  /// An optional tensor operand: absent is an empty buffer.
  void optionalInput(Value tensor, int64_t rank, Type elementType) {
    if (tensor)
      return input(tensor);
    Value empty = memref::AllocaOp::create(
        rewriter, loc,
        MemRefType::get(llvm::SmallVector<int64_t>(rank, 0), elementType));
    operands.push_back(erase(empty));
  }

  /// A result of `type` (dynamic sizes in order): a fresh buffer that the
  /// kernel fills; emit() returns it as a tensor.
  void output(RankedTensorType type, ValueRange dynamicSizes) {
    Value buffer = memref::AllocOp::create(
        rewriter, loc,
        MemRefType::get(type.getShape(), type.getElementType()),
        dynamicSizes);
    results.push_back({type, buffer});
    operands.push_back(erase(buffer));
  }

  void i64(int64_t v) {
    operands.push_back(arith::ConstantOp::create(
        rewriter, loc, rewriter.getI64IntegerAttr(v)));
  }
  void f32(double v) {
    operands.push_back(arith::ConstantOp::create(
        rewriter, loc, rewriter.getF32FloatAttr(v)));
  }

  /// Declares `name` (C interface) in the module if needed, calls it and
  /// returns the outputs as tensors. Only the call writes them, so each is
  /// `restrict` (no other access) and writable.
  llvm::SmallVector<Value> emit(ModuleOp module, llvm::StringRef name) {
    auto type = rewriter.getFunctionType(ValueRange(operands).getTypes(), {});
    auto callee = module.lookupSymbol<func::FuncOp>(name);
    if (!callee) {
      OpBuilder::InsertionGuard guard(rewriter);
      rewriter.setInsertionPointToStart(module.getBody());
      callee = func::FuncOp::create(rewriter, loc, name, type);
      callee.setPrivate();
      callee->setAttr("llvm.emit_c_interface", rewriter.getUnitAttr());
    }
    func::CallOp::create(rewriter, loc, callee, operands);
    llvm::SmallVector<Value> tensors;
    for (auto [type, buffer] : results)
      tensors.push_back(bufferization::ToTensorOp::create(
          rewriter, loc, type, buffer, /*restrict=*/true, /*writable=*/true));
    return tensors;
  }

private:
  StridedLayoutAttr dynamicLayout(int64_t rank) {
    return StridedLayoutAttr::get(
        rewriter.getContext(), ShapedType::kDynamic,
        llvm::SmallVector<int64_t>(rank, ShapedType::kDynamic));
  }

  /// Casts to fully dynamic sizes and strides: one declaration per kernel
  /// serves every shape.
  Value erase(Value buffer) {
    auto type = cast<MemRefType>(buffer.getType());
    auto erased = MemRefType::get(
        llvm::SmallVector<int64_t>(type.getRank(), ShapedType::kDynamic),
        type.getElementType(), dynamicLayout(type.getRank()));
    return memref::CastOp::create(rewriter, loc, erased, buffer);
  }

  PatternRewriter &rewriter;
  Location loc;
  llvm::SmallVector<Value> operands;
  llvm::SmallVector<std::pair<RankedTensorType, Value>> results;
};

/// "moert_<family>_<A>_<W>", or failure when a type has no kernel.
FailureOr<std::string> kernelName(llvm::StringRef family, Type a, Type w) {
  llvm::StringRef an = kernelTypeName(a), wn = kernelTypeName(w);
  if (an.empty() || wn.empty())
    return failure();
  return ("moert_" + family + "_" + an + "_" + wn).str();
}

/// The dynamic sizes of a `[T, N]` result whose T is `like`'s dim 0.
llvm::SmallVector<Value> dynamicSizes(PatternRewriter &rewriter, Location loc,
                                      Value like, RankedTensorType type) {
  llvm::SmallVector<Value> sizes;
  if (type.isDynamicDim(0))
    sizes.push_back(tensor::DimOp::create(rewriter, loc, like, 0));
  return sizes;
}

/// moe.experts and moe.grouped_experts (whose permutation the kernel does
/// not need: it groups the pairs itself).
template <typename OpTy> struct ExpertsToKernel : OpRewritePattern<OpTy> {
  using OpRewritePattern<OpTy>::OpRewritePattern;
  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    Value x = op.getHidden();
    Type w = elementType(op.getGateWeight());
    for (Value v : {op.getUpWeight(), op.getDownWeight(), op.getGateBias(),
                    op.getUpBias(), op.getDownBias(), op.getSharedGateWeight(),
                    op.getSharedUpWeight(), op.getSharedDownWeight(),
                    op.getSharedExpertGate()})
      if (v && elementType(v) != w)
        return rewriter.notifyMatchFailure(op, "mixed weight types");
    FailureOr<std::string> name = kernelName("experts", elementType(x), w);
    if (failed(name))
      return rewriter.notifyMatchFailure(op, "no kernel for these types");
    Location loc = op.getLoc();
    KernelCall call(rewriter, loc);
    call.input(x);
    call.input(op.getExpertIds());
    call.input(op.getExpertWeights());
    call.input(op.getGateWeight());
    call.input(op.getUpWeight());
    call.input(op.getDownWeight());
    call.optionalInput(op.getGateBias(), 2, w);
    call.optionalInput(op.getUpBias(), 2, w);
    call.optionalInput(op.getDownBias(), 2, w);
    call.optionalInput(op.getSharedGateWeight(), 2, w);
    call.optionalInput(op.getSharedUpWeight(), 2, w);
    call.optionalInput(op.getSharedDownWeight(), 2, w);
    call.optionalInput(op.getSharedExpertGate(), 2, w);
    auto type = cast<RankedTensorType>(op.getResult().getType());
    call.output(type, dynamicSizes(rewriter, loc, x, type));
    call.i64(op.getActivation() == Activation::SwiGLUClamped
                 ? MOERT_ACT_SWIGLU_CLAMPED
                 : MOERT_ACT_SWIGLU);
    call.f32(op.getAlpha().convertToDouble());
    call.f32(op.getLimit().convertToDouble());
    call.f32(op.getBeta().convertToDouble());
    rewriter.replaceOp(op,
                       call.emit(op->template getParentOfType<ModuleOp>(), *name));
    return success();
  }
};

struct LinearToKernel : OpRewritePattern<LinearOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LinearOp op,
                                PatternRewriter &rewriter) const override {
    Value x = op.getInput();
    Type a = elementType(x), w = elementType(op.getWeight());
    auto type = cast<RankedTensorType>(op.getResult().getType());
    if (type.getRank() != 2 || type.getElementType() != a ||
        (op.getResidual() && elementType(op.getResidual()) != a) ||
        (op.getBias() && elementType(op.getBias()) != w))
      return rewriter.notifyMatchFailure(op, "no kernel for these types");
    int64_t flags = 0;
    if (Value norm = op.getNormWeight()) {
      flags |= MOERT_LINEAR_NORM;
      if (elementType(norm).isF32())
        flags |= MOERT_LINEAR_NORM_WEIGHT_STORED_F32;
      else if (elementType(norm) != a)
        return rewriter.notifyMatchFailure(op, "norm weight type");
      if (op.getNormWeightInF32())
        flags |= MOERT_LINEAR_NORM_WEIGHT_F32;
    }
    FailureOr<std::string> name = kernelName("linear", a, w);
    if (failed(name))
      return rewriter.notifyMatchFailure(op, "no kernel for these types");
    Location loc = op.getLoc();
    KernelCall call(rewriter, loc);
    call.input(x);
    call.input(op.getWeight());
    call.optionalInput(op.getBias(), 1, w);
    call.optionalInput(op.getNormWeight(), 1, a);
    call.optionalInput(op.getResidual(), 2, a);
    call.output(type, dynamicSizes(rewriter, loc, x, type));
    call.i64(flags);
    call.f32(op.getNormEps() ? op.getNormEps()->convertToDouble() : 0.0);
    rewriter.replaceOp(op, call.emit(op->getParentOfType<ModuleOp>(), *name));
    return success();
  }
};

/// moe.route and moe.fused_route (which also gets its permutation).
template <typename OpTy> struct RouteToKernel : OpRewritePattern<OpTy> {
  using OpRewritePattern<OpTy>::OpRewritePattern;
  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    constexpr bool fused = std::is_same_v<OpTy, FusedRouteOp>;
    Value x = op.getHidden();
    FailureOr<std::string> name =
        kernelName("route", elementType(x), elementType(op.getGateWeight()));
    if (failed(name))
      return rewriter.notifyMatchFailure(op, "no kernel for these types");
    Location loc = op.getLoc();
    KernelCall call(rewriter, loc);
    call.input(x);
    call.input(op.getGateWeight());
    call.optionalInput(op.getSelectionBias(), 1, rewriter.getF32Type());
    call.optionalInput(op.getLogitBias(), 1, rewriter.getF32Type());
    for (unsigned i = 0; i < 2; ++i) {
      auto type = cast<RankedTensorType>(op->getResult(i).getType());
      call.output(type, dynamicSizes(rewriter, loc, x, type));
    }
    int64_t tile = 1;
    if constexpr (fused) {
      tile = op.getTile();
      call.output(cast<RankedTensorType>(op.getExpertOffsets().getType()),
                  {});
      // T * k + E * (tile - 1) entries.
      auto slotsType = cast<RankedTensorType>(op.getSortedSlots().getType());
      llvm::SmallVector<Value> size;
      if (slotsType.isDynamicDim(0)) {
        Value tokens = tensor::DimOp::create(rewriter, loc, x, 0);
        Value routed = arith::MulIOp::create(
            rewriter, loc, tokens,
            arith::ConstantIndexOp::create(rewriter, loc, op.getTopK()));
        size.push_back(arith::AddIOp::create(
            rewriter, loc, routed,
            arith::ConstantIndexOp::create(
                rewriter, loc, op.getNumExperts() * (tile - 1))));
      }
      call.output(slotsType, size);
    } else {
      call.optionalInput(Value(), 1, rewriter.getI32Type());
      call.optionalInput(Value(), 1, rewriter.getI32Type());
    }
    switch (op.getScore()) {
    case ScoreFunc::Softmax:
      call.i64(MOERT_SCORE_SOFTMAX);
      break;
    case ScoreFunc::Sigmoid:
      call.i64(MOERT_SCORE_SIGMOID);
      break;
    case ScoreFunc::None:
      call.i64(MOERT_SCORE_NONE);
      break;
    }
    int64_t flags = 0;
    if (op.getOrder() == RouteOrder::TopKThenSoftmax)
      flags |= MOERT_ROUTE_TOPK_THEN_SOFTMAX;
    if (op.getGroupScore() == GroupScore::Top2Sum)
      flags |= MOERT_ROUTE_GROUP_TOP2_SUM;
    if (op.getRenorm() == Renorm::Sum)
      flags |= MOERT_ROUTE_RENORM;
    if (op.getRoundLogits())
      flags |= MOERT_ROUTE_ROUND_LOGITS;
    call.i64(flags);
    call.i64(op.getNGroup());
    call.i64(op.getTopkGroup());
    call.i64(tile);
    call.f32(op.getRenormEps().convertToDouble());
    call.f32(op.getScalingFactor().convertToDouble());
    rewriter.replaceOp(op,
                       call.emit(op->template getParentOfType<ModuleOp>(), *name));
    return success();
  }
};

struct MoEUseRuntimeKernelsPass
    : impl::MoEUseRuntimeKernelsPassBase<MoEUseRuntimeKernelsPass> {
  using Base::Base;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<ExpertsToKernel<ExpertsOp>, ExpertsToKernel<GroupedExpertsOp>,
                 LinearToKernel, RouteToKernel<RouteOp>,
                 RouteToKernel<FusedRouteOp>>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
} // namespace mlir::moe
