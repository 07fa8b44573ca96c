//===- GPULaunchLoops.cpp - Place the bufferized program's loops on the GPU ===//
//
// Implements -moe-gpu-launch-loops, the step of the CUDA pipeline that
// decides what runs on the device. The bufferized program is host code:
// functions, the layer loop, allocations, and loop nests that do the
// arithmetic. Every loop nest that can run on the device becomes a
// gpu.launch (outlined later into the one gpu.module @moe_kernels):
//
//  - a parallel loop (scf.parallel, from linalg or from the reference
//    lowering's scf.forall over rows, tokens and heads) is tiled so that
//    its innermost dimension spreads over the threads of a block and the
//    other dimensions over the grid; loops nested in it run serially in
//    each thread;
//  - a serial nest (scf.for, scf.if, scf.while without results; no moe
//    op's lowering leaves one, some ONNX ops' do, such as the scatters)
//    runs in one thread. That is slow, but it keeps every byte the nest
//    touches on the device; parallel forms of those lowerings are what
//    makes them fast.
//
// What stays on the host: function calls, allocations whose size is only
// known at run time, and the scalar glue between nests. memref.copy is
// rewritten as a parallel loop first, so that copies also run on the
// device. The runtime gives compiled code memory that host and device can
// both address (CUDA managed memory), so what the host still touches stays
// correct.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Conversion/SCFToGPU/SCFToGPU.h"
#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/ParallelLoopMapper.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/Utils/Utils.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "mlir/Transforms/DialectConversion.h"
#include "mlir/Transforms/RegionUtils.h"

#include <numeric>

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPULAUNCHLOOPSPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

/// The buffer `value` is a view of: through casts, views and
/// extract_strided_metadata's base buffer.
Value getBaseBuffer(Value value) {
  while (Operation *def = value.getDefiningOp()) {
    if (auto metadata = dyn_cast<memref::ExtractStridedMetadataOp>(def)) {
      value = metadata.getSource();
      continue;
    }
    if (auto view = dyn_cast<ViewLikeOpInterface>(def)) {
      value = view.getViewSource();
      continue;
    }
    break;
  }
  return value;
}

