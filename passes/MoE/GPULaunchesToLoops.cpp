//===- GPULaunchesToLoops.cpp - Run gpu.launch bodies as host loops -------===//
//
// Implements -moe-gpu-launches-to-loops, a testing aid: each gpu.launch
// becomes a loop nest over its grid and block (z, y, x, outermost first)
// around its body, with the block and thread ids the loops' induction
// variables. Kernels placed by -moe-gpu-launch-loops use no barriers or
// shared memory, so running their threads one after another computes what
// the GPU computes; compiled for the host (moec --target=cuda-on-host),
// that checks the placement numerically on machines without a GPU.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPULAUNCHESTOLOOPSPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

namespace {
struct MoEGPULaunchesToLoopsPass
    : impl::MoEGPULaunchesToLoopsPassBase<MoEGPULaunchesToLoopsPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<gpu::LaunchOp> launches;
    getOperation()->walk([&](gpu::LaunchOp launch) {
      launches.push_back(launch);
    });
    IRRewriter rewriter(&getContext());
    for (gpu::LaunchOp launch : launches) {
      Region &body = launch.getBody();
      if (!body.hasOneBlock() || launch.getAsyncToken() ||
          !launch.getWorkgroupAttributions().empty() ||
          !launch.getPrivateAttributions().empty()) {
        launch.emitOpError("is not a launch -moe-gpu-launch-loops makes "
                           "(one block, synchronous, no attributions)");
        return signalPassFailure();
      }
      // Per-thread scratch: allocated once, before the threads run in turn.
      for (Operation &op :
           llvm::make_early_inc_range(body.front().without_terminator()))
        if (isa<memref::AllocaOp>(op))
          op.moveBefore(launch);
      Location loc = launch.getLoc();
      rewriter.setInsertionPoint(launch);
      Value zero = arith::ConstantIndexOp::create(rewriter, loc, 0);
      Value one = arith::ConstantIndexOp::create(rewriter, loc, 1);
      gpu::KernelDim3 grid = launch.getGridSizeOperandValues();
      gpu::KernelDim3 block = launch.getBlockSizeOperandValues();
      Value bounds[] = {grid.z, grid.y, grid.x, block.z, block.y, block.x};
      SmallVector<Value> ivs;
      for (Value bound : bounds) {
        auto loop = scf::ForOp::create(rewriter, loc, zero, bound, one);
        ivs.push_back(loop.getInductionVar());
        rewriter.setInsertionPoint(loop.getBody()->getTerminator());
      }
      // The body's arguments: block ids, thread ids, grid and block sizes,
      // each x, y, z.
      Value replacements[] = {ivs[2],  ivs[1],  ivs[0],  ivs[5],
                              ivs[4],  ivs[3],  grid.x,  grid.y,
                              grid.z,  block.x, block.y, block.z};
      Block &entry = body.front();
      rewriter.eraseOp(entry.getTerminator());
      rewriter.inlineBlockBefore(&entry, rewriter.getInsertionBlock(),
                                 rewriter.getInsertionPoint(), replacements);
      rewriter.eraseOp(launch);
    }
  }
};
} // namespace
} // namespace mlir::moe
