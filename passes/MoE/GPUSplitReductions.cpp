//===- GPUSplitReductions.cpp - Spread long reductions over lanes ---------===//
//
// Implements -moe-gpu-split-reductions. In the bufferized program every
// matrix-vector product is a parallel loop over outputs whose body reduces
// a long row in a serial loop: -moe-gpu-launch-loops gives each output one
// GPU thread, so a decode step's projections run on few threads, each
// walking its own row, and neighbouring threads read addresses a row
// apart (one cache line per thread per load). On an H200 the vocabulary
// projection of DeepSeek-V3 took 69 ms per token that way.
//
// This pass splits such a reduction in two parallel loops, which the
// placement launches like any other:
//
//  1. `lanes` threads per output, each summing the row's elements
//     lane, lane + lanes, ... (neighbouring threads read neighbouring
//     elements; the lane's loop unrolled so that its loads are in flight
//     together), into a buffer of partial sums;
//  2. the original loop, which adds the partial sums of its output in a
//     fixed order where it used to run the reduction.
//
// A loop that sums such a reduction times a factor (the experts' down
// projection: a routing weight times a dot product, over the chosen
// experts) is split at its inner reduction: each lane runs the outer loop
// over its share, and the factor distributes over the shares.
//
// Neither loop needs threads to cooperate, so the kernels stay plain
// parallel loops that -moe-gpu-launches-to-loops can also run on the host.
// The order of the additions changes (lanes partial sums instead of one
// running sum); the result is the same up to rounding.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/SCF/Utils/Utils.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPUSPLITREDUCTIONSPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

