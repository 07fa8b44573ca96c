//===- MoEOps.td - moe dialect operations ------------------*- tablegen -*-===//
//
// Operations of the `moe` dialect. Every op is a pure function on tensors;
// verifiers name the operand or attribute at fault.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEOPS_TD
#define MOE_DIALECT_MOE_IR_MOEOPS_TD

include "moe/Dialect/MoE/IR/MoEBase.td"
include "moe/Dialect/MoE/IR/MoEAttrs.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/IR/OpAsmInterface.td"

def MoE_FloatTensor : RankedTensorOf<[AnyFloat]>;
def MoE_F32Tensor : RankedTensorOf<[F32]>;
def MoE_I32Tensor : RankedTensorOf<[I32]>;
def MoE_IndexTensor : RankedTensorOf<[I32, I64]>;

//===----------------------------------------------------------------------===//
// moe.weight
//===----------------------------------------------------------------------===//

def MoE_WeightOp : MoE_Op<"weight", [Pure,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "reference to an external weight tensor by name";
  let description = [{
    Names a tensor stored outside the IR (a safetensors entry, an ONNX
    initializer) so that weights are never inlined as IR constants. The name
    is the tensor's name in the checkpoint; the result type is its shape and
    the element type the program computes with. Two references to one name
    must agree on the type (`-moe-check-weights` enforces it module-wide).

    Example:

    ```mlir
    %w = moe.weight "model.layers.0.mlp.gate.weight" : tensor<16x64xbf16>
    ```
  }];
  let arguments = (ins StrAttr:$name);
  let results = (outs AnyStaticShapeTensor:$result);
  let assemblyFormat = "$name attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def MoE_StackedWeightOp : MoE_Op<"stacked_weight", [Pure,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmResultNames"]>]> {
  let summary = "external weights stacked along a new leading dimension";
  let description = [{
    References several tensors stored outside the IR, all of one shape, as
    one tensor whose leading dimension indexes them: the per-expert 2-D
    tensors of a checkpoint (`...experts.{e}.gate_proj.weight`) become the
    `[E, I, H]` operand of `moe.experts` without copying anything into the
    IR. Entry `i` of the result is the tensor named `names[i]`; every name
    refers to a tensor of the result type without its leading dimension.

    Example:

    ```mlir
    %g = moe.stacked_weight ["model.layers.1.mlp.experts.0.gate_proj.weight",
                             "model.layers.1.mlp.experts.1.gate_proj.weight"]
        : tensor<2x32x64xbf16>
    ```
  }];
  let arguments = (ins StrArrayAttr:$names);
  let results = (outs AnyStaticShapeTensor:$result);
  let assemblyFormat = "$names attr-dict `:` type($result)";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The type of each stacked tensor (the result without dim 0).
    ::mlir::RankedTensorType getElementTensorType();
  }];
}

//===----------------------------------------------------------------------===//
// moe.embedding
//===----------------------------------------------------------------------===//

