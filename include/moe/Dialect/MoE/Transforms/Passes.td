//===- Passes.td - moe dialect passes ----------------------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
#define MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MoECheckWeightsPass : Pass<"moe-check-weights", "ModuleOp"> {
  let summary = "Check that every weight name has one type across the module";
  let description = [{
    `moe.weight` and `moe.stacked_weight` ops refer to tensors stored
    outside the IR by name. Each op
    verifies on its own, but only the module can tell that two references
    to the same name disagree on shape or element type, which would make
    the artifact writer bind one tensor to two layouts. This pass reports
    each conflicting reference, with a note at the first one, and fails.

    With `list-weights`, it also prints one line per distinct weight
    (`name: type`) in first-use order to stderr, the manifest the artifact
    writer and the runtime agree on.

    Example of a conflict it rejects:

    ```mlir
    %a = moe.weight "w" : tensor<4x8xf32>
    %b = moe.weight "w" : tensor<8x4xf32>  // error: 'w' used with two types
    ```
  }];
  let options = [
    Option<"listWeights", "list-weights", "bool", /*default=*/"false",
           "Print the weight manifest (name: type) to stderr">
  ];
}

def MoELowerToLinalgPass : Pass<"moe-lower-to-linalg", "ModuleOp"> {
  let summary = "Lower moe ops to linalg, tensor, scf, arith and math";
  let description = [{
    Rewrites every moe op except the weight references into upstream
    dialects on tensors. This lowering is the dialect's reference
    semantics: straightforward loops and linalg ops that compute exactly
    what each op's description says (f32 router logits, f32 softmax and
    RMS statistics, ties to the lower expert id, `-inf` masking of dropped
    groups), with no attempt at speed. Fused and tiled lowerings must agree
    with it.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect", "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

def MoEExternalizeWeightsPass : Pass<"moe-externalize-weights", "ModuleOp"> {
  let summary = "Turn weight references into external memref globals";
  let description = [{
    Replaces each `moe.weight` and `moe.stacked_weight` by a read-only
    tensor view of an external `memref.global` declaration, so that the
    compiled code reads weights from memory the runtime binds at load time
    (the mapped checkpoint; stacked experts gathered once). Symbol names are
    `moe::getWeightSymbol` of the referenced tensor names; the module's
    `moe.weights` attribute maps each symbol to its tensor names.
  }];
  let dependentDialects = [
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::memref::MemRefDialect"
  ];
}

#endif // MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
