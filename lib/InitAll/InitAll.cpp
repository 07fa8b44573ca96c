//===- InitAll.cpp - Register what moec's tools understand ----------------===//

#include "moe/InitAll.h"

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"

#include <mutex>

void mlir::moe::registerAllMoEDialects(DialectRegistry &registry) {
  registry.insert<moe::MoEDialect>();
  // The upstream dialects come with their interface models (bufferization,
  // tiling, value bounds, ...), which our lowerings rely on; registering
  // them all keeps moe-opt able to run any upstream pipeline on our IR.
  registerAllDialects(registry);
  // ConvertToLLVM models and other extensions; without them the GPU
  // lowering leaves unrealized casts behind.
  registerAllExtensions(registry);
  registerAllGPUToLLVMIRTranslations(registry);
  NVVM::registerNVVMTargetInterfaceExternalModels(registry);
}

void mlir::moe::registerAllMoEPasses() {
  // Pass registration is global and rejects duplicates; tests and tools may
  // both call this.
  static std::once_flag once;
  std::call_once(once, [] {
    registerAllPasses();
    registerMoEPasses();
  });
}
