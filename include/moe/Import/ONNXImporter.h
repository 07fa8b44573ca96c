//===- ONNXImporter.h - ONNX graphs into the moe dialect --------*- C++ -*-===//
//
// Turns a validated ONNX model (ONNXModel.h) into one function, @main, whose
// arguments and results are the graph's inputs and outputs. Initializers
// become moe.weight references named after the initializer; dynamic
// dimensions stay dynamic. Locations are the nodes' names.
//
// MoE blocks are raised to moe.route + moe.experts so that ONNX models reach
// the same passes and kernels as checkpoints: com.microsoft.MoE, and the
// gathered-expert-weights form torch.onnx.export writes for transformers'
// batched_mm experts (ONNXRaiseMoE.cpp; with a router other than softmax
// top-k, to moe.experts over the plain router). The unrolled per-expert and
// dense all-experts forms are not recognised yet. Every MoE block found is
// reported with whether it was raised and, if not, why.
//
// The standard ops imported are listed in docs/architecture.md; a graph
// using others is refused with the full list of what is missing.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IMPORT_ONNXIMPORTER_H
#define MOE_IMPORT_ONNXIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace moe {
class ONNXModel;
} // namespace moe

namespace mlir::moe {

/// What the importer did with one MoE block.
struct ONNXMoEBlock {
  std::string node; ///< The node (its name, or index and op type).
  std::string form; ///< e.g. "com.microsoft.MoE".
  bool raised = false;
  std::string raisedTo = "moe.route + moe.experts"; ///< When raised.
  std::string reason; ///< Why it was not raised (empty when it was).
};

/// Imports `model`. `blocks`, when given, receives one entry per MoE block
/// found, raised or not.
llvm::Expected<OwningOpRef<ModuleOp>>
importONNXModel(MLIRContext *context, const ::moe::ONNXModel &model,
                std::vector<ONNXMoEBlock> *blocks = nullptr);

} // namespace mlir::moe

#endif // MOE_IMPORT_ONNXIMPORTER_H
