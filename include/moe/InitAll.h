//===- InitAll.h - Register what moec's tools understand --------*- C++ -*-===//
//
// One place that decides which dialects, passes, extensions and translations
// the tools register, so that moe-opt, moec and the tests agree.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_INITALL_H
#define MOE_INITALL_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace mlir::moe {

/// Registers the moe dialect, the upstream dialects our programs and
/// pipelines use, their extensions (ConvertToLLVM and bufferization models,
/// ...) and the GPU-to-LLVM-IR translations with the NVVM target, so that
/// `gpu-lower-to-nvvm-pipeline` runs inside our tools.
void registerAllMoEDialects(DialectRegistry &registry);

/// Registers moe passes and the upstream passes and pipelines for the
/// command line (idempotent).
void registerAllMoEPasses();

} // namespace mlir::moe

#endif // MOE_INITALL_H
