//===- MoEAttrs.td - moe dialect attributes and enums ------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOE_IR_MOEATTRS_TD
#define MOE_DIALECT_MOE_IR_MOEATTRS_TD

include "moe/Dialect/MoE/IR/MoEBase.td"
include "mlir/IR/EnumAttr.td"

//===----------------------------------------------------------------------===//
// Routing enums
//===----------------------------------------------------------------------===//

def MoE_ScoreFunc : I32EnumAttr<"ScoreFunc", "router scoring function", [
    I32EnumAttrCase<"Softmax", 0, "softmax">,
    I32EnumAttrCase<"Sigmoid", 1, "sigmoid">,
    I32EnumAttrCase<"None", 2, "none">]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def MoE_ScoreFuncAttr : EnumAttr<MoE_Dialect, MoE_ScoreFunc, "score"> {
  let assemblyFormat = "`<` $value `>`";
}

def MoE_RouteOrder : I32EnumAttr<"RouteOrder",
    "whether scores are taken before or after the top-k selection", [
    I32EnumAttrCase<"ScoreThenTopK", 0, "score_then_topk">,
    I32EnumAttrCase<"TopKThenSoftmax", 1, "topk_then_softmax">]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def MoE_RouteOrderAttr : EnumAttr<MoE_Dialect, MoE_RouteOrder, "order"> {
  let assemblyFormat = "`<` $value `>`";
}

def MoE_GroupScore : I32EnumAttr<"GroupScore",
    "how an expert group is scored for group-limited selection", [
    I32EnumAttrCase<"Max", 0, "max">,
    I32EnumAttrCase<"Top2Sum", 1, "top2_sum">]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def MoE_GroupScoreAttr : EnumAttr<MoE_Dialect, MoE_GroupScore, "group_score"> {
  let assemblyFormat = "`<` $value `>`";
}

def MoE_Renorm : I32EnumAttr<"Renorm",
    "renormalisation of the k selected routing weights", [
    I32EnumAttrCase<"None", 0, "none">,
    I32EnumAttrCase<"Sum", 1, "sum">]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def MoE_RenormAttr : EnumAttr<MoE_Dialect, MoE_Renorm, "renorm"> {
  let assemblyFormat = "`<` $value `>`";
}

//===----------------------------------------------------------------------===//
// Expert enums
//===----------------------------------------------------------------------===//

def MoE_Activation : I32EnumAttr<"Activation", "expert gated activation", [
    I32EnumAttrCase<"SwiGLU", 0, "swiglu">,
    I32EnumAttrCase<"SwiGLUClamped", 1, "swiglu_clamped">]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def MoE_ActivationAttr : EnumAttr<MoE_Dialect, MoE_Activation, "act"> {
  let assemblyFormat = "`<` $value `>`";
}

//===----------------------------------------------------------------------===//
// RoPE
//===----------------------------------------------------------------------===//

def MoE_RopeStyle : I32EnumAttr<"RopeStyle",
    "which elements of a head are rotated together", [
    I32EnumAttrCase<"HalfSplit", 0, "half_split">,
    I32EnumAttrCase<"Interleaved", 1, "interleaved">]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}
def MoE_RopeStyleAttr : EnumAttr<MoE_Dialect, MoE_RopeStyle, "rope_style"> {
  let assemblyFormat = "`<` $value `>`";
}

def MoE_RopeScaling : I32EnumAttr<"RopeScaling", "RoPE frequency scaling", [
    I32EnumAttrCase<"Default", 0, "default">,
    I32EnumAttrCase<"Linear", 1, "linear">,
    I32EnumAttrCase<"Yarn", 2, "yarn">,
    I32EnumAttrCase<"Llama3", 3, "llama3">]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

// An f64 parameter written as an MLIR float literal; elided at its default.
class MoE_BoolParameter<string default, string desc>
    : DefaultValuedParameter<"bool", default, desc> {
  let parser = "::mlir::moe::detail::parseBoolParam($_parser)";
  let printer = "$_printer << ($_self ? \"true\" : \"false\")";
}

class MoE_F64Parameter<string default, string desc>
    : APFloatParameter<desc> {
  let defaultValue = "::llvm::APFloat(" # default # ")";
  let parser = "::mlir::moe::detail::parseF64Param($_parser)";
  let printer = "$_printer.printFloat($_self)";
}

def MoE_RopeAttr : MoE_Attr<"Rope", "rope"> {
  let summary = "rotary position embedding frequencies";
  let description = [{
    The frequency table of a rotary position embedding: the base `theta`
    and, for `linear` and `yarn` scaling, the Hugging Face `rope_scaling`
    (transformers v4) or `rope_parameters` (v5) fields. Parameters left at
    their default are not printed.

    - `default`: `inv_freq[i] = theta^(-2i/d)`.
    - `linear`: positions are divided by `factor`.
    - `llama3`: Llama 3.1's band scaling: wavelengths longer than
      `original_max_position / low_freq_factor` are divided by `factor`,
      shorter than `original_max_position / high_freq_factor` kept, and
      blended in between (the DeepSeek-R1 Llama distills use it).
    - `yarn`: frequencies blend between interpolated (`/factor`) and
      extrapolated ones over the correction range given by `beta_fast`,
      `beta_slow` and `original_max_position`; cos and sin are multiplied by
      the attention factor; `truncate = false` (GPT-OSS) keeps the
      correction range unrounded. `attention_factor = 0` means "derive it":
      `mscale(factor, mscale) / mscale(factor, mscale_all_dim)` when both
      are non-zero, else `0.1 * ln(factor) + 1`, as transformers does.

    Example (DeepSeek-V3):

    ```mlir
    #moe.rope<theta = 1.000000e+04, scaling = yarn, factor = 4.000000e+01,
              original_max_position = 4096, mscale = 1.000000e+00,
              mscale_all_dim = 1.000000e+00>
    ```
  }];
  let parameters = (ins
    MoE_F64Parameter<"10000.0", "frequency base">:$theta,
    DefaultValuedParameter<"::mlir::moe::RopeScaling",
        "::mlir::moe::RopeScaling::Default", "scaling kind">:$scaling,
    MoE_F64Parameter<"1.0", "context extension factor">:$factor,
    DefaultValuedParameter<"int64_t", "0",
        "pre-extension context length (yarn)">:$original_max_position,
    MoE_F64Parameter<"32.0", "yarn fast boundary">:$beta_fast,
    MoE_F64Parameter<"1.0", "yarn slow boundary">:$beta_slow,
    MoE_F64Parameter<"0.0", "yarn mscale">:$mscale,
    MoE_F64Parameter<"0.0", "yarn mscale_all_dim">:$mscale_all_dim,
    MoE_F64Parameter<"0.0",
        "yarn cos/sin factor; 0 derives it">:$attention_factor,
    MoE_BoolParameter<"true",
        "round the yarn correction range outwards">:$truncate,
    MoE_F64Parameter<"1.0", "llama3 low_freq_factor">:$low_freq_factor,
    MoE_F64Parameter<"4.0", "llama3 high_freq_factor">:$high_freq_factor
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The parameters as the plain C++ struct the RoPE helpers take.
    ::moe::RopeParams getParams() const;
  }];
}

#endif // MOE_DIALECT_MOE_IR_MOEATTRS_TD
