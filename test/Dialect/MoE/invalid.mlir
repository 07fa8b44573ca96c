// RUN: moe-opt %s -split-input-file -verify-diagnostics

//===----------------------------------------------------------------------===//
// moe.weight
//===----------------------------------------------------------------------===//

// The weight name must not be empty.
func.func @weight_empty_name() {
  // expected-error @+1 {{'moe.weight' op 'name' must not be empty}}
  %w = moe.weight "" : tensor<16x64xf32>
  return
}

// -----

// ODS: the result must be statically shaped.
func.func @weight_dynamic_shape() {
  // expected-error @+1 {{result #0 must be statically shaped tensor}}
  %w = moe.weight "model.embed_tokens.weight" : tensor<?x64xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.embedding
//===----------------------------------------------------------------------===//

// The table must be [V, H].
func.func @embedding_table_rank(%ids: tensor<1x8xi32>) {
  %tbl = moe.weight "model.embed_tokens.weight" : tensor<256xf32>
  // expected-error @+1 {{'table' must have rank 2 [V, H], got 'tensor<256xf32>'}}
  %h = moe.embedding %tbl[%ids] : tensor<256xf32>, tensor<1x8xi32> -> tensor<1x8x64xf32>
  return
}

// -----

// The result has one more dim than the ids.
func.func @embedding_result_rank(%ids: tensor<1x8xi32>) {
  %tbl = moe.weight "model.embed_tokens.weight" : tensor<256x64xf32>
  // expected-error @+1 {{'result' must have the rank of 'ids' plus one (3), got 2}}
  %h = moe.embedding %tbl[%ids] : tensor<256x64xf32>, tensor<1x8xi32> -> tensor<8x64xf32>
  return
}

// -----

// The leading result dims are the ids' dims.
func.func @embedding_result_ids_dim(%ids: tensor<1x8xi32>) {
  %tbl = moe.weight "model.embed_tokens.weight" : tensor<256x64xf32>
  // expected-error @+1 {{'result' dim 1 (d1) is 4, but 'ids' dim 1 gives d1 = 8}}
  %h = moe.embedding %tbl[%ids] : tensor<256x64xf32>, tensor<1x8xi32> -> tensor<1x4x64xf32>
  return
}

// -----

// The innermost result dim is the table's hidden size.
func.func @embedding_result_hidden(%ids: tensor<1x8xi32>) {
  %tbl = moe.weight "model.embed_tokens.weight" : tensor<256x64xf32>
  // expected-error @+1 {{'result' dim 2 (H) is 32, but 'table' dim 1 gives H = 64}}
  %h = moe.embedding %tbl[%ids] : tensor<256x64xf32>, tensor<1x8xi32> -> tensor<1x8x32xf32>
  return
}

// -----

// The result has the table's element type.
func.func @embedding_element_type(%ids: tensor<1x8xi32>) {
  %tbl = moe.weight "model.embed_tokens.weight" : tensor<256x64xf32>
  // expected-error @+1 {{'result' element type 'f16' must equal the element type of 'table' ('f32')}}
  %h = moe.embedding %tbl[%ids] : tensor<256x64xf32>, tensor<1x8xi32> -> tensor<1x8x64xf16>
  return
}

// -----

// ODS: ids must be i32 or i64.
func.func @embedding_float_ids(%ids: tensor<1x8xf32>) {
  %tbl = moe.weight "model.embed_tokens.weight" : tensor<256x64xf32>
  // expected-error @+1 {{operand #1 must be ranked tensor of 32-bit signless integer or 64-bit signless integer values}}
  %h = moe.embedding %tbl[%ids] : tensor<256x64xf32>, tensor<1x8xf32> -> tensor<1x8x64xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.rms_norm
//===----------------------------------------------------------------------===//

// The input needs an innermost dim to normalise over.
func.func @rms_norm_rank0(%x: tensor<f32>) {
  %w = moe.weight "n" : tensor<64xf32>
  // expected-error @+1 {{'moe.rms_norm' op 'input' must have rank >= 1}}
  %y = moe.rms_norm %x, %w eps(1.0e-6) : tensor<f32>, tensor<64xf32>
  return
}

// -----

// The weight is one-dimensional.
func.func @rms_norm_weight_rank(%x: tensor<8x64xf32>) {
  %w = moe.weight "n" : tensor<1x64xf32>
  // expected-error @+1 {{'weight' must have rank 1 [D], got 'tensor<1x64xf32>'}}
  %y = moe.rms_norm %x, %w eps(1.0e-6) : tensor<8x64xf32>, tensor<1x64xf32>
  return
}

// -----

// The weight has the size of the innermost input dim.
func.func @rms_norm_weight_size(%x: tensor<8x64xf32>) {
  %w = moe.weight "n" : tensor<32xf32>
  // expected-error @+1 {{'weight' dim 0 (D) is 32, but the innermost dim of 'input' gives D = 64}}
  %y = moe.rms_norm %x, %w eps(1.0e-6) : tensor<8x64xf32>, tensor<32xf32>
  return
}

// -----

// Epsilon must be non-negative and finite.
func.func @rms_norm_negative_epsilon(%x: tensor<8x64xf32>) {
  %w = moe.weight "n" : tensor<64xf32>
  // expected-error @+1 {{'epsilon' must be a non-negative finite number, got}}
  %y = moe.rms_norm %x, %w eps(-1.0e-6) : tensor<8x64xf32>, tensor<64xf32>
  return
}

// -----

func.func @rms_norm_nan_epsilon(%x: tensor<8x64xf32>) {
  %w = moe.weight "n" : tensor<64xf32>
  // expected-error @+1 {{'epsilon' must be a non-negative finite number, got}}
  %y = moe.rms_norm %x, %w eps(0x7FC00000) : tensor<8x64xf32>, tensor<64xf32>
  return
}

// -----

// AllTypesMatch: the result has the input's type.
func.func @rms_norm_result_type(%x: tensor<8x64xf32>) {
  %w = moe.weight "n" : tensor<64xf32>
  // expected-error @+1 {{failed to verify that all of {input, result} have same type}}
  %y = "moe.rms_norm"(%x, %w) <{epsilon = 1.0e-6 : f32}> : (tensor<8x64xf32>, tensor<64xf32>) -> tensor<8x64xf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.rope
//===----------------------------------------------------------------------===//

// The input is [B, S, heads, D].
func.func @rope_input_rank(%x: tensor<8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{'input' must have rank 4 [B, S, heads, D], got 'tensor<8x4x64xf32>'}}
  %r = "moe.rope"(%x, %pos) <{rope = #moe.rope<>, style = #moe.rope_style<half_split>}> : (tensor<8x4x64xf32>, tensor<1x8xi32>) -> tensor<8x4x64xf32>
  return
}

// -----

// The positions are [B, S].
func.func @rope_positions_rank(%x: tensor<1x8x4x64xf32>, %pos: tensor<8xi32>) {
  // expected-error @+1 {{'positions' must have rank 2 [B, S], got 'tensor<8xi32>'}}
  %r = moe.rope %x, %pos style = <half_split> rope = <> : tensor<1x8x4x64xf32>, tensor<8xi32>
  return
}

// -----

// The positions match the input's batch and sequence dims.
func.func @rope_positions_seq(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x4xi32>) {
  // expected-error @+1 {{'positions' dim 1 (S) is 4, but 'input' dim 1 gives S = 8}}
  %r = moe.rope %x, %pos style = <half_split> rope = <> : tensor<1x8x4x64xf32>, tensor<1x4xi32>
  return
}

// -----

func.func @rope_positions_batch(%x: tensor<1x8x4x64xf32>, %pos: tensor<2x8xi32>) {
  // expected-error @+1 {{'positions' dim 0 (B) is 2, but 'input' dim 0 gives B = 1}}
  %r = moe.rope %x, %pos style = <half_split> rope = <> : tensor<1x8x4x64xf32>, tensor<2x8xi32>
  return
}

// -----

// The head dim must be static.
func.func @rope_dynamic_head_dim(%x: tensor<1x8x4x?xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{'moe.rope' op 'input' head dim (dim 3) must be static}}
  %r = moe.rope %x, %pos style = <half_split> rope = <> : tensor<1x8x4x?xf32>, tensor<1x8xi32>
  return
}

// -----

// The rotated dim must be positive, even and at most the head dim.
func.func @rope_odd_head_dim(%x: tensor<1x8x4x63xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{'moe.rope' op rotated dim 63 must be positive, even and at most the head dim 63}}
  %r = moe.rope %x, %pos style = <half_split> rope = <> : tensor<1x8x4x63xf32>, tensor<1x8xi32>
  return
}

// -----

func.func @rope_empty_head_dim(%x: tensor<1x8x4x0xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{rotated dim 0 must be positive, even and at most the head dim 0}}
  %r = moe.rope %x, %pos style = <half_split> rope = <> : tensor<1x8x4x0xf32>, tensor<1x8xi32>
  return
}

// -----

func.func @rope_odd_rotary_dim(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{rotated dim 31 must be positive, even and at most the head dim 64 (set by 'rotary_dim')}}
  %r = moe.rope %x, %pos style = <half_split> rope = <> {rotary_dim = 31 : i64} : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

