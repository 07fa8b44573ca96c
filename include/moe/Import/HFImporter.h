//===- HFImporter.h - Hugging Face checkpoint to the moe dialect -*- C++ -*-===//
//
// Turns a checkpoint folder (config.json + safetensors) into a module in the
// moe dialect plus upstream dialects:
//
//   func.func @prefill(%tokens: tensor<?x?xi32>)
//       -> (logits tensor<?x?xVxf32>, caches...)
//   func.func @decode(%tokens: tensor<?x1xi32>, %positions: tensor<?xi32>,
//                     caches...) -> (logits tensor<?x1xVxf32>, caches...)
//   func.func private @forward(...)     the shared body
//   func.func private @layer_<kind>(...) one per distinct layer signature;
//                                        weights are arguments
//
// Weights appear only as moe.weight / moe.stacked_weight references by
// checkpoint name, with each tensor's own dtype. Every checkpoint tensor is
// either placed or reported (DeepSeek-V3's multi-token-prediction layers are
// the one documented exception and are skipped).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IMPORT_HFIMPORTER_H
#define MOE_IMPORT_HFIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"

#include <memory>

namespace moe {
class Checkpoint;
} // namespace moe

namespace mlir {
class MLIRContext;
} // namespace mlir

namespace mlir::moe {

struct HFImportOptions {
  /// KV-cache capacity in tokens; 0 picks min(max_position_embeddings, 4096).
  int64_t maxSeqLen = 0;
  /// When set, receives the opened checkpoint (already validated), so that
  /// later stages such as the artifact writer need not parse it again.
  std::shared_ptr<::moe::Checkpoint> *openedCheckpoint = nullptr;
};

/// Imports the checkpoint in `directory`. Errors name the file and the
/// tensor or config field at fault.
llvm::Expected<OwningOpRef<ModuleOp>>
importHFCheckpoint(MLIRContext *context, llvm::StringRef directory,
                   const HFImportOptions &options = {});

} // namespace mlir::moe

#endif // MOE_IMPORT_HFIMPORTER_H