/// Whether `root` and everything in it can run inside a kernel: no calls,
/// no allocation whose size is only known at run time, and no
/// deallocation of a buffer allocated outside it.
bool canRunOnDevice(Operation *root) {
  WalkResult result = root->walk([&](Operation *op) {
    if (isa<CallOpInterface, gpu::LaunchOp, memref::CopyOp>(op))
      return WalkResult::interrupt();
    if (auto alloc = dyn_cast<memref::AllocOp>(op))
      if (!alloc.getType().hasStaticShape())
        return WalkResult::interrupt();
    if (auto dealloc = dyn_cast<memref::DeallocOp>(op)) {
      Operation *def = getBaseBuffer(dealloc.getMemref()).getDefiningOp();
      if (!def || !isa<memref::AllocOp>(def) || !root->isAncestor(def))
        return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return !result.wasInterrupted();
}

namespace {

/// Rewrites `copy` as a parallel loop of loads and stores, which the
/// placement below puts on the device like any other.
void expandCopy(memref::CopyOp copy) {
  OpBuilder b(copy);
  Location loc = copy.getLoc();
  Value source = copy.getSource(), target = copy.getTarget();
  auto type = cast<MemRefType>(source.getType());
  if (type.getRank() == 0) {
    Value v = memref::LoadOp::create(b, loc, source);
    memref::StoreOp::create(b, loc, v, target);
    copy.erase();
    return;
  }
  SmallVector<Value> lower, upper, steps;
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  for (int64_t i = 0; i < type.getRank(); ++i) {
    lower.push_back(zero);
    steps.push_back(one);
    upper.push_back(memref::DimOp::create(b, loc, source, i));
  }
  scf::ParallelOp::create(
      b, loc, lower, upper, steps,
      [&](OpBuilder &nested, Location loc, ValueRange ivs) {
        Value v = memref::LoadOp::create(nested, loc, source, ivs);
        memref::StoreOp::create(nested, loc, v, target, ivs);
      });
  copy.erase();
}

/// Turns the parallel loops nested in `loop` (a linalg.fill of a row
/// buffer, a copy) into scf.for nests: each thread runs its own iteration's
/// nest, and the launch conversion would otherwise try to map them too.
void serializeNestedLoops(scf::ParallelOp loop) {
  SmallVector<scf::ParallelOp> nested;
  loop.getBody()->walk([&](scf::ParallelOp inner) { nested.push_back(inner); });
  IRRewriter rewriter(loop.getContext());
  for (scf::ParallelOp inner : nested) {
    rewriter.setInsertionPoint(inner);
    (void)scf::parallelForToNestedFors(rewriter, inner);
  }
}

/// Tiles `loop` so that its innermost dimension is spread over the threads
/// of a block, and spreads the tiles over grid x: the tile loop's
/// dimensions are collapsed into one first, since grid y and z hold at most
/// 65535 blocks and a prompt's tokens or a vocabulary can exceed that.
void mapParallelLoop(scf::ParallelOp loop, int64_t threads) {
  serializeNestedLoops(loop);
  unsigned rank = loop.getNumLoops();
  SmallVector<int64_t> tileSizes(rank, 1);
  std::optional<int64_t> innermost =
      getConstantIntValue(loop.getUpperBound().back());
  std::optional<int64_t> start =
      getConstantIntValue(loop.getLowerBound().back());
  tileSizes.back() =
      innermost && start && *innermost - *start > 0 &&
              *innermost - *start < threads
          ? *innermost - *start
          : threads;
  auto [outer, inner] =
      scf::tileParallelLoop(loop, tileSizes, /*noMinMaxBounds=*/true);
  if (rank > 1) {
    // The collapsed loop replaces `outer` where it was, after the ops that
    // compute its bound.
    Operation *before = outer->getPrevNode();
    Block *block = outer->getBlock();
    IRRewriter rewriter(outer.getContext());
    std::vector<unsigned> all(rank);
    std::iota(all.begin(), all.end(), 0u);
    collapseParallelLoops(rewriter, outer, {all});
    Operation *at = before ? before->getNextNode() : &block->front();
    while (!isa<scf::ParallelOp>(at))
      at = at->getNextNode();
    outer = cast<scf::ParallelOp>(at);
  }
  MLIRContext *ctx = outer.getContext();
  AffineMap identity = AffineMap::getMultiDimIdentityMap(1, ctx);
  auto dim = [&](gpu::Processor processor) {
    return gpu::ParallelLoopDimMappingAttr::get(ctx, processor, identity,
                                                identity);
  };
  SmallVector<gpu::ParallelLoopDimMappingAttr> innerMap;
  for (unsigned i = 0; i < rank; ++i)
    innerMap.push_back(dim(i + 1 == rank ? gpu::Processor::ThreadX
                                         : gpu::Processor::Sequential));
  (void)gpu::setMappingAttr(outer, {dim(gpu::Processor::BlockX)});
  (void)gpu::setMappingAttr(inner, innerMap);
}

/// Moves `op` into a gpu.launch of one thread.
void launchSerially(Operation *op) {
  OpBuilder b(op);
  Location loc = op->getLoc();
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  auto launch = gpu::LaunchOp::create(b, loc, one, one, one, one, one, one);
  Block &body = launch.getBody().front();
  b.setInsertionPointToEnd(&body);
  auto terminator = gpu::TerminatorOp::create(b, loc);
  op->moveBefore(terminator);
}

/// Places the ops of `region` (host code): each nest that can run on the
/// device is launched, the others are searched for nests inside them.
void placeRegion(Region &region, int64_t threads) {
  for (Block &block : region) {
    for (Operation &op : llvm::make_early_inc_range(block)) {
      if (op.getNumRegions() == 0 || isa<gpu::LaunchOp>(op))
        continue;
      if (auto loop = dyn_cast<scf::ParallelOp>(op);
          loop && loop.getNumResults() == 0 && canRunOnDevice(loop)) {
        mapParallelLoop(loop, threads);
        continue;
      }
      if (isa<scf::ForOp, scf::IfOp, scf::WhileOp, scf::ParallelOp>(op) &&
          op.getNumResults() == 0 && canRunOnDevice(&op)) {
        launchSerially(&op);
        continue;
      }
      for (Region &nested : op.getRegions())
        placeRegion(nested, threads);
    }
  }
}

/// Makes the body of `launch` self-contained for outlining: weights (the
/// external globals the runtime binds) are read on the host and passed in;
/// constant globals are read inside, so that outlining copies them into
/// the device module; fixed-size scratch buffers become per-thread
/// allocas at the kernel's entry.
void prepareLaunchBody(gpu::LaunchOp launch, SymbolTableCollection &symbols) {
  Region &body = launch.getBody();
  Block &entry = body.front();
  auto isWeight = [&](memref::GetGlobalOp get) {
    auto global = symbols.lookupNearestSymbolFrom<memref::GlobalOp>(
        get, get.getNameAttr());
    return global && !global.getInitialValue();
  };
  body.walk([&](memref::GetGlobalOp get) {
    if (isWeight(get))
      get->moveBefore(launch);
  });
  SetVector<Value> captured;
  getUsedValuesDefinedAbove(body, captured);
  for (Value value : captured) {
    auto get = value.getDefiningOp<memref::GetGlobalOp>();
    if (!get || isWeight(get))
      continue;
    OpBuilder b = OpBuilder::atBlockBegin(&entry);
    Value inside = b.clone(*get)->getResult(0);
    replaceAllUsesInRegionWith(value, inside, body);
  }
  SmallVector<memref::AllocOp> allocs;
  body.walk([&](memref::AllocOp alloc) { allocs.push_back(alloc); });
  DenseSet<Operation *> scratch;
  for (memref::AllocOp alloc : allocs) {
    OpBuilder b = OpBuilder::atBlockBegin(&entry);
    auto alloca = memref::AllocaOp::create(b, alloc.getLoc(), alloc.getType(),
                                           alloc.getAlignmentAttr());
    alloc.replaceAllUsesWith(alloca.getResult());
    alloc.erase();
    scratch.insert(alloca);
  }
  body.walk([&](memref::DeallocOp dealloc) {
    if (scratch.contains(getBaseBuffer(dealloc.getMemref()).getDefiningOp()))
      dealloc.erase();
  });
}

struct MoEGPULaunchLoopsPass
    : impl::MoEGPULaunchLoopsPassBase<MoEGPULaunchLoopsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (threadsPerBlock < 1 || threadsPerBlock > 1024) {
      module.emitError("threads-per-block must be in [1, 1024]");
      return signalPassFailure();
    }
    SmallVector<func::FuncOp> functions(module.getOps<func::FuncOp>());
    for (func::FuncOp fn : functions) {
      // The buffer-deallocation pipeline's helper compares a few pointers
      // on the host; launching its loops would only add round trips.
      if (fn.isExternal() || fn.getSymName().starts_with("dealloc_helper"))
        continue;
      SmallVector<memref::CopyOp> copies;
      fn.walk([&](memref::CopyOp copy) { copies.push_back(copy); });
      for (memref::CopyOp copy : copies)
        expandCopy(copy);
      placeRegion(fn.getBody(), threadsPerBlock);
    }

    // The mapped parallel loops become launches.
    MLIRContext *ctx = &getContext();
    RewritePatternSet patterns(ctx);
    populateParallelLoopToGPUPatterns(patterns);
    ConversionTarget target(*ctx);
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    configureParallelLoopToGPULegality(target);
    if (failed(applyPartialConversion(module, target, std::move(patterns))))
      return signalPassFailure();
    finalizeParallelLoopToGPUConversion(module);

    // Every kernel goes to one device module, named after the function it
    // came from.
    SymbolTableCollection symbols;
    auto moduleName = FlatSymbolRefAttr::get(ctx, kernelModule);
    for (func::FuncOp fn : functions) {
      unsigned index = 0;
      fn.walk([&](gpu::LaunchOp launch) {
        // The conversion's marker, not meant to outlive it.
        launch->removeAttr("SCFToGPU_visited");
        prepareLaunchBody(launch, symbols);
        launch.setModuleAttr(moduleName);
        launch.setFunctionAttr(FlatSymbolRefAttr::get(
            ctx, (fn.getSymName() + "_k" + llvm::Twine(index++)).str()));
      });
    }
  }
};
} // namespace
} // namespace mlir::moe