namespace {

/// Whether `root`, and everything nested in it, at most reads memory.
bool onlyReads(Operation *root) {
  return !root
              ->walk([](Operation *op) {
                if (isa<memref::LoadOp>(op) ||
                    op->hasTrait<OpTrait::HasRecursiveMemoryEffects>() ||
                    isMemoryEffectFree(op))
                  return WalkResult::advance();
                return WalkResult::interrupt();
              })
              .wasInterrupted();
}

/// Whether every value of `values` is defined outside `loop`.
bool invariantIn(scf::ForOp loop, ValueRange values) {
  return llvm::all_of(values,
                      [&](Value v) { return loop.isDefinedOutsideOfLoop(v); });
}

/// Rewrites a reduction that accumulates in memory (what linalg's loops
/// lower a matmul to),
///   scf.for %k { ...; %c = load %C[%i]; store (%c + %x), %C[%i] }
/// as one that accumulates in a register,
///   %r = scf.for %k iter_args(%a = load %C[%i]) { ...; yield %a + %x }
///   store %r, %C[%i]
/// when %C[%i] is the same element in every iteration and nothing else in
/// the loop reads or writes %C's buffer. Leaves other loops alone.
void promoteAccumulator(RewriterBase &rewriter, scf::ForOp loop) {
  if (loop.getNumResults() != 0)
    return;
  Block *body = loop.getBody();
  memref::StoreOp store;
  for (Operation &op : body->without_terminator()) {
    if (auto s = dyn_cast<memref::StoreOp>(op)) {
      if (store)
        return;
      store = s;
      continue;
    }
    if (!onlyReads(&op))
      return;
  }
  if (!store || !store.getValueToStore().getType().isF32() ||
      !invariantIn(loop, store.getMemRef()) ||
      !invariantIn(loop, store.getIndices()))
    return;
  auto add = store.getValueToStore().getDefiningOp<arith::AddFOp>();
  if (!add || add->getBlock() != body || !add->hasOneUse())
    return;
  memref::LoadOp load;
  for (Value operand : add->getOperands()) {
    auto candidate = operand.getDefiningOp<memref::LoadOp>();
    if (candidate && candidate.getMemRef() == store.getMemRef() &&
        candidate.getIndices() == store.getIndices() &&
        candidate->hasOneUse()) {
      load = candidate;
      break;
    }
  }
  if (!load)
    return;
  Value buffer = getBaseBuffer(store.getMemRef());
  bool aliased = body->walk([&](memref::LoadOp other) {
                       return other != load &&
                                      getBaseBuffer(other.getMemRef()) == buffer
                                  ? WalkResult::interrupt()
                                  : WalkResult::advance();
                     })
                     .wasInterrupted();
  if (aliased)
    return;

  rewriter.setInsertionPoint(loop);
  Value init = memref::LoadOp::create(rewriter, load.getLoc(),
                                      store.getMemRef(), store.getIndices());
  auto promoted =
      scf::ForOp::create(rewriter, loop.getLoc(), loop.getLowerBound(),
                         loop.getUpperBound(), loop.getStep(), init);
  Block *newBody = promoted.getBody();
  rewriter.mergeBlocks(body, newBody, newBody->getArguments().take_front());
  rewriter.replaceAllUsesWith(load.getResult(), promoted.getRegionIterArg(0));
  rewriter.setInsertionPoint(newBody->getTerminator());
  rewriter.replaceOpWithNewOp<scf::YieldOp>(newBody->getTerminator(),
                                            add.getResult());
  rewriter.setInsertionPointAfter(promoted);
  memref::StoreOp::create(rewriter, store.getLoc(), promoted.getResult(0),
                          store.getMemRef(), store.getIndices());
  rewriter.eraseOp(store);
  rewriter.eraseOp(load);
  rewriter.eraseOp(loop);
}

/// The addf that `loop` (one f32 result) sums its iterations with, if its
/// iteration value is used by that addf alone.
arith::AddFOp getSum(scf::ForOp loop) {
  if (loop.getNumResults() != 1 || !loop.getResult(0).getType().isF32())
    return {};
  auto yield = cast<scf::YieldOp>(loop.getBody()->getTerminator());
  auto add = yield.getOperand(0).getDefiningOp<arith::AddFOp>();
  BlockArgument acc = loop.getRegionIterArg(0);
  if (!add || add->getBlock() != loop.getBody() || !add->hasOneUse() ||
      !acc.hasOneUse() || (add.getLhs() != acc && add.getRhs() != acc))
    return {};
  return add;
}

/// Whether every op of `loop`'s body at most reads memory.
bool bodyOnlyReads(scf::ForOp loop) {
  return llvm::all_of(loop.getBody()->without_terminator(),
                      [](Operation &op) { return onlyReads(&op); });
}

/// Whether `loop` is a reduction worth splitting: one f32 result summed
/// with addf, a constant trip count of at least `minTrips`, and a body
/// that only reads memory.
bool isSplittable(scf::ForOp loop, int64_t minTrips) {
  std::optional<int64_t> lb = getConstantIntValue(loop.getLowerBound());
  std::optional<int64_t> ub = getConstantIntValue(loop.getUpperBound());
  std::optional<int64_t> step = getConstantIntValue(loop.getStep());
  return lb && ub && step && *step > 0 && *ub - *lb >= minTrips * *step &&
         getSum(loop) && bodyOnlyReads(loop);
}

/// A reduction to split: `inner` is the loop whose iterations the lanes
/// share out; `outer` is the loop whose result the partial sums replace:
/// `inner` itself, or a loop around it that sums `inner`'s result times a
/// factor (the experts' down projection: over the chosen experts, a
/// routing weight times a row's dot product), which distributes over the
/// lanes' shares.
struct Reduction {
  scf::ForOp outer;
  scf::ForOp inner;
};

/// `loop` as a reduction to split, if it is one: splittable itself, or a
/// sum (its body only reading memory) of `inner` or `inner * c`, for one
/// splittable loop `inner` directly in its body.
std::optional<Reduction> asReduction(scf::ForOp loop, int64_t minTrips) {
  if (isSplittable(loop, minTrips))
    return Reduction{loop, loop};
  arith::AddFOp add = getSum(loop);
  if (!add || !bodyOnlyReads(loop))
    return std::nullopt;
  Value addend = add.getLhs() == loop.getRegionIterArg(0) ? add.getRhs()
                                                          : add.getLhs();
  auto innerOf = [&](Value v) -> std::optional<Reduction> {
    auto inner = v.getDefiningOp<scf::ForOp>();
    if (inner && inner->getBlock() == loop.getBody() && inner->hasOneUse() &&
        isSplittable(inner, minTrips))
      return Reduction{loop, inner};
    return std::nullopt;
  };
  auto mul = addend.getDefiningOp<arith::MulFOp>();
  if (!mul || mul->getBlock() != loop.getBody() || !mul->hasOneUse())
    return innerOf(addend);
  if (std::optional<Reduction> found = innerOf(mul.getLhs()))
    return found;
  return innerOf(mul.getRhs());
}

struct Splitter {
  int64_t lanes;
  int64_t minTrips;
  int64_t maxPartials;
  int64_t unroll;
  /// The lanes' loops of constant trip count, unrolled once all splits
  /// are built (unrolling may fold a loop away).
  SmallVector<scf::ForOp> laneLoops;

