//===- ExpandMath.cpp - Polynomial forms of math ops without intrinsics ---===//
//
// Implements -moe-expand-math: math.erf and math.erfc become MLIR's
// polynomial approximations, since LLVM has no intrinsic for them and the
// compiled code must not depend on libm.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEEXPANDMATHPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

namespace {
struct MoEExpandMathPass : impl::MoEExpandMathPassBase<MoEExpandMathPass> {
  using Base::Base;

  void runOnOperation() override {
    auto approximated = [](StringRef name) {
      name.consume_front("math.");
      return name == "erf" || name == "erfc";
    };
    // Only those ops and what their rewrites create: a greedy run over the
    // whole module would also fold and simplify everything else.
    SmallVector<Operation *> ops;
    getOperation()->walk([&](Operation *op) {
      if (isa<math::ErfOp, math::ErfcOp>(op))
        ops.push_back(op);
    });
    if (ops.empty())
      return;
    RewritePatternSet patterns(&getContext());
    // f16/bf16 operands are extended to f32 around the op first.
    populateMathF32ExpansionPatterns(patterns, approximated);
    populateMathPolynomialApproximationPatterns(patterns, approximated);
    GreedyRewriteConfig config;
    config.setStrictness(GreedyRewriteStrictness::ExistingAndNewOps);
    if (failed(applyOpPatternsGreedily(ops, std::move(patterns), config)))
      signalPassFailure();
  }
};
} // namespace
} // namespace mlir::moe