func.func @rope_zero_rotary_dim(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{rotated dim 0 must be positive, even and at most the head dim 64 (set by 'rotary_dim')}}
  %r = moe.rope %x, %pos style = <half_split> rope = <> {rotary_dim = 0 : i64} : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

func.func @rope_negative_rotary_dim(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{rotated dim -2 must be positive, even and at most the head dim 64 (set by 'rotary_dim')}}
  %r = moe.rope %x, %pos style = <half_split> rope = <> {rotary_dim = -2 : i64} : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

func.func @rope_large_rotary_dim(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{rotated dim 128 must be positive, even and at most the head dim 64 (set by 'rotary_dim')}}
  %r = moe.rope %x, %pos style = <half_split> rope = <> {rotary_dim = 128 : i64} : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

// ODS: positions are integers.
func.func @rope_float_positions(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xf32>) {
  // expected-error @+1 {{operand #1 must be ranked tensor of 32-bit signless integer or 64-bit signless integer values}}
  %r = moe.rope %x, %pos style = <half_split> rope = <> : tensor<1x8x4x64xf32>, tensor<1x8xf32>
  return
}

// -----

// AllTypesMatch: the result has the input's type.
func.func @rope_result_type(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{failed to verify that all of {input, result} have same type}}
  %r = "moe.rope"(%x, %pos) <{rope = #moe.rope<>, style = #moe.rope_style<half_split>}> : (tensor<1x8x4x64xf32>, tensor<1x8xi32>) -> tensor<1x8x4x64xbf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// #moe.rope parameters
//===----------------------------------------------------------------------===//

// theta must be a positive finite number.
func.func @rope_attr_zero_theta(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{#moe.rope: 'theta' must be a positive finite number}}
  %r = moe.rope %x, %pos style = <half_split> rope = <theta = 0.0> : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

func.func @rope_attr_negative_theta(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{#moe.rope: 'theta' must be a positive finite number}}
  %r = moe.rope %x, %pos style = <half_split> rope = <theta = -1.0e4> : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

func.func @rope_attr_infinite_theta(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{#moe.rope: 'theta' must be a positive finite number}}
  %r = moe.rope %x, %pos style = <half_split> rope = <theta = 0x7FF0000000000000> : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

// factor must be a positive finite number for linear and yarn scaling.
func.func @rope_attr_linear_zero_factor(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{#moe.rope: 'factor' must be a positive finite number}}
  %r = moe.rope %x, %pos style = <half_split> rope = <scaling = linear, factor = 0.0> : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

func.func @rope_attr_yarn_negative_factor(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{#moe.rope: 'factor' must be a positive finite number}}
  %r = moe.rope %x, %pos style = <half_split> rope = <scaling = yarn, factor = -4.0, original_max_position = 4096> : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

// yarn needs the pre-extension context length.
func.func @rope_attr_yarn_no_original_max(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{#moe.rope: 'original_max_position' must be positive for yarn scaling}}
  %r = moe.rope %x, %pos style = <half_split> rope = <scaling = yarn, factor = 40.0> : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

// yarn's beta_fast and beta_slow are positive, beta_fast > beta_slow.
func.func @rope_attr_yarn_zero_beta_slow(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{#moe.rope: 'beta_fast' and 'beta_slow' must be positive finite numbers}}
  %r = moe.rope %x, %pos style = <half_split> rope = <scaling = yarn, factor = 40.0, original_max_position = 4096, beta_slow = 0.0> : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

func.func @rope_attr_yarn_infinite_beta_fast(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{#moe.rope: 'beta_fast' and 'beta_slow' must be positive finite numbers}}
  %r = moe.rope %x, %pos style = <half_split> rope = <scaling = yarn, factor = 40.0, original_max_position = 4096, beta_fast = 0x7FF0000000000000> : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

func.func @rope_attr_yarn_beta_order(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{#moe.rope: 'beta_fast' must be greater than 'beta_slow'}}
  %r = moe.rope %x, %pos style = <half_split> rope = <scaling = yarn, factor = 40.0, original_max_position = 4096, beta_fast = 1.0, beta_slow = 32.0> : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

// yarn's mscale, mscale_all_dim and attention_factor are non-negative.
func.func @rope_attr_yarn_negative_mscale(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{#moe.rope: 'mscale', 'mscale_all_dim' and 'attention_factor' must be non-negative finite numbers}}
  %r = moe.rope %x, %pos style = <half_split> rope = <scaling = yarn, factor = 40.0, original_max_position = 4096, mscale = -1.0> : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

func.func @rope_attr_yarn_nan_mscale(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{#moe.rope: 'mscale', 'mscale_all_dim' and 'attention_factor' must be non-negative finite numbers}}
  %r = moe.rope %x, %pos style = <half_split> rope = <scaling = yarn, factor = 40.0, original_max_position = 4096, mscale = 0x7FF8000000000000> : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

func.func @rope_attr_yarn_negative_attention_factor(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{#moe.rope: 'mscale', 'mscale_all_dim' and 'attention_factor' must be non-negative finite numbers}}
  %r = moe.rope %x, %pos style = <half_split> rope = <scaling = yarn, factor = 40.0, original_max_position = 4096, attention_factor = -0.5> : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.route
//===----------------------------------------------------------------------===//

// hidden is [T, H].
func.func @route_hidden_rank(%x: tensor<1x8x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{'hidden' must have rank 2 [T, H], got 'tensor<1x8x64xf32>'}}
  %ids, %w = moe.route %x, %gw {top_k = 2 : i64, score = #moe.score<softmax>} : (tensor<1x8x64xf32>, tensor<16x64xf32>) -> (tensor<8x2xi32>, tensor<8x2xf32>)
  return
}

// -----

// gate_weight is [E, H].
func.func @route_gate_rank(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64x1xf32>
  // expected-error @+1 {{'gate_weight' must have rank 2 [E, H], got 'tensor<16x64x1xf32>'}}
  %ids, %w = moe.route %x, %gw {top_k = 2 : i64, score = #moe.score<softmax>} : (tensor<?x64xf32>, tensor<16x64x1xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

func.func @route_gate_hidden_size(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x32xf32>
  // expected-error @+1 {{'gate_weight' dim 1 (H) is 32, but 'hidden' dim 1 gives H = 64}}
  %ids, %w = moe.route %x, %gw {top_k = 2 : i64, score = #moe.score<softmax>} : (tensor<?x64xf32>, tensor<16x32xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

// The number of experts must be static.
func.func @route_dynamic_experts(%x: tensor<?x64xf32>, %gw: tensor<?x64xf32>) {
  // expected-error @+1 {{'moe.route' op 'gate_weight' must have a static number of experts (dim 0)}}
  %ids, %w = moe.route %x, %gw {top_k = 2 : i64, score = #moe.score<softmax>} : (tensor<?x64xf32>, tensor<?x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

// selection_bias is [E].
func.func @route_bias_rank(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  %b = moe.weight "bias" : tensor<1x16xf32>
  // expected-error @+1 {{'selection_bias' must have rank 1 [E], got 'tensor<1x16xf32>'}}
  %ids, %w = moe.route %x, %gw bias(%b) {top_k = 2 : i64, score = #moe.score<sigmoid>} : (tensor<?x64xf32>, tensor<16x64xf32>, tensor<1x16xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

func.func @route_bias_size(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  %b = moe.weight "bias" : tensor<8xf32>
  // expected-error @+1 {{'selection_bias' dim 0 (E) is 8, but 'gate_weight' dim 0 gives E = 16}}
  %ids, %w = moe.route %x, %gw bias(%b) {top_k = 2 : i64, score = #moe.score<sigmoid>} : (tensor<?x64xf32>, tensor<16x64xf32>, tensor<8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

// ODS: selection_bias is f32.
func.func @route_bias_f16(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  %b = moe.weight "bias" : tensor<16xf16>
  // expected-error @+1 {{operand #2 must be ranked tensor of 32-bit float values, but got 'tensor<16xf16>'}}
  %ids, %w = moe.route %x, %gw bias(%b) {top_k = 2 : i64, score = #moe.score<sigmoid>} : (tensor<?x64xf32>, tensor<16x64xf32>, tensor<16xf16>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

// ODS: expert_ids are i32 and expert_weights f32.
func.func @route_float_ids(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{result #0 must be ranked tensor of 32-bit signless integer values, but got 'tensor<?x2xf32>'}}
  %ids, %w = "moe.route"(%x, %gw) <{operandSegmentSizes = array<i32: 1, 1, 0, 0>, top_k = 2 : i64, score = #moe.score<softmax>}> : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x2xf32>, tensor<?x2xf32>)
  return
}

// -----

func.func @route_bf16_weights(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{result #1 must be ranked tensor of 32-bit float values, but got 'tensor<?x2xbf16>'}}
  %ids, %w = "moe.route"(%x, %gw) <{operandSegmentSizes = array<i32: 1, 1, 0, 0>, top_k = 2 : i64, score = #moe.score<softmax>}> : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xbf16>)
  return
}

// -----

// top_k is in [1, E].
func.func @route_zero_top_k(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{'moe.route' op 'top_k' (0) must be in [1, E = 16]}}
  %ids, %w = moe.route %x, %gw {top_k = 0 : i64, score = #moe.score<softmax>} : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x?xi32>, tensor<?x?xf32>)
  return
}

// -----

func.func @route_large_top_k(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{'moe.route' op 'top_k' (17) must be in [1, E = 16]}}
  %ids, %w = moe.route %x, %gw {top_k = 17 : i64, score = #moe.score<softmax>} : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x17xi32>, tensor<?x17xf32>)
  return
}

// -----

// The results are [T, k] with k = top_k.
func.func @route_ids_rank(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{'expert_ids' must have rank 2 [T, k], got 'tensor<?xi32>'}}
  %ids, %w = moe.route %x, %gw {top_k = 2 : i64, score = #moe.score<softmax>} : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?xi32>, tensor<?x2xf32>)
  return
}

// -----

func.func @route_ids_k(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{'expert_ids' dim 1 (k) is 4, but 'top_k' gives k = 8}}
  %ids, %w = moe.route %x, %gw {top_k = 8 : i64, score = #moe.score<softmax>} : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x4xi32>, tensor<?x8xf32>)
  return
}

// -----

func.func @route_weights_tokens(%x: tensor<8x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{'expert_weights' dim 0 (T) is 4, but 'hidden' dim 0 gives T = 8}}
  %ids, %w = moe.route %x, %gw {top_k = 2 : i64, score = #moe.score<softmax>} : (tensor<8x64xf32>, tensor<16x64xf32>) -> (tensor<8x2xi32>, tensor<4x2xf32>)
  return
}

// -----

// n_group is positive and divides E.
func.func @route_zero_n_group(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{'moe.route' op 'n_group' (0) must be positive}}
  %ids, %w = moe.route %x, %gw {top_k = 2 : i64, score = #moe.score<sigmoid>, n_group = 0 : i64} : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

func.func @route_n_group_divides(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{'moe.route' op 'n_group' (3) must divide the number of experts (16)}}
  %ids, %w = moe.route %x, %gw {top_k = 2 : i64, score = #moe.score<sigmoid>, n_group = 3 : i64, topk_group = 2 : i64} : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

// topk_group is in [1, n_group].
func.func @route_zero_topk_group(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{'moe.route' op 'topk_group' (0) must be in [1, n_group = 4]}}
  %ids, %w = moe.route %x, %gw {top_k = 2 : i64, score = #moe.score<sigmoid>, n_group = 4 : i64, topk_group = 0 : i64} : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

func.func @route_large_topk_group(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{'moe.route' op 'topk_group' (5) must be in [1, n_group = 4]}}
  %ids, %w = moe.route %x, %gw {top_k = 2 : i64, score = #moe.score<sigmoid>, n_group = 4 : i64, topk_group = 5 : i64} : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

// The kept groups must hold at least top_k experts.
func.func @route_top_k_exceeds_groups(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{'moe.route' op 'top_k' (8) exceeds the 4 experts of the 1 groups kept by 'topk_group'}}
  %ids, %w = moe.route %x, %gw {top_k = 8 : i64, score = #moe.score<sigmoid>, n_group = 4 : i64, topk_group = 1 : i64} : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x8xi32>, tensor<?x8xf32>)
  return
}

// -----

// group_score top2_sum needs groups of at least two experts.
func.func @route_top2_sum_singleton_groups(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{'moe.route' op 'group_score' top2_sum needs at least 2 experts per group, got 1}}
  %ids, %w = moe.route %x, %gw {top_k = 2 : i64, score = #moe.score<sigmoid>, n_group = 16 : i64, topk_group = 4 : i64, group_score = #moe.group_score<top2_sum>} : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

// order topk_then_softmax: score none, no groups, no selection bias.
func.func @route_topk_then_softmax_score(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{'moe.route' op 'order' topk_then_softmax selects on raw logits, so 'score' must be none}}
  %ids, %w = moe.route %x, %gw {top_k = 2 : i64, score = #moe.score<softmax>, order = #moe.order<topk_then_softmax>} : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

func.func @route_topk_then_softmax_groups(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{'moe.route' op 'order' topk_then_softmax does not support group-limited selection ('n_group' > 1)}}
  %ids, %w = moe.route %x, %gw {top_k = 2 : i64, score = #moe.score<none>, order = #moe.order<topk_then_softmax>, n_group = 2 : i64, topk_group = 1 : i64} : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

func.func @route_topk_then_softmax_bias(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  %b = moe.weight "bias" : tensor<16xf32>
  // expected-error @+1 {{'moe.route' op 'selection_bias' is not supported with 'order' topk_then_softmax}}
  %ids, %w = moe.route %x, %gw bias(%b) {top_k = 2 : i64, score = #moe.score<none>, order = #moe.order<topk_then_softmax>} : (tensor<?x64xf32>, tensor<16x64xf32>, tensor<16xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

// renorm_eps is non-negative and finite.
func.func @route_negative_renorm_eps(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{'moe.route' op 'renorm_eps' must be a non-negative finite number, got}}
  %ids, %w = moe.route %x, %gw {top_k = 2 : i64, score = #moe.score<softmax>, renorm = #moe.renorm<sum>, renorm_eps = -1.0e-20 : f32} : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

func.func @route_infinite_renorm_eps(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{'moe.route' op 'renorm_eps' must be a non-negative finite number, got}}
  %ids, %w = moe.route %x, %gw {top_k = 2 : i64, score = #moe.score<softmax>, renorm = #moe.renorm<sum>, renorm_eps = 0x7F800000 : f32} : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

// scaling_factor is positive and finite.
func.func @route_zero_scaling_factor(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{'moe.route' op 'scaling_factor' must be a positive finite number, got 0.000000e+00}}
  %ids, %w = moe.route %x, %gw {top_k = 2 : i64, score = #moe.score<softmax>, scaling_factor = 0.0 : f32} : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

func.func @route_nan_scaling_factor(%x: tensor<?x64xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{'moe.route' op 'scaling_factor' must be a positive finite number, got}}
  %ids, %w = moe.route %x, %gw {top_k = 2 : i64, score = #moe.score<softmax>, scaling_factor = 0x7FC00000 : f32} : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.experts
//===----------------------------------------------------------------------===//

// hidden is [T, H].
func.func @experts_hidden_rank(%x: tensor<?xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{'hidden' must have rank 2 [T, H], got 'tensor<?xf32>'}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) : (tensor<?xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?xf32>
  return
}

// -----

// expert_ids and expert_weights are [T, k].
func.func @experts_ids_tokens(%x: tensor<4x64xf32>, %ids: tensor<8x4xi32>, %w: tensor<8x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{'expert_ids' dim 0 (T) is 8, but 'hidden' dim 0 gives T = 4}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) : (tensor<4x64xf32>, tensor<8x4xi32>, tensor<8x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<4x64xf32>
  return
}

// -----

func.func @experts_weights_k(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x2xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{'expert_weights' dim 1 (k) is 2, but 'expert_ids' dim 1 gives k = 4}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x2xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @experts_weights_rank(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{'expert_weights' must have rank 2 [T, k], got 'tensor<?xf32>'}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

// ODS: expert_ids are i32.
func.func @experts_float_ids(%x: tensor<?x64xf32>, %ids: tensor<?x4xf32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{operand #1 must be ranked tensor of 32-bit signless integer values, but got 'tensor<?x4xf32>'}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) : (tensor<?x64xf32>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

// Expert weights are [E, I, H] (gate, up) and [E, H, I] (down).
func.func @experts_gate_rank(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<32x64xf32>
  %u = moe.weight "u" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{'gate_weight' must have rank 3 [E, I, H], got 'tensor<32x64xf32>'}}
  %y = moe.experts %x, %ids, %w experts(%g, %u, %d) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @experts_gate_hidden(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x64x32xf32>
  %u = moe.weight "u" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{'gate_weight' dim 2 (H) is 32, but 'hidden' dim 1 gives H = 64}}
  %y = moe.experts %x, %ids, %w experts(%g, %u, %d) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x64x32xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @experts_up_experts(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %u = moe.weight "u" : tensor<4x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{'up_weight' dim 0 (E) is 4, but 'gate_weight' dim 0 gives E = 8}}
  %y = moe.experts %x, %ids, %w experts(%g, %u, %d) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<4x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @experts_up_intermediate(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %u = moe.weight "u" : tensor<8x16x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{'up_weight' dim 1 (I) is 16, but 'gate_weight' dim 1 gives I = 32}}
  %y = moe.experts %x, %ids, %w experts(%g, %u, %d) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x16x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @experts_down_not_transposed(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  // expected-error @+1 {{'down_weight' dim 1 (H) is 32, but 'hidden' dim 1 gives H = 64}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %g) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>) -> tensor<?x64xf32>
  return
}

// -----

// A shared expert needs all three of its weights.
func.func @experts_partial_shared(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  %sg = moe.weight "sg" : tensor<128x64xf32>
  // expected-error @+1 {{'moe.experts' op a shared expert needs 'shared_gate_weight', 'shared_up_weight' and 'shared_down_weight' together}}
  %y = "moe.experts"(%x, %ids, %w, %g, %g, %d, %sg) <{operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0>}> : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<128x64xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @experts_shared_no_down(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  %sg = moe.weight "sg" : tensor<128x64xf32>
  // expected-error @+1 {{a shared expert needs 'shared_gate_weight', 'shared_up_weight' and 'shared_down_weight' together}}
  %y = "moe.experts"(%x, %ids, %w, %g, %g, %d, %sg, %sg) <{operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0>}> : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<128x64xf32>, tensor<128x64xf32>) -> tensor<?x64xf32>
  return
}

// -----

// Shared expert weights are [Is, H], [Is, H] and [H, Is].
func.func @experts_shared_gate_rank(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  %sg = moe.weight "sg" : tensor<1x128x64xf32>
  %su = moe.weight "su" : tensor<128x64xf32>
  %sd = moe.weight "sd" : tensor<64x128xf32>
  // expected-error @+1 {{'shared_gate_weight' must have rank 2 [Is, H], got 'tensor<1x128x64xf32>'}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) shared(%sg, %su, %sd) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<1x128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @experts_shared_gate_hidden(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  %sg = moe.weight "sg" : tensor<128x32xf32>
  %su = moe.weight "su" : tensor<128x64xf32>
  %sd = moe.weight "sd" : tensor<64x128xf32>
  // expected-error @+1 {{'shared_gate_weight' dim 1 (H) is 32, but 'hidden' dim 1 gives H = 64}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) shared(%sg, %su, %sd) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<128x32xf32>, tensor<128x64xf32>, tensor<64x128xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @experts_shared_up_intermediate(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  %sg = moe.weight "sg" : tensor<128x64xf32>
  %su = moe.weight "su" : tensor<96x64xf32>
  %sd = moe.weight "sd" : tensor<64x128xf32>
  // expected-error @+1 {{'shared_up_weight' dim 0 (Is) is 96, but 'shared_gate_weight' dim 0 gives Is = 128}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) shared(%sg, %su, %sd) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<128x64xf32>, tensor<96x64xf32>, tensor<64x128xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @experts_shared_down_intermediate(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  %sg = moe.weight "sg" : tensor<128x64xf32>
  %sd = moe.weight "sd" : tensor<64x64xf32>
  // expected-error @+1 {{'shared_down_weight' dim 1 (Is) is 64, but 'shared_gate_weight' dim 0 gives Is = 128}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) shared(%sg, %sg, %sd) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
  return
}

// -----

// shared_gate needs a shared expert and is [1, H].
func.func @experts_shared_gate_without_shared(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  %sgate = moe.weight "sgate" : tensor<1x64xf32>
  // expected-error @+1 {{'moe.experts' op 'shared_expert_gate' needs a shared expert}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) shared_gate(%sgate) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<1x64xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @experts_shared_gate_rows(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  %sg = moe.weight "sg" : tensor<128x64xf32>
  %sd = moe.weight "sd" : tensor<64x128xf32>
  %sgate = moe.weight "sgate" : tensor<2x64xf32>
  // expected-error @+1 {{'moe.experts' op 'shared_expert_gate' dim 0 must be 1, got 2}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) shared(%sg, %sg, %sd) shared_gate(%sgate) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>, tensor<2x64xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @experts_shared_gate_rank(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  %sg = moe.weight "sg" : tensor<128x64xf32>
  %sd = moe.weight "sd" : tensor<64x128xf32>
  %sgate = moe.weight "sgate" : tensor<64xf32>
  // expected-error @+1 {{'shared_expert_gate' must have rank 2 [1, H], got 'tensor<64xf32>'}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) shared(%sg, %sg, %sd) shared_gate(%sgate) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>, tensor<64xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @experts_shared_gate_hidden(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  %sg = moe.weight "sg" : tensor<128x64xf32>
  %sd = moe.weight "sd" : tensor<64x128xf32>
  %sgate = moe.weight "sgate" : tensor<1x32xf32>
  // expected-error @+1 {{'shared_expert_gate' dim 1 (H) is 32, but 'hidden' dim 1 gives H = 64}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) shared(%sg, %sg, %sd) shared_gate(%sgate) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>, tensor<1x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

// alpha, limit and beta are only for swiglu_clamped.
func.func @experts_swiglu_alpha(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{'moe.experts' op 'alpha', 'limit' and 'beta' only apply to activation swiglu_clamped}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) {alpha = 1.0 : f32} : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @experts_swiglu_limit(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{'alpha', 'limit' and 'beta' only apply to activation swiglu_clamped}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) {activation = #moe.act<swiglu>, limit = 10.0 : f32} : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @experts_swiglu_beta(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{'alpha', 'limit' and 'beta' only apply to activation swiglu_clamped}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) {beta = 0.0 : f32} : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

// swiglu_clamped: alpha and limit positive and finite, beta finite.
func.func @experts_clamped_zero_alpha(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{'moe.experts' op 'alpha' must be a positive finite number, got 0.000000e+00}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) {activation = #moe.act<swiglu_clamped>, alpha = 0.0 : f32} : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @experts_clamped_negative_limit(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{'moe.experts' op 'limit' must be a positive finite number, got -7.000000e+00}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) {activation = #moe.act<swiglu_clamped>, limit = -7.0 : f32} : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @experts_clamped_infinite_limit(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{'moe.experts' op 'limit' must be a positive finite number, got}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) {activation = #moe.act<swiglu_clamped>, limit = 0x7F800000 : f32} : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @experts_clamped_nan_beta(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{'moe.experts' op 'beta' must be finite, got}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) {activation = #moe.act<swiglu_clamped>, beta = 0x7FC00000 : f32} : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

// AllTypesMatch: the result has the hidden states' type.
func.func @experts_result_type(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{failed to verify that all of {hidden, result} have same type}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xbf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.attention
//===----------------------------------------------------------------------===//

// query is [B, S, Hq, D].
func.func @attention_query_rank(%q: tensor<8x4x64xf32>, %k: tensor<1x8x2x64xf32>, %kc: tensor<1x32x2x64xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{'query' must have rank 4 [B, S, Hq, D], got 'tensor<8x4x64xf32>'}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %k cache(%kc, %kc) at %p {scale = 1.25e-01 : f32} : (tensor<8x4x64xf32>, tensor<1x8x2x64xf32>, tensor<1x8x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1xi32>) -> (tensor<8x4x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>)
  return
}

// -----

// key and value match the query's batch, tokens and head dim.
func.func @attention_key_head_dim(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x2x32xf32>, %v: tensor<1x8x2x64xf32>, %kc: tensor<1x32x2x64xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{'key' dim 3 (D) is 32, but 'query' dim 3 gives D = 64}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %v cache(%kc, %kc) at %p {scale = 1.25e-01 : f32} : (tensor<1x8x4x64xf32>, tensor<1x8x2x32xf32>, tensor<1x8x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1xi32>) -> (tensor<1x8x4x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>)
  return
}

// -----

func.func @attention_value_heads(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x2x64xf32>, %v: tensor<1x8x1x64xf32>, %kc: tensor<1x32x2x64xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{'value' dim 2 (Hkv) is 1, but 'key' dim 2 gives Hkv = 2}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %v cache(%kc, %kc) at %p {scale = 1.25e-01 : f32} : (tensor<1x8x4x64xf32>, tensor<1x8x2x64xf32>, tensor<1x8x1x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1xi32>) -> (tensor<1x8x4x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>)
  return
}

// -----

func.func @attention_value_tokens(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x2x64xf32>, %v: tensor<1x4x2x64xf32>, %kc: tensor<1x32x2x64xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{'value' dim 1 (S) is 4, but 'query' dim 1 gives S = 8}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %v cache(%kc, %kc) at %p {scale = 1.25e-01 : f32} : (tensor<1x8x4x64xf32>, tensor<1x8x2x64xf32>, tensor<1x4x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1xi32>) -> (tensor<1x8x4x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>)
  return
}

// -----

// The caches are [B, L, Hkv, D] and [B, L, Hkv, Dv].
func.func @attention_key_cache_batch(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x2x64xf32>, %kc: tensor<2x32x2x64xf32>, %vc: tensor<1x32x2x64xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{'key_cache' dim 0 (B) is 2, but 'query' dim 0 gives B = 1}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %k cache(%kc, %vc) at %p {scale = 1.25e-01 : f32} : (tensor<1x8x4x64xf32>, tensor<1x8x2x64xf32>, tensor<1x8x2x64xf32>, tensor<2x32x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1xi32>) -> (tensor<1x8x4x64xf32>, tensor<2x32x2x64xf32>, tensor<1x32x2x64xf32>)
  return
}

// -----

func.func @attention_value_cache_capacity(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x2x64xf32>, %kc: tensor<1x32x2x64xf32>, %vc: tensor<1x16x2x64xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{'value_cache' dim 1 (L) is 16, but 'key_cache' dim 1 gives L = 32}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %k cache(%kc, %vc) at %p {scale = 1.25e-01 : f32} : (tensor<1x8x4x64xf32>, tensor<1x8x2x64xf32>, tensor<1x8x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1x16x2x64xf32>, tensor<1xi32>) -> (tensor<1x8x4x64xf32>, tensor<1x32x2x64xf32>, tensor<1x16x2x64xf32>)
  return
}

// -----

// cache_position is [B].
func.func @attention_cache_position_batch(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x2x64xf32>, %kc: tensor<1x32x2x64xf32>, %p: tensor<2xi32>) {
  // expected-error @+1 {{'cache_position' dim 0 (B) is 2, but 'query' dim 0 gives B = 1}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %k cache(%kc, %kc) at %p {scale = 1.25e-01 : f32} : (tensor<1x8x4x64xf32>, tensor<1x8x2x64xf32>, tensor<1x8x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>, tensor<2xi32>) -> (tensor<1x8x4x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>)
  return
}

// -----

func.func @attention_cache_position_rank(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x2x64xf32>, %kc: tensor<1x32x2x64xf32>, %p: tensor<1x1xi32>) {
  // expected-error @+1 {{'cache_position' must have rank 1 [B], got 'tensor<1x1xi32>'}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %k cache(%kc, %kc) at %p {scale = 1.25e-01 : f32} : (tensor<1x8x4x64xf32>, tensor<1x8x2x64xf32>, tensor<1x8x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1x1xi32>) -> (tensor<1x8x4x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>)
  return
}

// -----

// ODS: cache_position is i32.
func.func @attention_cache_position_i64(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x2x64xf32>, %kc: tensor<1x32x2x64xf32>, %p: tensor<1xi64>) {
  // expected-error @+1 {{operand #5 must be ranked tensor of 32-bit signless integer values, but got 'tensor<1xi64>'}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %k cache(%kc, %kc) at %p {scale = 1.25e-01 : f32} : (tensor<1x8x4x64xf32>, tensor<1x8x2x64xf32>, tensor<1x8x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1xi64>) -> (tensor<1x8x4x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>)
  return
}

// -----

// The result is [B, S, Hq, Dv].
func.func @attention_result_value_dim(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x2x64xf32>, %v: tensor<1x8x2x32xf32>, %kc: tensor<1x32x2x64xf32>, %vc: tensor<1x32x2x32xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{'result' dim 3 (Dv) is 64, but 'value' dim 3 gives Dv = 32}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %v cache(%kc, %vc) at %p {scale = 1.25e-01 : f32} : (tensor<1x8x4x64xf32>, tensor<1x8x2x64xf32>, tensor<1x8x2x32xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x32xf32>, tensor<1xi32>) -> (tensor<1x8x4x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x32xf32>)
  return
}

// -----

// The query heads are a multiple of the KV heads.
func.func @attention_gqa_ratio(%q: tensor<1x8x3x64xf32>, %k: tensor<1x8x2x64xf32>, %kc: tensor<1x32x2x64xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{'moe.attention' op query heads (Hq = 3) must be a multiple of the KV heads (Hkv = 2)}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %k cache(%kc, %kc) at %p {scale = 1.25e-01 : f32} : (tensor<1x8x3x64xf32>, tensor<1x8x2x64xf32>, tensor<1x8x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1xi32>) -> (tensor<1x8x3x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>)
  return
}

// -----

// The new tokens fit the cache.
func.func @attention_cache_too_small(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x2x64xf32>, %kc: tensor<1x4x2x64xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{'moe.attention' op cache capacity L = 4 is smaller than the S = 8 new tokens}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %k cache(%kc, %kc) at %p {scale = 1.25e-01 : f32} : (tensor<1x8x4x64xf32>, tensor<1x8x2x64xf32>, tensor<1x8x2x64xf32>, tensor<1x4x2x64xf32>, tensor<1x4x2x64xf32>, tensor<1xi32>) -> (tensor<1x8x4x64xf32>, tensor<1x4x2x64xf32>, tensor<1x4x2x64xf32>)
  return
}

// -----

// The caches hold the key and value element types; the result the query's.
func.func @attention_key_cache_element(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x2x64xf32>, %kc: tensor<1x32x2x64xf16>, %vc: tensor<1x32x2x64xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{'moe.attention' op 'key_cache' element type 'f16' must equal the element type of 'key' ('f32')}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %k cache(%kc, %vc) at %p {scale = 1.25e-01 : f32} : (tensor<1x8x4x64xf32>, tensor<1x8x2x64xf32>, tensor<1x8x2x64xf32>, tensor<1x32x2x64xf16>, tensor<1x32x2x64xf32>, tensor<1xi32>) -> (tensor<1x8x4x64xf32>, tensor<1x32x2x64xf16>, tensor<1x32x2x64xf32>)
  return
}

// -----

func.func @attention_value_cache_element(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x2x64xf32>, %v: tensor<1x8x2x64xbf16>, %kc: tensor<1x32x2x64xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{'moe.attention' op 'value_cache' element type 'f32' must equal the element type of 'value' ('bf16')}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %v cache(%kc, %kc) at %p {scale = 1.25e-01 : f32} : (tensor<1x8x4x64xf32>, tensor<1x8x2x64xf32>, tensor<1x8x2x64xbf16>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1xi32>) -> (tensor<1x8x4x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>)
  return
}

// -----

func.func @attention_result_element(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x2x64xf32>, %kc: tensor<1x32x2x64xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{'moe.attention' op 'result' element type 'bf16' must equal the element type of 'query' ('f32')}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %k cache(%kc, %kc) at %p {scale = 1.25e-01 : f32} : (tensor<1x8x4x64xf32>, tensor<1x8x2x64xf32>, tensor<1x8x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1xi32>) -> (tensor<1x8x4x64xbf16>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>)
  return
}

// -----

// AllTypesMatch: the new caches have the caches' types.
func.func @attention_new_cache_type(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x2x64xf32>, %kc: tensor<1x32x2x64xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{failed to verify that all of {key_cache, new_key_cache} have same type}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %k cache(%kc, %kc) at %p {scale = 1.25e-01 : f32} : (tensor<1x8x4x64xf32>, tensor<1x8x2x64xf32>, tensor<1x8x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1xi32>) -> (tensor<1x8x4x64xf32>, tensor<1x?x2x64xf32>, tensor<1x32x2x64xf32>)
  return
}

// -----

// scale is positive and finite.
func.func @attention_zero_scale(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x2x64xf32>, %kc: tensor<1x32x2x64xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{'moe.attention' op 'scale' must be a positive finite number, got 0.000000e+00}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %k cache(%kc, %kc) at %p {scale = 0.0 : f32} : (tensor<1x8x4x64xf32>, tensor<1x8x2x64xf32>, tensor<1x8x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1xi32>) -> (tensor<1x8x4x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>)
  return
}

// -----

func.func @attention_infinite_scale(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x2x64xf32>, %kc: tensor<1x32x2x64xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{'moe.attention' op 'scale' must be a positive finite number, got}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %k cache(%kc, %kc) at %p {scale = 0x7F800000 : f32} : (tensor<1x8x4x64xf32>, tensor<1x8x2x64xf32>, tensor<1x8x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1xi32>) -> (tensor<1x8x4x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>)
  return
}

// -----

// sliding_window is non-negative (0 means no window).
func.func @attention_negative_window(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x2x64xf32>, %kc: tensor<1x32x2x64xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{'moe.attention' op 'sliding_window' must be non-negative, got -1}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %k cache(%kc, %kc) at %p {scale = 1.25e-01 : f32, sliding_window = -1 : i64} : (tensor<1x8x4x64xf32>, tensor<1x8x2x64xf32>, tensor<1x8x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1xi32>) -> (tensor<1x8x4x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>)
  return
}

//===----------------------------------------------------------------------===//
// moe.mla
//===----------------------------------------------------------------------===//

// q_nope is [B, S, N, Dn].
func.func @mla_q_nope_rank(%qn: tensor<1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x80xf32>, %p: tensor<1xi32>) {
  %kvb = moe.weight "kv_b_proj" : tensor<1024x64xf32>
  // expected-error @+1 {{'q_nope' must have rank 4 [B, S, N, Dn], got 'tensor<1x16x32xf32>'}}
  %o, %c = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>, tensor<1x1x16xf32>, tensor<1024x64xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x1x16x32xf32>, tensor<1x128x80xf32>)
  return
}

// -----

// q_pe has the query's heads.
func.func @mla_q_pe_heads(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x8x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x80xf32>, %p: tensor<1xi32>) {
  %kvb = moe.weight "kv_b_proj" : tensor<1024x64xf32>
  // expected-error @+1 {{'q_pe' dim 2 (N) is 8, but 'q_nope' dim 2 gives N = 16}}
  %o, %c = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x8x16xf32>, tensor<1x1x64xf32>, tensor<1x1x16xf32>, tensor<1024x64xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x1x16x32xf32>, tensor<1x128x80xf32>)
  return
}

// -----

// latent is [B, S, R].
func.func @mla_latent_rank(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x80xf32>, %p: tensor<1xi32>) {
  %kvb = moe.weight "kv_b_proj" : tensor<1024x64xf32>
  // expected-error @+1 {{'latent' must have rank 3 [B, S, R], got 'tensor<1x64xf32>'}}
  %o, %c = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x64xf32>, tensor<1x1x16xf32>, tensor<1024x64xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x1x16x32xf32>, tensor<1x128x80xf32>)
  return
}

// -----

// k_pe is [B, S, Dr].
func.func @mla_k_pe_rope_dim(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x8xf32>, %c0: tensor<1x128x80xf32>, %p: tensor<1xi32>) {
  %kvb = moe.weight "kv_b_proj" : tensor<1024x64xf32>
  // expected-error @+1 {{'k_pe' dim 2 (Dr) is 8, but 'q_pe' dim 3 gives Dr = 16}}
  %o, %c = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>, tensor<1x1x8xf32>, tensor<1024x64xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x1x16x32xf32>, tensor<1x128x80xf32>)
  return
}

// -----

// cache is [B, L, C].
func.func @mla_cache_rank(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<128x80xf32>, %p: tensor<1xi32>) {
  %kvb = moe.weight "kv_b_proj" : tensor<1024x64xf32>
  // expected-error @+1 {{'cache' must have rank 3 [B, L, C], got 'tensor<128x80xf32>'}}
  %o, %c = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>, tensor<1x1x16xf32>, tensor<1024x64xf32>, tensor<128x80xf32>, tensor<1xi32>) -> (tensor<1x1x16x32xf32>, tensor<128x80xf32>)
  return
}

// -----

// cache_position is [B].
func.func @mla_cache_position_batch(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x80xf32>, %p: tensor<4xi32>) {
  %kvb = moe.weight "kv_b_proj" : tensor<1024x64xf32>
  // expected-error @+1 {{'cache_position' dim 0 (B) is 4, but 'q_nope' dim 0 gives B = 1}}
  %o, %c = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>, tensor<1x1x16xf32>, tensor<1024x64xf32>, tensor<1x128x80xf32>, tensor<4xi32>) -> (tensor<1x1x16x32xf32>, tensor<1x128x80xf32>)
  return
}

// -----

// result is [B, S, N, Dv].
func.func @mla_result_heads(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x80xf32>, %p: tensor<1xi32>) {
  %kvb = moe.weight "kv_b_proj" : tensor<1024x64xf32>
  // expected-error @+1 {{'result' dim 2 (N) is 8, but 'q_nope' dim 2 gives N = 16}}
  %o, %c = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>, tensor<1x1x16xf32>, tensor<1024x64xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x1x8x32xf32>, tensor<1x128x80xf32>)
  return
}

// -----

// A latent cache row holds R + Dr values.
func.func @mla_cache_row(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x64xf32>, %p: tensor<1xi32>) {
  %kvb = moe.weight "kv_b_proj" : tensor<1024x64xf32>
  // expected-error @+1 {{'moe.mla' op 'cache' dim 2 is 64, but a latent cache row holds kv_lora_rank + qk_rope_head_dim = 64 + 16}}
  %o, %c = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>, tensor<1x1x16xf32>, tensor<1024x64xf32>, tensor<1x128x64xf32>, tensor<1xi32>) -> (tensor<1x1x16x32xf32>, tensor<1x128x64xf32>)
  return
}

// -----

// The new tokens fit the cache.
func.func @mla_cache_too_small(%qn: tensor<1x8x16x32xf32>, %qp: tensor<1x8x16x16xf32>, %lat: tensor<1x8x64xf32>, %kp: tensor<1x8x16xf32>, %c0: tensor<1x4x80xf32>, %p: tensor<1xi32>) {
  %kvb = moe.weight "kv_b_proj" : tensor<1024x64xf32>
  // expected-error @+1 {{'moe.mla' op cache capacity L = 4 is smaller than the S = 8 new tokens}}
  %o, %c = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x8x16x32xf32>, tensor<1x8x16x16xf32>, tensor<1x8x64xf32>, tensor<1x8x16xf32>, tensor<1024x64xf32>, tensor<1x4x80xf32>, tensor<1xi32>) -> (tensor<1x8x16x32xf32>, tensor<1x4x80xf32>)
  return
}

// -----

// The cache holds the latent's element type; the result has q_nope's.
func.func @mla_cache_element(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x80xbf16>, %p: tensor<1xi32>) {
  %kvb = moe.weight "kv_b_proj" : tensor<1024x64xf32>
  // expected-error @+1 {{'moe.mla' op 'cache' element type 'bf16' must equal the element type of 'latent' ('f32')}}
  %o, %c = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>, tensor<1x1x16xf32>, tensor<1024x64xf32>, tensor<1x128x80xbf16>, tensor<1xi32>) -> (tensor<1x1x16x32xf32>, tensor<1x128x80xbf16>)
  return
}

// -----

func.func @mla_result_element(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x80xf32>, %p: tensor<1xi32>) {
  %kvb = moe.weight "kv_b_proj" : tensor<1024x64xf32>
  // expected-error @+1 {{'moe.mla' op 'result' element type 'f16' must equal the element type of 'q_nope' ('f32')}}
  %o, %c = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>, tensor<1x1x16xf32>, tensor<1024x64xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x1x16x32xf16>, tensor<1x128x80xf32>)
  return
}

// -----

// scale is positive and finite.
func.func @mla_negative_scale(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x80xf32>, %p: tensor<1xi32>) {
  %kvb = moe.weight "kv_b_proj" : tensor<1024x64xf32>
  // expected-error @+1 {{'moe.mla' op 'scale' must be a positive finite number, got -1.250000e-01}}
  %o, %c = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c0) at %p {scale = -0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>, tensor<1x1x16xf32>, tensor<1024x64xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x1x16x32xf32>, tensor<1x128x80xf32>)
  return
}

// -----

// AllTypesMatch: the new cache has the cache's type.
func.func @mla_new_cache_type(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x80xf32>, %p: tensor<1xi32>) {
  %kvb = moe.weight "kv_b_proj" : tensor<1024x64xf32>
  // expected-error @+1 {{failed to verify that all of {cache, new_cache} have same type}}
  %o, %c = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>, tensor<1x1x16xf32>, tensor<1024x64xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x1x16x32xf32>, tensor<1x256x80xf32>)
  return
}

// -----

// kv_b_weight is [N * (Dn + Dv), R].
func.func @mla_kv_b_rank(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x80xf32>, %p: tensor<1xi32>) {
  %kvb = moe.weight "kv_b_proj" : tensor<16x64x64xf32>
  // expected-error @+1 {{'kv_b_weight' must have rank 2 [KVB, R], got 'tensor<16x64x64xf32>'}}
  %o, %c = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>, tensor<1x1x16xf32>, tensor<16x64x64xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x1x16x32xf32>, tensor<1x128x80xf32>)
  return
}

// -----

func.func @mla_kv_b_rank_dim(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x80xf32>, %p: tensor<1xi32>) {
  %kvb = moe.weight "kv_b_proj" : tensor<1024x32xf32>
  // expected-error @+1 {{'kv_b_weight' dim 1 (R) is 32, but 'latent' dim 2 gives R = 64}}
  %o, %c = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>, tensor<1x1x16xf32>, tensor<1024x32xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x1x16x32xf32>, tensor<1x128x80xf32>)
  return
}

// -----

func.func @mla_kv_b_rows(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x80xf32>, %p: tensor<1xi32>) {
  %kvb = moe.weight "kv_b_proj" : tensor<512x64xf32>
  // expected-error @+1 {{'moe.mla' op 'kv_b_weight' dim 0 is 512, but heads * (qk_nope_head_dim + v_head_dim) = 16 * (32 + 32)}}
  %o, %c = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>, tensor<1x1x16xf32>, tensor<512x64xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x1x16x32xf32>, tensor<1x128x80xf32>)
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.mla_absorbed
//===----------------------------------------------------------------------===//

// The shared MLA checks apply to the absorbed form too.
func.func @mla_absorbed_cache_row(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x96xf32>, %p: tensor<1xi32>) {
  %uk = moe.weight "w_uk" : tensor<16x32x64xf32>
  // expected-error @+1 {{'moe.mla_absorbed' op 'cache' dim 2 is 96, but a latent cache row holds kv_lora_rank + qk_rope_head_dim = 64 + 16}}
  %o, %c = moe.mla_absorbed %qn, %qp, %lat, %kp w_uk(%uk) w_uv(%uk) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>, tensor<1x1x16xf32>, tensor<16x32x64xf32>, tensor<16x32x64xf32>, tensor<1x128x96xf32>, tensor<1xi32>) -> (tensor<1x1x16x32xf32>, tensor<1x128x96xf32>)
  return
}

// -----

func.func @mla_absorbed_latent_batch(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<2x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x80xf32>, %p: tensor<1xi32>) {
  %uk = moe.weight "w_uk" : tensor<16x32x64xf32>
  // expected-error @+1 {{'latent' dim 0 (B) is 2, but 'q_nope' dim 0 gives B = 1}}
  %o, %c = moe.mla_absorbed %qn, %qp, %lat, %kp w_uk(%uk) w_uv(%uk) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<2x1x64xf32>, tensor<1x1x16xf32>, tensor<16x32x64xf32>, tensor<16x32x64xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x1x16x32xf32>, tensor<1x128x80xf32>)
  return
}

// -----

func.func @mla_absorbed_zero_scale(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x80xf32>, %p: tensor<1xi32>) {
  %uk = moe.weight "w_uk" : tensor<16x32x64xf32>
  // expected-error @+1 {{'moe.mla_absorbed' op 'scale' must be a positive finite number, got 0.000000e+00}}
  %o, %c = moe.mla_absorbed %qn, %qp, %lat, %kp w_uk(%uk) w_uv(%uk) cache(%c0) at %p {scale = 0.0 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>, tensor<1x1x16xf32>, tensor<16x32x64xf32>, tensor<16x32x64xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x1x16x32xf32>, tensor<1x128x80xf32>)
  return
}

// -----

// w_uk is [N, Dn, R] and w_uv is [N, Dv, R].
func.func @mla_absorbed_w_uk_rank(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x80xf32>, %p: tensor<1xi32>) {
  %uk = moe.weight "w_uk" : tensor<512x64xf32>
  %uv = moe.weight "w_uv" : tensor<16x32x64xf32>
  // expected-error @+1 {{'w_uk' must have rank 3 [N, Dn, R], got 'tensor<512x64xf32>'}}
  %o, %c = moe.mla_absorbed %qn, %qp, %lat, %kp w_uk(%uk) w_uv(%uv) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>, tensor<1x1x16xf32>, tensor<512x64xf32>, tensor<16x32x64xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x1x16x32xf32>, tensor<1x128x80xf32>)
  return
}

// -----

func.func @mla_absorbed_w_uk_nope_dim(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x80xf32>, %p: tensor<1xi32>) {
  %uk = moe.weight "w_uk" : tensor<16x16x64xf32>
  %uv = moe.weight "w_uv" : tensor<16x32x64xf32>
  // expected-error @+1 {{'w_uk' dim 1 (Dn) is 16, but 'q_nope' dim 3 gives Dn = 32}}
  %o, %c = moe.mla_absorbed %qn, %qp, %lat, %kp w_uk(%uk) w_uv(%uv) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>, tensor<1x1x16xf32>, tensor<16x16x64xf32>, tensor<16x32x64xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x1x16x32xf32>, tensor<1x128x80xf32>)
  return
}

// -----

func.func @mla_absorbed_w_uv_value_dim(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x80xf32>, %p: tensor<1xi32>) {
  %uk = moe.weight "w_uk" : tensor<16x32x64xf32>
  %uv = moe.weight "w_uv" : tensor<16x16x64xf32>
  // expected-error @+1 {{'w_uv' dim 1 (Dv) is 16, but 'result' dim 3 gives Dv = 32}}
  %o, %c = moe.mla_absorbed %qn, %qp, %lat, %kp w_uk(%uk) w_uv(%uv) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>, tensor<1x1x16xf32>, tensor<16x32x64xf32>, tensor<16x16x64xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x1x16x32xf32>, tensor<1x128x80xf32>)
  return
}

// -----

func.func @mla_absorbed_w_uv_lora_rank(%qn: tensor<1x1x16x32xf32>, %qp: tensor<1x1x16x16xf32>, %lat: tensor<1x1x64xf32>, %kp: tensor<1x1x16xf32>, %c0: tensor<1x128x80xf32>, %p: tensor<1xi32>) {
  %uk = moe.weight "w_uk" : tensor<16x32x64xf32>
  %uv = moe.weight "w_uv" : tensor<16x32x128xf32>
  // expected-error @+1 {{'w_uv' dim 2 (R) is 128, but 'latent' dim 2 gives R = 64}}
  %o, %c = moe.mla_absorbed %qn, %qp, %lat, %kp w_uk(%uk) w_uv(%uv) cache(%c0) at %p {scale = 0.125 : f32} : (tensor<1x1x16x32xf32>, tensor<1x1x16x16xf32>, tensor<1x1x64xf32>, tensor<1x1x16xf32>, tensor<16x32x64xf32>, tensor<16x32x128xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x1x16x32xf32>, tensor<1x128x80xf32>)
  return
}

// -----

//===----------------------------------------------------------------------===//
// Optional operands added for GPT-OSS
//===----------------------------------------------------------------------===//

// The router's logit bias is [E].
func.func @route_logit_bias_shape(%x: tensor<?x64xf32>, %b: tensor<8xf32>) {
  %gw = moe.weight "gate" : tensor<16x64xf32>
  // expected-error @+1 {{'moe.route' op 'logit_bias' dim 0 (E) is 8, but 'gate_weight' dim 0 gives E = 16}}
  %ids, %w = moe.route %x, %gw logit_bias(%b) {top_k = 2 : i64, score = #moe.score<none>, order = #moe.order<topk_then_softmax>} : (tensor<?x64xf32>, tensor<16x64xf32>, tensor<8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return
}

// -----

// Expert biases come as a set of three.
func.func @experts_partial_biases(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>, %gb: tensor<8x32xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{'moe.experts' op expert biases need 'gate_bias', 'up_bias' and 'down_bias' together}}
  %y = "moe.experts"(%x, %ids, %w, %g, %g, %d, %gb) <{operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0>}> : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<8x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

// The down bias is [E, H].
func.func @experts_down_bias_shape(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>, %gb: tensor<8x32xf32>, %db: tensor<8x32xf32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{'moe.experts' op 'down_bias' dim 1 (H) is 32, but 'hidden' dim 1 gives H = 64}}
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) biases(%gb, %gb, %db) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

// Attention sinks are one logit per query head.
func.func @attention_sinks_shape(%q: tensor<1x8x4x64xf32>, %k: tensor<1x8x2x64xf32>, %kc: tensor<1x32x2x64xf32>, %p: tensor<1xi32>, %s: tensor<2xf32>) {
  // expected-error @+1 {{'moe.attention' op 'sinks' dim 0 (Hq) is 2, but 'query' dim 2 gives Hq = 4}}
  %o, %kc1, %vc1 = moe.attention %q, %k, %k cache(%kc, %kc) at %p sinks(%s) {scale = 1.25e-01 : f32} : (tensor<1x8x4x64xf32>, tensor<1x8x2x64xf32>, tensor<1x8x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>, tensor<1xi32>, tensor<2xf32>) -> (tensor<1x8x4x64xf32>, tensor<1x32x2x64xf32>, tensor<1x32x2x64xf32>)
  return
}

// -----

// Zero KV heads (would otherwise divide by zero in the head-group check).
func.func @attention_zero_kv_heads(%q: tensor<1x1x4x8xf32>, %k: tensor<1x1x0x8xf32>, %c: tensor<1x4x0x8xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{'moe.attention' op KV heads (Hkv) must be positive}}
  %o, %kc, %vc = moe.attention %q, %k, %k cache(%c, %c) at %p {scale = 1.0 : f32} : (tensor<1x1x4x8xf32>, tensor<1x1x0x8xf32>, tensor<1x1x0x8xf32>, tensor<1x4x0x8xf32>, tensor<1x4x0x8xf32>, tensor<1xi32>) -> (tensor<1x1x4x8xf32>, tensor<1x4x0x8xf32>, tensor<1x4x0x8xf32>)
  return
}

// -----

// Sizes whose product overflows int64 are not silently accepted.
func.func @mla_kv_b_overflow(%qn: tensor<1x1x4611686018427387904x2xf32>, %qp: tensor<1x1x4611686018427387904x2xf32>, %lat: tensor<1x1x4xf32>, %kp: tensor<1x1x2xf32>, %kvb: tensor<0x4xf32>, %c: tensor<1x8x6xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{'kv_b_weight' dim 0 is 0, but heads * (qk_nope_head_dim + v_head_dim) = 4611686018427387904 * (2 + 2)}}
  %o, %c1 = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c) at %p {scale = 1.0 : f32} : (tensor<1x1x4611686018427387904x2xf32>, tensor<1x1x4611686018427387904x2xf32>, tensor<1x1x4xf32>, tensor<1x1x2xf32>, tensor<0x4xf32>, tensor<1x8x6xf32>, tensor<1xi32>) -> (tensor<1x1x4611686018427387904x2xf32>, tensor<1x8x6xf32>)
  return
}

// -----

// YaRN's correction range divides by ln(theta).
func.func @rope_attr_yarn_theta_one(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{#moe.rope: 'theta' must be greater than 1 for yarn scaling}}
  %r = moe.rope %x, %pos style = <half_split> rope = <theta = 1.0, scaling = yarn, factor = 4.0, original_max_position = 4096> : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

func.func @rope_attr_bad_truncate(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+2 {{expected 'true' or 'false'}}
  // expected-error @+1 {{failed to parse MoE_RopeAttr parameter 'truncate'}}
  %r = moe.rope %x, %pos style = <half_split> rope = <scaling = yarn, factor = 4.0, original_max_position = 4096, truncate = 1> : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

// llama3 needs the original context and ordered band factors.
func.func @rope_attr_llama3_no_original(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{#moe.rope: 'original_max_position' must be positive for llama3 scaling}}
  %r = moe.rope %x, %pos style = <half_split> rope = <scaling = llama3, factor = 8.0> : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

func.func @rope_attr_llama3_band_order(%x: tensor<1x8x4x64xf32>, %pos: tensor<1x8xi32>) {
  // expected-error @+1 {{#moe.rope: 'low_freq_factor' and 'high_freq_factor' must be positive finite numbers with high_freq_factor > low_freq_factor}}
  %r = moe.rope %x, %pos style = <half_split> rope = <scaling = llama3, factor = 8.0, original_max_position = 8192, low_freq_factor = 4.0, high_freq_factor = 1.0> : tensor<1x8x4x64xf32>, tensor<1x8xi32>
  return
}

// -----

// moe.stacked_weight: one leading index per name, no empty names.
func.func @stacked_weight_count() {
  // expected-error @+1 {{'moe.stacked_weight' op result dim 0 (3) must equal the number of names (2)}}
  %w = moe.stacked_weight ["a", "b"] : tensor<3x4xf32>
  return
}

// -----

func.func @stacked_weight_empty_name() {
  // expected-error @+1 {{'moe.stacked_weight' op 'names' entry 1 is empty}}
  %w = moe.stacked_weight ["a", ""] : tensor<2x4xf32>
  return
}

// -----

func.func @stacked_weight_rank0() {
  // expected-error @+1 {{'moe.stacked_weight' op result must have a leading dimension that indexes 'names'}}
  %w = "moe.stacked_weight"() <{names = []}> : () -> tensor<f32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.fused_route, moe.grouped_experts
//===----------------------------------------------------------------------===//

// fused_route shares moe.route's checks.
func.func @fused_route_top_k(%x: tensor<?x64xf32>) {
  %r = moe.weight "router" : tensor<8x64xf32>
  // expected-error @+1 {{'top_k' (9) must be in [1, E = 8]}}
  %i, %w, %o, %s = moe.fused_route %x, %r {top_k = 9 : i64, score = #moe.score<softmax>} : (tensor<?x64xf32>, tensor<8x64xf32>) -> (tensor<?x9xi32>, tensor<?x9xf32>, tensor<9xi32>, tensor<?xi32>)
  return
}

// -----

func.func @fused_route_tile(%x: tensor<?x64xf32>) {
  %r = moe.weight "router" : tensor<8x64xf32>
  // expected-error @+1 {{'tile' (0) must be positive}}
  %i, %w, %o, %s = moe.fused_route %x, %r {top_k = 2 : i64, score = #moe.score<softmax>, tile = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>, tensor<?xi32>)
  return
}

// -----

func.func @fused_route_offsets(%x: tensor<?x64xf32>) {
  %r = moe.weight "router" : tensor<8x64xf32>
  // expected-error @+1 {{'expert_offsets' dim 0 must be 9, got 8}}
  %i, %w, %o, %s = moe.fused_route %x, %r {top_k = 2 : i64, score = #moe.score<softmax>} : (tensor<?x64xf32>, tensor<8x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<8xi32>, tensor<?xi32>)
  return
}

// -----

func.func @fused_route_slots(%x: tensor<3x64xf32>) {
  %r = moe.weight "router" : tensor<8x64xf32>
  // expected-error @+1 {{'sorted_slots' must have T * k + E * (tile - 1) = 30 entries, got 6}}
  %i, %w, %o, %s = moe.fused_route %x, %r {top_k = 2 : i64, score = #moe.score<softmax>, tile = 4 : i64} : (tensor<3x64xf32>, tensor<8x64xf32>) -> (tensor<3x2xi32>, tensor<3x2xf32>, tensor<9xi32>, tensor<6xi32>)
  return
}

// -----

// grouped_experts shares moe.experts' checks.
func.func @grouped_experts_shapes(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>, %o: tensor<9xi32>, %s: tensor<?xi32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x32x64xf32>
  // expected-error @+1 {{'down_weight' dim 1 (H) is 32, but 'hidden' dim 1 gives H = 64}}
  %y = moe.grouped_experts %x, %ids, %w permutation(%o, %s) experts(%g, %g, %d) : (tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>, tensor<?xi32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @grouped_experts_offsets(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>, %o: tensor<4xi32>, %s: tensor<?xi32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{'expert_offsets' dim 0 must be 9, got 4}}
  %y = moe.grouped_experts %x, %ids, %w permutation(%o, %s) experts(%g, %g, %d) : (tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<4xi32>, tensor<?xi32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @grouped_experts_tile(%x: tensor<?x64xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>, %o: tensor<9xi32>, %s: tensor<?xi32>) {
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  // expected-error @+1 {{'gemv_max_tokens' (-1) must be non-negative}}
  %y = moe.grouped_experts %x, %ids, %w permutation(%o, %s) experts(%g, %g, %d) {gemv_max_tokens = -1 : i64} : (tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>, tensor<?xi32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.linear, fused rope of moe.attention
//===----------------------------------------------------------------------===//

func.func @linear_shapes(%x: tensor<?x64xf32>) {
  %w = moe.weight "w" : tensor<32x48xf32>
  // expected-error @+1 {{'weight' dim 1 (K) is 48, but 'input' dim 1 gives K = 64}}
  %y = moe.linear %x, %w : (tensor<?x64xf32>, tensor<32x48xf32>) -> tensor<?x32xf32>
  return
}

// -----

func.func @linear_norm_eps(%x: tensor<?x64xf32>) {
  %w = moe.weight "w" : tensor<32x64xf32>
  %n = moe.weight "n" : tensor<64xf32>
  // expected-error @+1 {{'norm_weight' needs 'norm_eps'}}
  %y = moe.linear %x, %w norm(%n) : (tensor<?x64xf32>, tensor<32x64xf32>, tensor<64xf32>) -> tensor<?x32xf32>
  return
}

// -----

func.func @linear_eps_without_norm(%x: tensor<?x64xf32>) {
  %w = moe.weight "w" : tensor<32x64xf32>
  // expected-error @+1 {{'norm_eps' and 'norm_weight_in_f32' need 'norm_weight'}}
  %y = moe.linear %x, %w {norm_eps = 1.0e-6 : f32} : (tensor<?x64xf32>, tensor<32x64xf32>) -> tensor<?x32xf32>
  return
}

// -----

func.func @linear_residual_type(%x: tensor<?x64xbf16>, %r: tensor<?x32xf32>) {
  %w = moe.weight "w" : tensor<32x64xbf16>
  // expected-error @+1 {{'residual' element type 'f32' must equal the element type of 'result' ('bf16')}}
  %y = moe.linear %x, %w residual(%r) : (tensor<?x64xbf16>, tensor<32x64xbf16>, tensor<?x32xf32>) -> tensor<?x32xbf16>
  return
}

// -----

func.func @attention_rope_parts(%q: tensor<1x4x2x8xf32>, %pos: tensor<1x4xi32>, %kc: tensor<1x8x2x8xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{a fused rotary embedding needs 'positions', 'rope_style' and 'rope' together}}
  %a, %kc2, %vc2 = moe.attention %q, %q, %q cache(%kc, %kc) at %p rope(%pos) {scale = 0.35 : f32} : (tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x8x2x8xf32>, tensor<1x8x2x8xf32>, tensor<1xi32>, tensor<1x4xi32>) -> (tensor<1x4x2x8xf32>, tensor<1x8x2x8xf32>, tensor<1x8x2x8xf32>)
  return
}

// -----

func.func @attention_rope_positions(%q: tensor<1x4x2x8xf32>, %pos: tensor<1x5xi32>, %kc: tensor<1x8x2x8xf32>, %p: tensor<1xi32>) {
  // expected-error @+1 {{'positions' dim 1 (S) is 5, but 'query' dim 1 gives S = 4}}
  %a, %kc2, %vc2 = moe.attention %q, %q, %q cache(%kc, %kc) at %p rope(%pos) {scale = 0.35 : f32, rope_style = #moe.rope_style<interleaved>, rope = #moe.rope<theta = 1.0e4>} : (tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x8x2x8xf32>, tensor<1x8x2x8xf32>, tensor<1xi32>, tensor<1x5xi32>) -> (tensor<1x4x2x8xf32>, tensor<1x8x2x8xf32>, tensor<1x8x2x8xf32>)
  return
}

// -----

func.func @mla_rope_parts(%qn: tensor<1x4x2x16xf32>, %qp: tensor<1x4x2x8xf32>, %lat: tensor<1x4x32xf32>, %kp: tensor<1x4x8xf32>, %pos: tensor<1x4xi32>, %c: tensor<1x16x40xf32>, %p: tensor<1xi32>) {
  %kvb = moe.weight "kv_b" : tensor<64x32xf32>
  // expected-error @+1 {{a fused rotary embedding needs 'positions', 'rope_style' and 'rope' together}}
  %o, %c2 = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c) at %p rope(%pos) {scale = 0.2 : f32, rope = #moe.rope<theta = 5.0e4>} : (tensor<1x4x2x16xf32>, tensor<1x4x2x8xf32>, tensor<1x4x32xf32>, tensor<1x4x8xf32>, tensor<64x32xf32>, tensor<1x16x40xf32>, tensor<1xi32>, tensor<1x4xi32>) -> (tensor<1x4x2x16xf32>, tensor<1x16x40xf32>)
  return
}
