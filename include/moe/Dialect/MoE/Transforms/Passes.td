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

#endif // MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
