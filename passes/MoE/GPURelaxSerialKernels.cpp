//===- GPURelaxSerialKernels.cpp - No thread bound on one-thread kernels --===//
//
// Implements -moe-gpu-relax-serial-kernels. Outlining records a launch's
// constant block size on the kernel (known_block_size), which NVVM emits
// as `.maxntid`. For the one-thread kernels of -moe-gpu-launch-loops,
// `.maxntid 1, 1, 1` makes ptxas cap registers low enough that loop nests
// with a few dozen live values spill (seen on sm_80 and sm_90a); without
// the bound, the same kernels assemble without spills.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPURELAXSERIALKERNELSPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

namespace {
struct MoEGPURelaxSerialKernelsPass
    : impl::MoEGPURelaxSerialKernelsPassBase<MoEGPURelaxSerialKernelsPass> {
  using Base::Base;

  void runOnOperation() override {
    getOperation().walk([](gpu::GPUFuncOp fn) {
      std::optional<llvm::ArrayRef<int32_t>> block = fn.getKnownBlockSize();
      if (fn.isKernel() && block &&
          llvm::all_of(*block, [](int32_t n) { return n == 1; }))
        fn.removeKnownBlockSizeAttr();
    });
  }
};
} // namespace
} // namespace mlir::moe
