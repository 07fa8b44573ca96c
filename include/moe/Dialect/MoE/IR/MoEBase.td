//===- MoEBase.td - The moe dialect definition -------------*- tablegen -*-===//
//
// The `moe` dialect: Mixture-of-Experts language-model operations on tensors.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEBASE_TD
#define MOE_DIALECT_MOE_IR_MOEBASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def MoE_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::mlir::moe";
  let summary = "Mixture-of-Experts language-model operations on tensors";
  let description = [{
    The `moe` dialect makes the parts of a Mixture-of-Experts decoder that
    general ML compilers treat as an afterthought first-class operations:
    routing (`moe.route`), the grouped expert FFN with its combine
    (`moe.experts`), DeepSeek's multi-head latent attention (`moe.mla`,
    `moe.mla_absorbed`) and grouped-query attention over a KV cache
    (`moe.attention`). The model-level helpers that every family shares
    (`moe.rms_norm`, `moe.rope`, `moe.embedding`) and references to external
    weights (`moe.weight`) complete it. Everything that is not MoE-specific is
    carried by upstream dialects (`linalg`, `tensor`, `arith`, `math`, `scf`,
    `func`).

    All operations are pure functions on tensors. Caches are updated
    functionally: an attention op returns the new cache as a result, which
    bufferization turns into an in-place update.

    Shapes use these letters throughout: `B` batch, `S` new tokens per
    sequence, `L` cache capacity in tokens, `T` tokens (`B*S` flattened), `H`
    hidden size, `E` routed experts, `k` experts per token, `I` expert
    intermediate size.
  }];
  let useDefaultAttributePrinterParser = 1;
  let hasConstantMaterializer = 0;
}

class MoE_Op<string mnemonic, list<Trait> traits = []>
    : Op<MoE_Dialect, mnemonic, traits>;

class MoE_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<MoE_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

#endif // MOE_DIALECT_MOE_IR_MOEBASE_TD
