//===- GPUMathToIntrinsics.cpp - Device math as NVPTX-native intrinsics ---===//
//
// Implements -moe-gpu-math-to-intrinsics. The NVVM lowering turns math ops
// into calls to libdevice (__nv_sqrtf, __nv_fabsf, ...), which only a CUDA
// toolkit on the compiling machine can link. The ops this pass covers have
// exact PTX instructions (sqrt.rn, abs, cvt.rmi, fma.rn, ...), which NVPTX
// selects from the generic LLVM intrinsics; the pass emits those as
// llvm.call_intrinsic, which the NVVM lowering leaves alone. Transcendentals
// are -moe-expand-math's (polynomials) before this pass runs.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPUMATHTOINTRINSICSPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

namespace {

/// Rewrites `Op` (scalar f16, bf16, f32 or f64) to `llvm.<name>.f32|f64`;
/// 16-bit operands are computed in f32, which is exact for these ops.
template <typename Op>
struct ToIntrinsic : OpRewritePattern<Op> {
  ToIntrinsic(MLIRContext *ctx, StringRef name)
      : OpRewritePattern<Op>(ctx), name(name) {}

  LogicalResult matchAndRewrite(Op op,
                                PatternRewriter &rewriter) const override {
    auto type = dyn_cast<FloatType>(op.getType());
    if (!type || type.getWidth() > 64)
      return rewriter.notifyMatchFailure(op, "not a scalar float");
    Location loc = op.getLoc();
    Type compute = type.getWidth() == 64 ? type : rewriter.getF32Type();
    SmallVector<Value> args;
    for (Value operand : op->getOperands())
      args.push_back(compute == type ? operand
                                     : arith::ExtFOp::create(rewriter, loc,
                                                             compute, operand)
                                           .getResult());
    std::string intrinsic =
        ("llvm." + name + (compute.isF64() ? ".f64" : ".f32")).str();
    Value result = LLVM::CallIntrinsicOp::create(
                       rewriter, loc, compute,
                       rewriter.getStringAttr(intrinsic), args)
                       .getResult(0);
    if (compute != type)
      result = arith::TruncFOp::create(rewriter, loc, type, result);
    rewriter.replaceOp(op, result);
    return success();
  }

  StringRef name;
};

struct MoEGPUMathToIntrinsicsPass
    : impl::MoEGPUMathToIntrinsicsPassBase<MoEGPUMathToIntrinsicsPass> {
  using Base::Base;

  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    RewritePatternSet patterns(ctx);
    patterns.add<ToIntrinsic<math::SqrtOp>>(ctx, "sqrt");
    patterns.add<ToIntrinsic<math::AbsFOp>>(ctx, "fabs");
    patterns.add<ToIntrinsic<math::FloorOp>>(ctx, "floor");
    patterns.add<ToIntrinsic<math::CeilOp>>(ctx, "ceil");
    patterns.add<ToIntrinsic<math::TruncOp>>(ctx, "trunc");
    patterns.add<ToIntrinsic<math::RoundOp>>(ctx, "round");
    patterns.add<ToIntrinsic<math::RoundEvenOp>>(ctx, "roundeven");
    patterns.add<ToIntrinsic<math::FmaOp>>(ctx, "fma");
    patterns.add<ToIntrinsic<math::CopySignOp>>(ctx, "copysign");
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
} // namespace mlir::moe
