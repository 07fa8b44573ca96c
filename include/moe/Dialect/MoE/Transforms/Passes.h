//===- Passes.h - moe dialect passes ----------------------------*- C++ -*-===//

#ifndef MOE_DIALECT_MOE_TRANSFORMS_PASSES_H
#define MOE_DIALECT_MOE_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

#include <string>

namespace mlir::moe {

#define GEN_PASS_DECL
#define GEN_PASS_REGISTRATION
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"

/// The external symbol that holds the weight `names[0]` (`stacked` false)
/// or the stack of the tensors `names`, in order (`stacked` true).
std::string getWeightSymbol(llvm::ArrayRef<std::string> names, bool stacked);

/// The buffer `value` is a view of: through casts, views and
/// extract_strided_metadata's base buffer.
Value getBaseBuffer(Value value);

/// Whether `root` and everything in it can run inside a GPU kernel: no
/// calls, no allocation whose size is only known at run time, and no
/// deallocation of a buffer allocated outside it. What
/// -moe-gpu-launch-loops launches, and -moe-gpu-split-reductions expects.
bool canRunOnDevice(Operation *root);

} // namespace mlir::moe

#endif // MOE_DIALECT_MOE_TRANSFORMS_PASSES_H
