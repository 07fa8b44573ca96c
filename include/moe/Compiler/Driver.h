//===- Driver.h - The moec compiler driver ----------------------*- C++ -*-===//
//
// The logic behind the `moec` tool, kept in a library so that the tool is a
// one-line main and tests can drive the same pipeline.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_DRIVER_H
#define MOE_COMPILER_DRIVER_H

namespace mlir {
class OpPassManager;
} // namespace mlir

namespace mlir::moe {

/// The stages `moec --emit=` can stop after.
enum class EmitStage {
  /// The program in the moe dialect after verification, module-wide weight
  /// checks and canonicalization.
  MoE,
  /// Every moe op lowered to linalg/tensor/scf (the reference lowering),
  /// weights as external memref globals.
  Linalg,
  /// The CPU program in the LLVM dialect, ready for translation.
  LLVM,
  /// A CPU artifact file for moe-run and the runtime (checkpoint input).
  Artifact,
};

/// Adds the passes that take verified moe-dialect input to `stage`.
void buildMoECompilePipeline(OpPassManager &pm, EmitStage stage);

/// Runs moec with its command line; returns the process exit code.
int moecMain(int argc, char **argv);

} // namespace mlir::moe

#endif // MOE_COMPILER_DRIVER_H
