//===- Driver.h - The moec compiler driver ----------------------*- C++ -*-===//
//
// The logic behind the `moec` tool, kept in a library so that the tool is a
// one-line main and tests can drive the same pipeline.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_DRIVER_H
#define MOE_COMPILER_DRIVER_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <optional>
#include <string>

namespace mlir {
class ModuleOp;
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
  /// The host program in the LLVM dialect, ready for translation (for
  /// CUDA, with the device code as a gpu.binary of PTX).
  LLVM,
  /// An artifact file for moe-run and the runtime.
  Artifact,
  /// The device code of a CUDA compilation, as PTX text.
  PTX,
};

/// What the code is generated for (`moec --target`, `--gpu-arch`).
struct MoETargetOptions {
  /// CUDAOnHost, a testing aid, places loops as for CUDA but runs each
  /// launch as host loops in a CPU artifact (-moe-gpu-launches-to-loops),
  /// so that the placement is checked numerically without a GPU.
  enum class Kind { CPU, CUDA, CUDAOnHost };
  Kind kind = Kind::CPU;
  /// For CUDA: the streaming multiprocessor the PTX is for.
  std::string gpuArch = "sm_90a";
  /// For CUDA and CUDAOnHost: the shortest reduction that
  /// -moe-gpu-split-reductions spreads over a warp's lanes.
  int64_t splitMinTrips = 256;

  bool isCUDA() const { return kind == Kind::CUDA; }
  /// Whether loops are placed as for a GPU (CUDA and CUDAOnHost).
  bool placesLoopsOnGPU() const { return kind != Kind::CPU; }
};

/// The GPU architectures `--gpu-arch` accepts.
llvm::ArrayRef<llvm::StringRef> getSupportedGPUArchs();

/// Which moe-level optimisations run (`moec -O0|-O1|-O2`, `--passes=`).
struct MoEOptimizationOptions {
  /// 0: none (the reference lowering of the imported ops); 1: fused
  /// routing and grouped expert GEMMs; 2 (the default): also latent
  /// attention absorption.
  unsigned level = 2;
  /// When set, exactly these passes (flags without the dash, in pipeline
  /// order) instead of the level's; e.g. {"moe-absorb-mla"}.
  std::optional<llvm::SmallVector<std::string>> passes;
  /// Whether CPU code calls the runtime's kernels for experts, projections
  /// and routing (-moe-use-runtime-kernels) instead of the reference
  /// lowering; unset means at -O1 and above (`moec --cpu-kernels`).
  std::optional<bool> runtimeKernels;

  bool usesRuntimeKernels() const {
    return runtimeKernels.value_or(level >= 1);
  }
};

/// The moe optimisation pass flags that `options` selects, in the order
/// they run.
llvm::SmallVector<std::string>
getMoEOptimizationPasses(const MoEOptimizationOptions &options);

/// Checks that every name in `options.passes` is a moe optimisation pass.
llvm::Error verifyMoEOptimizationOptions(const MoEOptimizationOptions &options);

/// Adds the passes that take verified moe-dialect input to `stage`,
/// optimising as `options` says, for `target`.
void buildMoECompilePipeline(OpPassManager &pm, EmitStage stage,
                             const MoEOptimizationOptions &options = {},
                             const MoETargetOptions &target = {});

/// The PTX of every gpu.binary in `module` (after the CUDA pipeline's
/// serialisation), checked to call only functions the driver provides.
llvm::Expected<std::string> getKernelPTX(ModuleOp module);

/// Runs moec with its command line; returns the process exit code.
int moecMain(int argc, char **argv);

} // namespace mlir::moe

#endif // MOE_COMPILER_DRIVER_H