def MoE_EmbeddingOp : MoE_Op<"embedding", [Pure]> {
  let summary = "token embedding lookup";
  let description = [{
    Gathers rows of the embedding table `[vocab, H]` for every token id.
    The result has the shape of `ids` followed by `H` and the table's
    element type. An id outside `[0, vocab)` is a run-time error reported by
    the runtime, never a read out of bounds.

    Example:

    ```mlir
    %h = moe.embedding %table[%ids]
        : tensor<256x64xf32>, tensor<1x8xi32> -> tensor<1x8x64xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$table, MoE_IndexTensor:$ids);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $table `[` $ids `]` attr-dict `:` type($table) `,` type($ids) `->`
    type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// moe.rms_norm
//===----------------------------------------------------------------------===//

def MoE_RMSNormOp : MoE_Op<"rms_norm", [Pure,
    AllTypesMatch<["input", "result"]>]> {
  let summary = "RMS normalisation over the innermost dimension";
  let description = [{
    `result = cast(x * rsqrt(mean(x^2) + epsilon)) * weight`, reduced over
    the innermost dimension. The mean and the normalisation are computed in
    f32 and cast back to the input's element type before the multiply by
    `weight`, as DeepSeek, Qwen, Mixtral and Llama do; with
    `weight_in_f32`, the multiply by `weight` also happens in f32 and the
    product is cast (GPT-OSS). `weight` has the size of the innermost
    dimension.

    Example:

    ```mlir
    %y = moe.rms_norm %x, %w eps(1.000000e-06)
        : tensor<8x64xbf16>, tensor<64xbf16>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$input, MoE_FloatTensor:$weight,
                       F32Attr:$epsilon, UnitAttr:$weight_in_f32);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight `eps` `(` $epsilon `)` attr-dict `:` type($input) `,`
    type($weight)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// moe.linear
//===----------------------------------------------------------------------===//

def MoE_LinearOp : MoE_Op<"linear", [Pure, AttrSizedOperandSegments]> {
  let summary = "projection with optional RMSNorm prologue and residual epilogue";
  let description = [{
    A dense projection `[T, K] x [N, K]^T -> [T, N]` in the checkpoints'
    `[out, in]` weight convention, with what surrounds it in a decoder
    fused in:

    ```
    x'     = norm(...) ? rms_norm(input, norm_weight, norm_eps) : input
    acc    = x' * weight^T (+ bias)          // f32
    result = cast(acc) (+ residual)          // result element type
    ```

    The prologue computes exactly `moe.rms_norm` (f32 statistics, the
    product cast to the input's type before the multiply by the weight,
    or in f32 with `norm_weight_in_f32`), so the normalised activations
    need not be written out. The residual add happens in the result type,
    after the cast, as a separate `arith.addf` would. The importer emits
    plain projections; `-moe-fuse-norm-rope-residual` folds the norm and
    the residual in.

    Example (a query projection reading the attention norm, and an output
    projection adding the residual):

    ```mlir
    %q = moe.linear %h, %wq norm(%attn_norm) {norm_eps = 1.0e-06 : f32}
        : (tensor<?x64xbf16>, tensor<64x64xbf16>, tensor<64xbf16>)
        -> tensor<?x64xbf16>
    %h2 = moe.linear %a, %wo residual(%h)
        : (tensor<?x64xbf16>, tensor<64x64xbf16>, tensor<?x64xbf16>)
        -> tensor<?x64xbf16>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$input, MoE_FloatTensor:$weight,
                       Optional<MoE_FloatTensor>:$bias,
                       Optional<MoE_FloatTensor>:$norm_weight,
                       Optional<MoE_FloatTensor>:$residual,
                       OptionalAttr<F32Attr>:$norm_eps,
                       UnitAttr:$norm_weight_in_f32);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`bias` `(` $bias^ `)`)? (`norm` `(` $norm_weight^ `)`)?
    (`residual` `(` $residual^ `)`)? attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// moe.rope
//===----------------------------------------------------------------------===//

def MoE_RopeOp : MoE_Op<"rope", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "rotary position embedding";
  let description = [{
    Rotates the first `rotary_dim` elements (all of them by default) of
    every head of `input` `[B, S, heads, D]` by the angle
    `position * inv_freq[i]`, where `positions` `[B, S]` gives each token's
    absolute position and `rope` the frequency table (including linear and
    YaRN scaling). `style` chooses the pairs rotated together:

    - `half_split`: `(x[i], x[i + d/2])`, the Llama/Qwen/Mixtral convention;
    - `interleaved`: `(x[2i], x[2i + 1])`, DeepSeek's convention.

    Elements past `rotary_dim` pass through unchanged. Angles are computed
    in f32.

    Example:

    ```mlir
    %q = moe.rope %x, %pos style = <interleaved>
        rope = <theta = 1.000000e+04> : tensor<1x8x4x64xf32>, tensor<1x8xi32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor:$input, MoE_IndexTensor:$positions,
                       MoE_RopeStyleAttr:$style, MoE_RopeAttr:$rope,
                       OptionalAttr<I64Attr>:$rotary_dim);
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $positions `style` `=` $style `rope` `=` $rope attr-dict `:`
    type($input) `,` type($positions)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The number of leading elements of each head that are rotated.
    int64_t getRotatedDim();
  }];
}

//===----------------------------------------------------------------------===//
// moe.route
//===----------------------------------------------------------------------===//

// The router's operands and attributes, shared by moe.route and
// moe.fused_route.
defvar MoE_RouteArgs = (ins
    MoE_FloatTensor:$hidden,
    MoE_FloatTensor:$gate_weight,
    Optional<MoE_F32Tensor>:$selection_bias,
    Optional<MoE_F32Tensor>:$logit_bias,
    I64Attr:$top_k,
    MoE_ScoreFuncAttr:$score,
    DefaultValuedAttr<MoE_RouteOrderAttr,
        "::mlir::moe::RouteOrder::ScoreThenTopK">:$order,
    DefaultValuedAttr<I64Attr, "1">:$n_group,
    DefaultValuedAttr<I64Attr, "1">:$topk_group,
    DefaultValuedAttr<MoE_GroupScoreAttr,
        "::mlir::moe::GroupScore::Max">:$group_score,
    DefaultValuedAttr<MoE_RenormAttr, "::mlir::moe::Renorm::None">:$renorm,
    DefaultValuedAttr<F32Attr, "0.0f">:$renorm_eps,
    DefaultValuedAttr<F32Attr, "1.0f">:$scaling_factor,
    UnitAttr:$round_logits
);

def MoE_RouteOp : MoE_Op<"route", [Pure, AttrSizedOperandSegments]> {
  let summary = "token-to-expert routing";
  let description = [{
    Chooses `top_k` of the `E` routed experts for each of the `T` tokens and
    their combine weights. One op covers every router in use:

    1. `logits = hidden * gate_weight^T (+ logit_bias)` `[T, E]`, always
       computed in f32 whatever the operand element types. `logit_bias`
       (GPT-OSS's router bias) is part of the logits, so it enters both the
       selection and the weights. With `round_logits`, the logits are then
       rounded to `hidden`'s element type, as routers that project in the
       model's dtype do (transformers' Mixtral, Qwen-MoE and OLMoE, and
       graphs whose router MatMul is bf16 or f16); everything after stays
       f32. The rounding matters: bf16 logits tie often, and ties decide
       which experts run.
    2. With `order = score_then_topk` (the default): `scores = score(logits)`
       (`softmax`, `sigmoid` or `none`). With `order = topk_then_softmax`
       (GPT-OSS, Granite): `score` must be `none`; the top-k is taken on the
       logits and the softmax is applied over the `k` selected values.
    3. Selection uses `scores + selection_bias` when the bias is present
       (DeepSeek-V3's `e_score_correction_bias`, f32); the bias never enters
       the weights, which are taken from the unbiased scores.
    4. Group-limited selection when `n_group > 1`: the experts are split into
       `n_group` contiguous groups, each group scored by its `max` or by the
       sum of its two best (`top2_sum`) selection scores; only the best
       `topk_group` groups stay eligible and the others' scores become
       `-inf`.
    5. `renorm = sum` divides the k weights by their sum plus `renorm_eps`.
    6. The weights are multiplied by `scaling_factor`.

    Ties are broken towards the lower expert id. Results: `expert_ids`
    `[T, k]` i32 and `expert_weights` `[T, k]` f32.

    Example (DeepSeek-V3; GPT-OSS would instead pass `logit_bias(%b)` with
    `score = #moe.score<none>, order = #moe.order<topk_then_softmax>`):

    ```mlir
    %ids, %w = moe.route %x, %gate bias(%b) {top_k = 8 : i64,
        score = #moe.score<sigmoid>, n_group = 8 : i64, topk_group = 4 : i64,
        group_score = #moe.group_score<top2_sum>, renorm = #moe.renorm<sum>,
        renorm_eps = 9.99999968E-21 : f32, scaling_factor = 2.500000e+00 : f32}
        : (tensor<?x7168xbf16>, tensor<256x7168xbf16>, tensor<256xf32>)
        -> (tensor<?x8xi32>, tensor<?x8xf32>)
    ```
  }];
  let arguments = MoE_RouteArgs;
  let results = (outs MoE_I32Tensor:$expert_ids,
                      MoE_F32Tensor:$expert_weights);
  let assemblyFormat = [{
    $hidden `,` $gate_weight (`bias` `(` $selection_bias^ `)`)?
    (`logit_bias` `(` $logit_bias^ `)`)? attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
  let extraClassDeclaration = [{
    /// The number of routed experts E (the gate weight's static dim 0).
    int64_t getNumExperts();
  }];
}

//===----------------------------------------------------------------------===//
// moe.experts
//===----------------------------------------------------------------------===//

// The expert FFN weights and activation, shared by moe.experts and
// moe.grouped_experts (which adds the routing permutation).
defvar MoE_ExpertWeightArgs = (ins
    MoE_FloatTensor:$gate_weight,
    MoE_FloatTensor:$up_weight,
    MoE_FloatTensor:$down_weight,
    Optional<MoE_FloatTensor>:$gate_bias,
    Optional<MoE_FloatTensor>:$up_bias,
    Optional<MoE_FloatTensor>:$down_bias,
    Optional<MoE_FloatTensor>:$shared_gate_weight,
    Optional<MoE_FloatTensor>:$shared_up_weight,
    Optional<MoE_FloatTensor>:$shared_down_weight,
    Optional<MoE_FloatTensor>:$shared_expert_gate,
    DefaultValuedAttr<MoE_ActivationAttr,
        "::mlir::moe::Activation::SwiGLU">:$activation,
    DefaultValuedAttr<F32Attr, "1.702f">:$alpha,
    DefaultValuedAttr<F32Attr, "7.0f">:$limit,
    DefaultValuedAttr<F32Attr, "1.0f">:$beta
);
defvar MoE_ExpertsArgs = !con((ins
    MoE_FloatTensor:$hidden,
    MoE_I32Tensor:$expert_ids,
    MoE_F32Tensor:$expert_weights), MoE_ExpertWeightArgs);

def MoE_ExpertsOp : MoE_Op<"experts", [Pure, AttrSizedOperandSegments,
    AllTypesMatch<["hidden", "result"]>]> {
  let summary = "routed expert FFNs with combine, plus optional shared expert";
  let description = [{
    The grouped expert FFN of an MoE layer. For token `t` with routed
    experts `expert_ids[t, j]` and weights `expert_weights[t, j]`:

    ```
    ffn_e(x)  = down_weight[e] * act(gate_weight[e] * x, up_weight[e] * x)
    result[t] = sum_j expert_weights[t, j] * ffn_{expert_ids[t, j]}(hidden[t])
                + shared(hidden[t])
    ```

    Expert weights are `[E, I, H]` (gate, up) and `[E, H, I]` (down), in
    the checkpoints' `[out, in]` convention. `act` is

    - `swiglu`: `silu(g) * u`;
    - `swiglu_clamped` (GPT-OSS): `g' = min(g, limit)`,
      `u' = clamp(u, -limit, limit)`,
      `(u' + beta) * g' * sigmoid(alpha * g')`.

    `alpha`, `limit` and `beta` are only meaningful for `swiglu_clamped`.
    Optional expert biases (`biases(gate, up, down)`, `[E, I]`, `[E, I]`,
    `[E, H]`, GPT-OSS) are added to the three projections.
    The optional shared expert (`shared(...)`, weights `[Is, H]`, `[Is, H]`,
    `[H, Is]`) is a SwiGLU FFN applied to every token; DeepSeek adds it
    ungated, Qwen2-MoE multiplies it by `sigmoid(shared_gate * x)` with the
    `[1, H]` `shared_gate(...)` weight. Accumulation is in f32; the result
    has the hidden states' type. An id outside `[0, E)` is a run-time error.

    Example (Qwen2-MoE):

    ```mlir
    %y = moe.experts %x, %ids, %w experts(%g, %u, %d)
        shared(%sg, %su, %sd) shared_gate(%sgate)
        : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>,
           tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>,
           tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>,
           tensor<1x64xf32>) -> tensor<?x64xf32>
    ```
  }];
  let arguments = MoE_ExpertsArgs;
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $hidden `,` $expert_ids `,` $expert_weights
    `experts` `(` $gate_weight `,` $up_weight `,` $down_weight `)`
    (`biases` `(` $gate_bias^ `,` $up_bias `,` $down_bias `)`)?
    (`shared` `(` $shared_gate_weight^ `,` $shared_up_weight `,`
        $shared_down_weight `)`)?
    (`shared_gate` `(` $shared_expert_gate^ `)`)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// True when a shared expert is present.
    bool hasSharedExpert() { return getSharedGateWeight() != nullptr; }
  }];
}

//===----------------------------------------------------------------------===//
// moe.fused_route, moe.grouped_experts: the kernel-level MoE ops
//===----------------------------------------------------------------------===//

def MoE_FusedRouteOp : MoE_Op<"fused_route", [Pure, AttrSizedOperandSegments]> {
  let summary = "routing as one kernel, with the expert-sorted permutation";
  let description = [{
    Computes exactly what `moe.route` computes (same operands, attributes
    and `expert_ids`/`expert_weights`), in one kernel that also groups the
    `T * k` routed (token, slot) pairs by expert, so that the expert GEMMs
    can run over contiguous rows with no host round-trip:

    - `expert_offsets` `[E + 1]` i32: expert `e`'s rows are
      `sorted_slots[expert_offsets[e] : expert_offsets[e + 1]]`; each
      segment's length is rounded up to a multiple of `tile`, so every
      segment starts on a tile boundary.
    - `sorted_slots` `[T * k + E * (tile - 1)]` i32: the slot `t * k + j`
      of each pair routed to the expert, in increasing order, then `-1` for
      the padding of the segment; entries past `expert_offsets[E]` are `-1`.

    The size of `sorted_slots` is a function of `T` alone, so the kernel
    needs no dynamic allocation. `-moe-fuse-routing` creates this op from
    `moe.route`; it is not meant to be written by hand.

    Example:

    ```mlir
    %ids, %w, %off, %slots = moe.fused_route %x, %gate bias(%b)
        {top_k = 2 : i64, score = #moe.score<sigmoid>, tile = 4 : i64}
        : (tensor<?x64xf32>, tensor<8x64xf32>, tensor<8xf32>)
        -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>, tensor<?xi32>)
    ```
  }];
  let arguments = !con(MoE_RouteArgs, (ins
      DefaultValuedAttr<I64Attr, "16">:$tile));
  let results = (outs MoE_I32Tensor:$expert_ids,
                      MoE_F32Tensor:$expert_weights,
                      MoE_I32Tensor:$expert_offsets,
                      MoE_I32Tensor:$sorted_slots);
  let assemblyFormat = [{
    $hidden `,` $gate_weight (`bias` `(` $selection_bias^ `)`)?
    (`logit_bias` `(` $logit_bias^ `)`)? attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The number of routed experts E (the gate weight's static dim 0).
    int64_t getNumExperts();
  }];
}

def MoE_GroupedExpertsOp : MoE_Op<"grouped_experts", [Pure,
    AttrSizedOperandSegments, AllTypesMatch<["hidden", "result"]>]> {
  let summary = "expert FFNs as fused grouped GEMMs over a routing permutation";
  let description = [{
    Computes exactly what `moe.experts` computes, organised as the kernels
    that run it:

    - *Grouped GEMM* (more than `gemv_max_tokens` tokens): for each expert,
      the rows `sorted_slots[expert_offsets[e] : expert_offsets[e + 1]]`
      (from `moe.fused_route`; `-1` entries are padding) are processed
      `tile` at a time. One GEMM computes the gate and up projections
      together with the activation in its epilogue, so each weight element
      is read once per tile; the down projection's epilogue scales each row
      by its routing weight and adds it into the token's output row. The
      shared expert is one more group over all tokens in the same loop,
      always selected, with weight one or `sigmoid(shared_gate * x)`.
    - *Gather GEMV* (at most `gemv_max_tokens` tokens, i.e. decode): each
      token reads the weights of its `k` experts directly; no permutation
      is read.

    The choice is made at run time on `T`, so one function serves prefill
    and decode. Offsets and slots outside the permutation's bounds (a
    malformed permutation) are clamped or skipped, never read through. Operands after the permutation are those of `moe.experts`.
    `-moe-fuse-experts` creates this op; it is not meant to be written by
    hand.

    Example:

    ```mlir
    %y = moe.grouped_experts %x, %ids, %w permutation(%off, %slots)
        experts(%g, %u, %d) {tile = 4 : i64, gemv_max_tokens = 4 : i64}
        : (tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>,
           tensor<?xi32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>,
           tensor<8x64x32xf32>) -> tensor<?x64xf32>
    ```
  }];
  let arguments = !con((ins
      MoE_FloatTensor:$hidden,
      MoE_I32Tensor:$expert_ids,
      MoE_F32Tensor:$expert_weights,
      MoE_I32Tensor:$expert_offsets,
      MoE_I32Tensor:$sorted_slots), MoE_ExpertWeightArgs, (ins
      DefaultValuedAttr<I64Attr, "16">:$tile,
      DefaultValuedAttr<I64Attr, "4">:$gemv_max_tokens));
  let results = (outs MoE_FloatTensor:$result);
  let assemblyFormat = [{
    $hidden `,` $expert_ids `,` $expert_weights
    `permutation` `(` $expert_offsets `,` $sorted_slots `)`
    `experts` `(` $gate_weight `,` $up_weight `,` $down_weight `)`
    (`biases` `(` $gate_bias^ `,` $up_bias `,` $down_bias `)`)?
    (`shared` `(` $shared_gate_weight^ `,` $shared_up_weight `,`
        $shared_down_weight `)`)?
    (`shared_gate` `(` $shared_expert_gate^ `)`)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// moe.attention
//===----------------------------------------------------------------------===//

def MoE_AttentionOp : MoE_Op<"attention", [Pure, AttrSizedOperandSegments,
    AllTypesMatch<["key_cache", "new_key_cache"]>,
    AllTypesMatch<["value_cache", "new_value_cache"]>]> {
  let summary = "causal grouped-query attention over a KV cache";
  let description = [{
    Appends the new keys and values of each sequence to its cache and
    attends over everything cached so far. Sequence `b` already holds
    `cache_position[b]` tokens; its `S` new tokens are written to cache rows
    `[p, p + S)` and token `s` (absolute position `p + s`) attends to rows
    `j <= p + s`, and with `sliding_window = W > 0` only to `j > p + s - W`.
    Query head `h` reads KV head `h / (Hq / Hkv)`.

    ```
    query [B, S, Hq, D]   key [B, S, Hkv, D]   value [B, S, Hkv, Dv]
    key_cache [B, L, Hkv, D]   value_cache [B, L, Hkv, Dv]   cache_position [B]
    result [B, S, Hq, Dv]
    ```

    `scale` multiplies the logits; the softmax runs in f32. With `sinks`
    `[Hq]` (GPT-OSS), head `h`'s softmax has one more logit, `sinks[h]`,
    whose probability is dropped. The updated caches are returned as
    results. Writing past `L` is a run-time error.

    With `rope(positions)` (`[B, S]`) and the `rope_style` and `rope`
    attributes, the query and the new keys are first rotated exactly as
    `moe.rope` with those operands would (over the whole head), as the
    kernel's prologue: the rotated query is never stored and the keys are
    rotated on their way into the cache. `-moe-fuse-norm-rope-residual`
    folds a preceding pair of `moe.rope` ops in.

    Example (prefill of 8 tokens, 4 query heads sharing 2 KV heads):

    ```mlir
    %o, %kc, %vc = moe.attention %q, %k, %v cache(%kc0, %vc0) at %p
        {scale = 1.250000e-01 : f32}
        : (tensor<1x8x4x64xf32>, tensor<1x8x2x64xf32>, tensor<1x8x2x64xf32>,
           tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1xi32>)
        -> (tensor<1x8x4x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>)
    ```
  }];
  let arguments = (ins
    MoE_FloatTensor:$query,
    MoE_FloatTensor:$key,
    MoE_FloatTensor:$value,
    MoE_FloatTensor:$key_cache,
    MoE_FloatTensor:$value_cache,
    MoE_I32Tensor:$cache_position,
    Optional<MoE_FloatTensor>:$sinks,
    Optional<MoE_IndexTensor>:$positions,
    F32Attr:$scale,
    DefaultValuedAttr<I64Attr, "0">:$sliding_window,
    OptionalAttr<MoE_RopeStyleAttr>:$rope_style,
    OptionalAttr<MoE_RopeAttr>:$rope
  );
  let results = (outs MoE_FloatTensor:$result,
                      MoE_FloatTensor:$new_key_cache,
                      MoE_FloatTensor:$new_value_cache);
  let assemblyFormat = [{
    $query `,` $key `,` $value `cache` `(` $key_cache `,` $value_cache `)`
    `at` $cache_position (`sinks` `(` $sinks^ `)`)?
    (`rope` `(` $positions^ `)`)? attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// moe.mla, moe.mla_absorbed
//===----------------------------------------------------------------------===//

class MoE_MLABase<string mnemonic, list<Trait> traits = []>
    : MoE_Op<mnemonic, !listconcat(traits, [Pure,
        AllTypesMatch<["cache", "new_cache"]>])> {
  code mlaCommonDescription = [{
    Operands shared by both forms (`N` heads, `R = kv_lora_rank`,
    `Dn = qk_nope_head_dim`, `Dr = qk_rope_head_dim`, `Dv = v_head_dim`):

    ```
    q_nope [B, S, N, Dn]   q_pe [B, S, N, Dr]       (q_pe already rotated)
    latent [B, S, R]       k_pe [B, S, Dr]          (kv_a_layernorm applied;
                                                      k_pe rotated, one head)
    cache  [B, L, R + Dr]  cache_position [B]       result [B, S, N, Dv]
    ```

    The latent cache holds `R + Dr` values per token: the normalised latent
    followed by the rotated shared key. The new tokens of sequence `b` are
    written to rows `[p, p + S)`, `p = cache_position[b]`, and attention is
    causal over rows `j <= p + s`. `scale` is the softmax scale
    `(Dn + Dr)^-0.5 * mscale^2`, where the YaRN `mscale =
    0.1 * mscale_all_dim * ln(factor) + 1` when YaRN scaling is active
    (see `moe::getMLASoftmaxScale`). The softmax runs in f32.

    With `rope(positions)` (`[B, S]`) and the `rope_style` and `rope`
    attributes, `q_pe` and `k_pe` arrive unrotated and are rotated exactly
    as `moe.rope` with those operands would (`k_pe` as one head), as the
    kernel's prologue: `k_pe` on its way into the cache, `q_pe` once per
    head. `-moe-fuse-norm-rope-residual` folds the `moe.rope` ops in.
  }];
}

def MoE_MLAOp : MoE_MLABase<"mla"> {
  let summary = "multi-head latent attention, naive (materialised) form";
  let description = [{
    DeepSeek-V2/V3 multi-head latent attention in the form the checkpoints
    describe: each cached latent is expanded by `kv_b_weight`
    `[N * (Dn + Dv), R]` into per-head `k_nope` `[Dn]` and `v` `[Dv]` (rows
    `[n*(Dn+Dv), n*(Dn+Dv)+Dn)` and the `Dv` rows after them), and each head
    attends with `k = concat(k_nope, k_pe)`. Cheapest for prefill.
  }] # mlaCommonDescription # [{

    Example (DeepSeek-V3 shapes, one decode step):

    ```mlir
    %o, %c = moe.mla %qn, %qp, %lat, %kp kv_b(%wkvb) cache(%c0) at %p
        {scale = 1.352300e-01 : f32}
        : (tensor<1x1x128x128xbf16>, tensor<1x1x128x64xbf16>,
           tensor<1x1x512xbf16>, tensor<1x1x64xbf16>, tensor<32768x512xbf16>,
           tensor<1x4096x576xbf16>, tensor<1xi32>)
        -> (tensor<1x1x128x128xbf16>, tensor<1x4096x576xbf16>)
    ```
  }];
  let arguments = (ins
    MoE_FloatTensor:$q_nope, MoE_FloatTensor:$q_pe,
    MoE_FloatTensor:$latent, MoE_FloatTensor:$k_pe,
    MoE_FloatTensor:$kv_b_weight,
    MoE_FloatTensor:$cache, MoE_I32Tensor:$cache_position,
    Optional<MoE_IndexTensor>:$positions, F32Attr:$scale,
    OptionalAttr<MoE_RopeStyleAttr>:$rope_style,
    OptionalAttr<MoE_RopeAttr>:$rope);
  let results = (outs MoE_FloatTensor:$result, MoE_FloatTensor:$new_cache);
  let assemblyFormat = [{
    $q_nope `,` $q_pe `,` $latent `,` $k_pe `kv_b` `(` $kv_b_weight `)`
    `cache` `(` $cache `)` `at` $cache_position
    (`rope` `(` $positions^ `)`)? attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def MoE_MLAAbsorbedOp : MoE_MLABase<"mla_absorbed"> {
  let summary = "multi-head latent attention, weight-absorbed decode form";
  let description = [{
    The same attention as `moe.mla` computed without expanding the cache:
    `W_UK` `[N, Dn, R]` is folded into the query
    (`q_lat[n] = q_nope[n] * W_UK[n]`, `[R]`), the scores are
    `(q_lat . latent_j + q_pe . k_pe_j) * scale`, the probabilities average
    the latents (`o_lat[n]`, `[R]`) and `W_UV` `[N, Dv, R]` maps them back:
    `result[n] = W_UV[n] * o_lat[n]`. This is multi-query attention with
    head dim `R + Dr` for keys and `R` for values over the latent cache, the
    cheap form for decode. It equals `moe.mla` when `W_UK[n]` and `W_UV[n]`
    are head `n`'s `k_nope` and `v` row blocks of `kv_b_weight`.
  }] # mlaCommonDescription # [{

    Example:

    ```mlir
    %o, %c = moe.mla_absorbed %qn, %qp, %lat, %kp w_uk(%uk) w_uv(%uv)
        cache(%c0) at %p {scale = 1.352300e-01 : f32}
        : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>,
           tensor<1x1x16xf32>, tensor<16x32x64xf32>, tensor<16x32x64xf32>,
           tensor<1x128x80xf32>, tensor<1xi32>)
        -> (tensor<1x1x16x32xf32>, tensor<1x128x80xf32>)
    ```
  }];
  let arguments = (ins
    MoE_FloatTensor:$q_nope, MoE_FloatTensor:$q_pe,
    MoE_FloatTensor:$latent, MoE_FloatTensor:$k_pe,
    MoE_FloatTensor:$w_uk, MoE_FloatTensor:$w_uv,
    MoE_FloatTensor:$cache, MoE_I32Tensor:$cache_position,
    Optional<MoE_IndexTensor>:$positions, F32Attr:$scale,
    OptionalAttr<MoE_RopeStyleAttr>:$rope_style,
    OptionalAttr<MoE_RopeAttr>:$rope);
  let results = (outs MoE_FloatTensor:$result, MoE_FloatTensor:$new_cache);
  let assemblyFormat = [{
    $q_nope `,` $q_pe `,` $latent `,` $k_pe `w_uk` `(` $w_uk `)`
    `w_uv` `(` $w_uv `)` `cache` `(` $cache `)` `at` $cache_position
    (`rope` `(` $positions^ `)`)? attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

#endif // MOE_DIALECT_MOE_IR_MOEOPS_TD