  /// The reductions of `parallel`'s body to split, in order, or none when
  /// the body does anything but read memory before the last of them.
  SmallVector<Reduction> findReductions(scf::ParallelOp parallel) const {
    SmallVector<Reduction> found;
    Block *body = parallel.getBody();
    for (Operation &op : body->without_terminator())
      if (auto loop = dyn_cast<scf::ForOp>(op))
        if (std::optional<Reduction> reduction = asReduction(loop, minTrips))
          found.push_back(*reduction);
    if (found.empty())
      return {};
    for (Operation &op : body->without_terminator()) {
      if (&op == found.back().outer.getOperation())
        break;
      if (!onlyReads(&op))
        return {};
    }
    return found;
  }

  /// Emits lane `lane`'s share of `loop` (iterations lane, lane + lanes,
  /// ..., summed from zero), its operands mapped through `mapping`;
  /// returns the sum.
  Value laneSum(OpBuilder &b, Location loc, scf::ForOp loop,
                const IRMapping &mapping, Value lane, Value laneCount,
                Value zero);

  void split(RewriterBase &rewriter, scf::ParallelOp parallel,
             ArrayRef<Reduction> reductions);
};

Value Splitter::laneSum(OpBuilder &b, Location loc, scf::ForOp loop,
                        const IRMapping &mapping, Value lane,
                        Value laneCount, Value zero) {
  // isSplittable: constant bounds and step.
  int64_t lb = *getConstantIntValue(loop.getLowerBound());
  int64_t ub = *getConstantIntValue(loop.getUpperBound());
  int64_t step = *getConstantIntValue(loop.getStep());
  int64_t trips = (ub - lb + step - 1) / step;
  auto index = [&](int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v).getResult();
  };
  auto body = [&](OpBuilder &inner, Value iv, ValueRange acc) {
    IRMapping laneMapping = mapping;
    laneMapping.map(loop.getInductionVar(), iv);
    laneMapping.map(loop.getRegionIterArg(0), acc[0]);
    for (Operation &bodyOp : *loop.getBody())
      inner.clone(bodyOp, laneMapping);
  };
  if (trips % lanes != 0) {
    // Lanes run different counts: iterations lane, lane + lanes, ...
    Value start = b.createOrFold<arith::AddIOp>(
        loc, index(lb), b.createOrFold<arith::MulIOp>(loc, lane, index(step)));
    return scf::ForOp::create(
               b, loc, start, index(ub), index(step * lanes), zero,
               [&](OpBuilder &inner, Location, Value iv, ValueRange acc) {
                 body(inner, iv, acc);
               })
        .getResult(0);
  }
  // Every lane runs trips / lanes iterations: iteration j is the
  // original's lane + j * lanes. Constant bounds, so it can be unrolled.
  auto partial = scf::ForOp::create(
      b, loc, index(0), index(trips / lanes), index(1), zero,
      [&](OpBuilder &inner, Location l, Value j, ValueRange acc) {
        Value at = inner.createOrFold<arith::AddIOp>(
            l, lane, inner.createOrFold<arith::MulIOp>(l, j, laneCount));
        Value iv = inner.createOrFold<arith::AddIOp>(
            l, index(lb),
            inner.createOrFold<arith::MulIOp>(l, at, index(step)));
        body(inner, iv, acc);
      });
  laneLoops.push_back(partial);
  return partial.getResult(0);
}

