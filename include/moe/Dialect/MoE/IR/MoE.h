//===- MoE.h - The moe dialect ----------------------------------*- C++ -*-===//
//
// Umbrella header for the moe dialect: the dialect, its enums, attributes
// and operations.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOE_H
#define MOE_DIALECT_MOE_IR_MOE_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "moe/Support/RoPE.h"

namespace mlir::moe::detail {
/// Parses an f64 attribute parameter written as an MLIR float literal.
FailureOr<llvm::APFloat> parseF64Param(AsmParser &parser);
/// Parses a bool attribute parameter written as `true` or `false`.
FailureOr<bool> parseBoolParam(AsmParser &parser);
} // namespace mlir::moe::detail

#include "moe/Dialect/MoE/IR/MoEDialect.h.inc"
#include "moe/Dialect/MoE/IR/MoEEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "moe/Dialect/MoE/IR/MoEAttrs.h.inc"

#define GET_OP_CLASSES
#include "moe/Dialect/MoE/IR/MoEOps.h.inc"

#endif // MOE_DIALECT_MOE_IR_MOE_H
