//===- MoEUtils.h - IR-building helpers shared by moe code ------*- C++ -*-===//

#ifndef MOE_DIALECT_MOE_IR_MOEUTILS_H
#define MOE_DIALECT_MOE_IR_MOEUTILS_H

#include "mlir/IR/Builders.h"

namespace mlir::moe {

/// `init + x * w^T` as a linalg.matmul with a transposed-B indexing map, for
/// x [M, K] and checkpoint-layout weights w [N, K] (the `[out, in]`
/// convention); init [M, N] fixes the accumulation type.
Value createMatmulTransposeB(OpBuilder &b, Location loc, Value x, Value w,
                             Value init);

} // namespace mlir::moe

#endif // MOE_DIALECT_MOE_IR_MOEUTILS_H