/// Splits `parallel`'s `reductions` (see the file comment). The partial
/// sums of output p, reduction r and lane l go to partial[p][r][l], p the
/// row-major index of p's induction variables. When the number of outputs
/// is only known at run time, the split form runs if its partial sums fit
/// in `maxPartials` floats, and the original loop otherwise.
void Splitter::split(RewriterBase &rewriter, scf::ParallelOp parallel,
                     ArrayRef<Reduction> reductions) {
  Location loc = parallel.getLoc();
  rewriter.setInsertionPoint(parallel);
  Value zero = arith::ConstantIndexOp::create(rewriter, loc, 0);
  Value one = arith::ConstantIndexOp::create(rewriter, loc, 1);
  Value laneCount = arith::ConstantIndexOp::create(rewriter, loc, lanes);

  // The trip count of each parallel dimension, and their product.
  SmallVector<Value> counts;
  Value outputs = one;
  for (auto [lb, ub, step] :
       llvm::zip(parallel.getLowerBound(), parallel.getUpperBound(),
                 parallel.getStep())) {
    Value span = rewriter.createOrFold<arith::SubIOp>(loc, ub, lb);
    Value count = rewriter.createOrFold<arith::CeilDivUIOp>(loc, span, step);
    counts.push_back(count);
    outputs = rewriter.createOrFold<arith::MulIOp>(loc, outputs, count);
  }
  int64_t perOutput = lanes * int64_t(reductions.size());
  std::optional<int64_t> staticOutputs = getConstantIntValue(outputs);
  if (staticOutputs && *staticOutputs * perOutput > maxPartials)
    return;

  // Where the split form goes: before `parallel`, or in the then-branch of
  // a run-time check whose else-branch keeps the original loop.
  if (!staticOutputs) {
    Value limit = arith::ConstantIndexOp::create(rewriter, loc,
                                                 maxPartials / perOutput);
    Value fits = arith::CmpIOp::create(rewriter, loc,
                                       arith::CmpIPredicate::ule, outputs,
                                       limit);
    auto check = scf::IfOp::create(rewriter, loc, fits, /*withElse=*/true);
    rewriter.setInsertionPoint(check.elseBlock()->getTerminator());
    rewriter.clone(*parallel);
    rewriter.moveOpBefore(parallel, check.thenBlock()->getTerminator());
    rewriter.setInsertionPoint(parallel);
  }

  MLIRContext *ctx = rewriter.getContext();
  auto partialType = MemRefType::get(
      {staticOutputs ? *staticOutputs : ShapedType::kDynamic,
       int64_t(reductions.size()), lanes},
      Float32Type::get(ctx));
  Value partials = memref::AllocOp::create(
      rewriter, loc, partialType,
      staticOutputs ? ValueRange{} : ValueRange{outputs});
  Value f32Zero = arith::ConstantFloatOp::create(
      rewriter, loc, Float32Type::get(ctx), APFloat(0.0f));

  // 1. The lanes' partial sums: one thread per (output, lane), the lane
  //    fastest, so that a warp's threads read neighbouring elements.
  Value threads = rewriter.createOrFold<arith::MulIOp>(loc, outputs, laneCount);
  Block *body = parallel.getBody();
  scf::ParallelOp::create(
      rewriter, loc, zero, threads, one,
      [&](OpBuilder &b, Location loc, ValueRange ivs) {
        Value lane = b.createOrFold<arith::RemUIOp>(loc, ivs[0], laneCount);
        Value output = b.createOrFold<arith::DivUIOp>(loc, ivs[0], laneCount);
        IRMapping mapping;
        Value rest = output;
        for (int64_t d = int64_t(counts.size()) - 1; d >= 0; --d) {
          Value index = b.createOrFold<arith::RemUIOp>(loc, rest, counts[d]);
          rest = b.createOrFold<arith::DivUIOp>(loc, rest, counts[d]);
          Value offset = b.createOrFold<arith::MulIOp>(loc, index,
                                               parallel.getStep()[d]);
          mapping.map(parallel.getInductionVars()[d],
                      b.createOrFold<arith::AddIOp>(loc, parallel.getLowerBound()[d],
                                            offset));
        }
        unsigned next = 0;
        for (Operation &op : body->without_terminator()) {
          if (next == reductions.size())
            break;
          // Named copies, not a structured binding: the lambda below
          // captures them, which C++17 does not allow for bindings.
          scf::ForOp outer = reductions[next].outer;
          scf::ForOp inner = reductions[next].inner;
          if (&op != outer.getOperation()) {
            b.clone(op, mapping);
            continue;
          }
          Value partial;
          if (outer == inner) {
            partial = laneSum(b, loc, inner, mapping, lane, laneCount,
                              f32Zero);
          } else {
            // The loop around `inner`, from zero, with the lane's share of
            // `inner` in each iteration.
            auto nest = scf::ForOp::create(
                b, loc, mapping.lookupOrDefault(outer.getLowerBound()),
                mapping.lookupOrDefault(outer.getUpperBound()),
                mapping.lookupOrDefault(outer.getStep()), f32Zero,
                [&](OpBuilder &nb, Location nl, Value iv, ValueRange acc) {
                  IRMapping nestMapping = mapping;
                  nestMapping.map(outer.getInductionVar(), iv);
                  nestMapping.map(outer.getRegionIterArg(0), acc[0]);
                  for (Operation &bodyOp : *outer.getBody()) {
                    if (&bodyOp != inner.getOperation()) {
                      nb.clone(bodyOp, nestMapping);
                      continue;
                    }
                    nestMapping.map(inner.getResult(0),
                                    laneSum(nb, nl, inner, nestMapping, lane,
                                            laneCount, f32Zero));
                  }
                });
            partial = nest.getResult(0);
          }
          Value r = arith::ConstantIndexOp::create(b, loc, next);
          memref::StoreOp::create(b, loc, partial, partials,
                                  ValueRange{output, r, lane});
          ++next;
        }
      });

  // 2. The original loop adds each output's partial sums where it ran the
  //    reduction.
  rewriter.setInsertionPointToStart(body);
  Value output = zero;
  for (auto [iv, lb, step, count] :
       llvm::zip(parallel.getInductionVars(), parallel.getLowerBound(),
                 parallel.getStep(), counts)) {
    Value offset = rewriter.createOrFold<arith::SubIOp>(loc, iv, lb);
    Value index = rewriter.createOrFold<arith::DivUIOp>(loc, offset, step);
    output = arith::AddIOp::create(
        rewriter, loc, rewriter.createOrFold<arith::MulIOp>(loc, output, count),
        index);
  }
  for (auto [r, reduction] : llvm::enumerate(reductions)) {
    scf::ForOp loop = reduction.outer;
    rewriter.setInsertionPoint(loop);
    Location at = loop.getLoc();
    Value index = arith::ConstantIndexOp::create(rewriter, at, r);
    auto add = cast<arith::AddFOp>(
        loop.getBody()->getTerminator()->getOperand(0).getDefiningOp());
    auto sum = scf::ForOp::create(
        rewriter, at, zero, laneCount, one, loop.getInitArgs()[0],
        [&](OpBuilder &b, Location loc, Value lane, ValueRange acc) {
          Value value = memref::LoadOp::create(b, loc, partials,
                                               ValueRange{output, index, lane});
          Value total = arith::AddFOp::create(b, loc, acc[0], value,
                                              add.getFastmathAttr());
          scf::YieldOp::create(b, loc, total);
        });
    rewriter.replaceOp(loop, sum.getResults());
  }
  rewriter.setInsertionPointAfter(parallel);
  memref::DeallocOp::create(rewriter, loc, partials);
}

