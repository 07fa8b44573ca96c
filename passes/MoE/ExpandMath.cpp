//===- ExpandMath.cpp - Polynomial forms of math ops without intrinsics ---===//
//
// Implements -moe-expand-math: math ops become MLIR's polynomial
// approximations (or, for rsqrt and powf, simpler math ops). On the CPU
// that is erf and erfc, which LLVM has no intrinsic for, so compiled code
// needs no libm; in CUDA device code it is every transcendental, so the
// PTX needs no libdevice.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/StringSet.h"

#include <limits>

namespace mlir::moe {
#define GEN_PASS_DEF_MOEEXPANDMATHPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

namespace {
/// pow(x, y) as exp(y * log|x|) with the sign and domain of pow: upstream's
/// expansion, exp(y * log x), is NaN for every negative x, where pow is
/// defined for integer y (ONNX Pow(x, 2) on centred values, for one).
/// y = 0 gives 1; negative x with odd integer y negates; negative x with
/// non-integer y is NaN, as powf's.
struct ExpandPowF : OpRewritePattern<math::PowFOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(math::PowFOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = op.getLhs(), y = op.getRhs();
    Type type = op.getType();
    auto constant = [&](double v) -> Value {
      return arith::ConstantOp::create(rewriter, loc,
                                       rewriter.getFloatAttr(
                                           getElementTypeOrSelf(type), v))
          .getResult();
    };
    if (isa<ShapedType>(type))
      return rewriter.notifyMatchFailure(op, "scalars only");
    Value magnitude = math::ExpOp::create(
        rewriter, loc,
        arith::MulFOp::create(rewriter, loc, y,
                              math::LogOp::create(
                                  rewriter, loc,
                                  math::AbsFOp::create(rewriter, loc, x))));
    auto equal = [&](Value a, Value b) {
      return arith::CmpFOp::create(rewriter, loc, arith::CmpFPredicate::OEQ,
                                   a, b);
    };
    Value integer = equal(y, math::RoundEvenOp::create(rewriter, loc, y));
    Value half = arith::MulFOp::create(rewriter, loc, y, constant(0.5));
    Value odd = arith::AndIOp::create(
        rewriter, loc, integer,
        arith::CmpFOp::create(rewriter, loc, arith::CmpFPredicate::UNE, half,
                              math::RoundEvenOp::create(rewriter, loc, half)));
    Value negative = arith::CmpFOp::create(
        rewriter, loc, arith::CmpFPredicate::OLT, x, constant(0.0));
    Value signedResult = arith::SelectOp::create(
        rewriter, loc, odd, arith::NegFOp::create(rewriter, loc, magnitude),
        magnitude);
    Value forNegative = arith::SelectOp::create(
        rewriter, loc, integer, signedResult,
        constant(std::numeric_limits<double>::quiet_NaN()));
    Value result =
        arith::SelectOp::create(rewriter, loc, negative, forNegative, magnitude);
    result = arith::SelectOp::create(rewriter, loc, equal(y, constant(0.0)),
                                     constant(1.0), result);
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct MoEExpandMathPass : impl::MoEExpandMathPassBase<MoEExpandMathPass> {
  using Base::Base;

  void runOnOperation() override {
    llvm::StringSet<> names;
    for (const std::string &name : ops)
      names.insert(name);
    if (names.empty())
      for (StringRef name : {"erf", "erfc"})
        names.insert(name);
    auto approximated = [&](StringRef name) {
      name.consume_front("math.");
      return names.contains(name);
    };
    // Only those ops and what their rewrites create: a greedy run over the
    // whole module would also fold and simplify everything else.
    SmallVector<Operation *> roots;
    getOperation()->walk([&](Operation *op) {
      if (op->getDialect() &&
          op->getDialect()->getNamespace() ==
              math::MathDialect::getDialectNamespace() &&
          approximated(op->getName().getStringRef()))
        roots.push_back(op);
    });
    if (roots.empty())
      return;
    RewritePatternSet patterns(&getContext());
    // rsqrt becomes 1 / sqrt; powf with a constant exponent x * x, sqrt
    // and the like, else exp and log, which are then approximated when
    // listed too.
    if (names.contains("rsqrt"))
      math::populateExpansionPatterns(patterns, {"rsqrt"});
    if (names.contains("powf")) {
      populateMathAlgebraicSimplificationPatterns(patterns);
      patterns.add<ExpandPowF>(&getContext(), /*benefit=*/0);
    }
    // f16/bf16 operands are extended to f32 around the op first.
    populateMathF32ExpansionPatterns(patterns, approximated);
    populateMathPolynomialApproximationPatterns(patterns, approximated);
    GreedyRewriteConfig config;
    config.setStrictness(GreedyRewriteStrictness::ExistingAndNewOps);
    if (failed(applyOpPatternsGreedily(roots, std::move(patterns), config)))
      signalPassFailure();
  }
};
} // namespace
} // namespace mlir::moe
