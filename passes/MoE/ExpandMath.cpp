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

namespace mlir::moe {
#define GEN_PASS_DEF_MOEEXPANDMATHPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

namespace {
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
    // rsqrt and powf become sqrt, exp and log, which are then approximated
    // when listed too.
    SmallVector<StringRef> expanded;
    for (StringRef name : {"rsqrt", "powf"})
      if (names.contains(name))
        expanded.push_back(name);
    if (!expanded.empty())
      math::populateExpansionPatterns(patterns, expanded);
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