/// Whether each op around `parallel`, up to its function, stays on the
/// host under -moe-gpu-launch-loops (which launches whole serial nests
/// that can run on the device, parallel loops inside included).
bool launchedOnItsOwn(scf::ParallelOp parallel) {
  for (Operation *op = parallel->getParentOp(); op && !isa<func::FuncOp>(op);
       op = op->getParentOp())
    if (isa<scf::ParallelOp, gpu::LaunchOp>(op) || canRunOnDevice(op))
      return false;
  return canRunOnDevice(parallel);
}

struct MoEGPUSplitReductionsPass
    : impl::MoEGPUSplitReductionsPassBase<MoEGPUSplitReductionsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (lanes < 2 || minTripCount < 1 || maxPartials < lanes || unroll < 1) {
      module.emitError("moe-gpu-split-reductions needs lanes >= 2, "
                       "min-trip-count >= 1, max-partials >= lanes and "
                       "unroll >= 1");
      return signalPassFailure();
    }
    Splitter splitter{lanes, minTripCount, maxPartials, unroll, {}};
    IRRewriter rewriter(&getContext());
    for (func::FuncOp fn : module.getOps<func::FuncOp>()) {
      if (fn.isExternal() || fn.getSymName().starts_with("dealloc_helper"))
        continue;
      SmallVector<scf::ParallelOp> candidates;
      fn.walk([&](scf::ParallelOp parallel) {
        if (parallel.getNumResults() == 0 && launchedOnItsOwn(parallel))
          candidates.push_back(parallel);
      });
      for (scf::ParallelOp parallel : candidates) {
        SmallVector<scf::ForOp> loops(
            parallel.getBody()->getOps<scf::ForOp>());
        for (scf::ForOp loop : loops)
          promoteAccumulator(rewriter, loop);
        SmallVector<Reduction> reductions = splitter.findReductions(parallel);
        if (!reductions.empty())
          splitter.split(rewriter, parallel, reductions);
      }
    }
    // Several loads in flight per thread: a lane's loads do not depend on
    // its running sum, and unrolling keeps the order of the sum. (MLIR's
    // unroller takes no factor above the trip count.)
    for (scf::ForOp loop : splitter.laneLoops) {
      int64_t trips = *getConstantIntValue(loop.getUpperBound());
      int64_t factor = std::min<int64_t>(unroll, trips);
      if (factor > 1)
        (void)loopUnrollByFactor(loop, factor);
    }
  }
};
} // namespace
} // namespace mlir::moe
