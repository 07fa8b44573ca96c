// RUN: moe-opt %s -moe-fuse-norm-rope-residual -split-input-file | FileCheck %s

// The attention block of a GQA layer as the importer writes it: the norm
// moves into the three projections' prologues, the two rotations into the
// attention, the residual add into the output projection.
// CHECK-LABEL: func.func @attention_block
// CHECK-SAME: (%[[H:[^:]+]]: tensor<?x?x64xbf16>, %[[POS:[^:]+]]: tensor<?x?xi32>
// CHECK-NOT: moe.rms_norm
// CHECK: %[[X0:.+]] = tensor.collapse_shape %[[H]] {{\[\[}}0, 1], [2]]
// CHECK: moe.linear %[[X0]], %{{.+}} bias(%{{.+}}) norm(%[[NW:.+]]) {norm_eps = 9.99999997E-7 : f32}
// CHECK: %[[X1:.+]] = tensor.collapse_shape %[[H]] {{\[\[}}0, 1], [2]]
// CHECK: moe.linear %[[X1]], %{{.+}} norm(%[[NW]]) {norm_eps = 9.99999997E-7 : f32}
// CHECK: %[[X2:.+]] = tensor.collapse_shape %[[H]] {{\[\[}}0, 1], [2]]
// CHECK: moe.linear %[[X2]], %{{.+}} norm(%[[NW]]) {norm_eps = 9.99999997E-7 : f32}
// CHECK-NOT: moe.rope
// CHECK: moe.attention {{.+}} rope(%[[POS]]) {rope = #moe.rope<theta = 1.000000e+06>, rope_style = #moe.rope_style<half_split>, scale = 1.250000e-01 : f32}
// CHECK: %[[R:.+]] = tensor.collapse_shape %[[H]] {{\[\[}}0, 1], [2]]
// CHECK: %[[O:.+]] = moe.linear %{{.+}}, %{{.+}} residual(%[[R]])
// CHECK-NOT: arith.addf
// CHECK: %[[OUT:.+]] = tensor.expand_shape %[[O]]
// CHECK: return %[[OUT]]
func.func @attention_block(%h: tensor<?x?x64xbf16>, %pos: tensor<?x?xi32>, %kc: tensor<?x32x2x8xbf16>, %vc: tensor<?x32x2x8xbf16>, %p: tensor<?xi32>, %b: index, %s: index) -> (tensor<?x?x64xbf16>, tensor<?x32x2x8xbf16>, tensor<?x32x2x8xbf16>) {
  %nw = moe.weight "norm" : tensor<64xbf16>
  %wq = moe.weight "q" : tensor<64x64xbf16>
  %bq = moe.weight "q.bias" : tensor<64xbf16>
  %wk = moe.weight "k" : tensor<16x64xbf16>
  %wv = moe.weight "v" : tensor<16x64xbf16>
  %wo = moe.weight "o" : tensor<64x64xbf16>
  %n = moe.rms_norm %h, %nw eps(1.0e-6) : tensor<?x?x64xbf16>, tensor<64xbf16>
  %x = tensor.collapse_shape %n [[0, 1], [2]] : tensor<?x?x64xbf16> into tensor<?x64xbf16>
  %q = moe.linear %x, %wq bias(%bq) : (tensor<?x64xbf16>, tensor<64x64xbf16>, tensor<64xbf16>) -> tensor<?x64xbf16>
  %k = moe.linear %x, %wk : (tensor<?x64xbf16>, tensor<16x64xbf16>) -> tensor<?x16xbf16>
  %v = moe.linear %x, %wv : (tensor<?x64xbf16>, tensor<16x64xbf16>) -> tensor<?x16xbf16>
  %q4 = tensor.expand_shape %q [[0, 1], [2, 3]] output_shape [%b, %s, 8, 8] : tensor<?x64xbf16> into tensor<?x?x8x8xbf16>
  %k4 = tensor.expand_shape %k [[0, 1], [2, 3]] output_shape [%b, %s, 2, 8] : tensor<?x16xbf16> into tensor<?x?x2x8xbf16>
  %v4 = tensor.expand_shape %v [[0, 1], [2, 3]] output_shape [%b, %s, 2, 8] : tensor<?x16xbf16> into tensor<?x?x2x8xbf16>
  %qr = moe.rope %q4, %pos style = <half_split> rope = <theta = 1.0e6> : tensor<?x?x8x8xbf16>, tensor<?x?xi32>
  %kr = moe.rope %k4, %pos style = <half_split> rope = <theta = 1.0e6> : tensor<?x?x2x8xbf16>, tensor<?x?xi32>
  %a, %kc2, %vc2 = moe.attention %qr, %kr, %v4 cache(%kc, %vc) at %p {scale = 0.125 : f32} : (tensor<?x?x8x8xbf16>, tensor<?x?x2x8xbf16>, tensor<?x?x2x8xbf16>, tensor<?x32x2x8xbf16>, tensor<?x32x2x8xbf16>, tensor<?xi32>) -> (tensor<?x?x8x8xbf16>, tensor<?x32x2x8xbf16>, tensor<?x32x2x8xbf16>)
  %a2 = tensor.collapse_shape %a [[0, 1], [2, 3]] : tensor<?x?x8x8xbf16> into tensor<?x64xbf16>
  %o = moe.linear %a2, %wo : (tensor<?x64xbf16>, tensor<64x64xbf16>) -> tensor<?x64xbf16>
  %o3 = tensor.expand_shape %o [[0, 1], [2]] output_shape [%b, %s, 64] : tensor<?x64xbf16> into tensor<?x?x64xbf16>
  %h2 = arith.addf %h, %o3 : tensor<?x?x64xbf16>
  return %h2, %kc2, %vc2 : tensor<?x?x64xbf16>, tensor<?x32x2x8xbf16>, tensor<?x32x2x8xbf16>
}

// -----

// A norm that routing also reads stays: the router would otherwise need
// its own prologue.
// CHECK-LABEL: func.func @norm_shared_with_router
// CHECK: %[[N:.+]] = moe.rms_norm
// CHECK: moe.route %[[N]]
// CHECK: moe.linear %[[N]], %{{.+}} :
func.func @norm_shared_with_router(%h: tensor<?x64xf32>) -> (tensor<?x2xi32>, tensor<?x64xf32>) {
  %nw = moe.weight "norm" : tensor<64xf32>
  %r = moe.weight "router" : tensor<8x64xf32>
  %w = moe.weight "w" : tensor<64x64xf32>
  %n = moe.rms_norm %h, %nw eps(1.0e-6) : tensor<?x64xf32>, tensor<64xf32>
  %ids, %wts = moe.route %n, %r {top_k = 2 : i64, score = #moe.score<softmax>} : (tensor<?x64xf32>, tensor<8x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  %y = moe.linear %n, %w : (tensor<?x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
  return %ids, %y : tensor<?x2xi32>, tensor<?x64xf32>
}

// -----

// A collapse that merges the normalised dimension with another would
// change what is normalised: left alone.
// CHECK-LABEL: func.func @norm_dim_merged
// CHECK: moe.rms_norm
// CHECK: moe.linear %{{.+}}, %{{.+}} :
func.func @norm_dim_merged(%h: tensor<?x4x16xf32>) -> tensor<?x64xf32> {
  %nw = moe.weight "norm" : tensor<16xf32>
  %w = moe.weight "w" : tensor<64x64xf32>
  %n = moe.rms_norm %h, %nw eps(1.0e-6) : tensor<?x4x16xf32>, tensor<16xf32>
  %x = tensor.collapse_shape %n [[0], [1, 2]] : tensor<?x4x16xf32> into tensor<?x64xf32>
  %y = moe.linear %x, %w : (tensor<?x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Rotations that differ between query and key, or rotate part of a head,
// stay outside the attention.
// CHECK-LABEL: func.func @partial_rope
// CHECK-COUNT-2: moe.rope
// CHECK: moe.attention
// CHECK-NOT: rope(
func.func @partial_rope(%q: tensor<1x4x2x8xf32>, %k: tensor<1x4x2x8xf32>, %v: tensor<1x4x2x8xf32>, %pos: tensor<1x4xi32>, %kc: tensor<1x8x2x8xf32>, %vc: tensor<1x8x2x8xf32>, %p: tensor<1xi32>) -> tensor<1x4x2x8xf32> {
  %qr = moe.rope %q, %pos style = <half_split> rope = <theta = 1.0e4> {rotary_dim = 4 : i64} : tensor<1x4x2x8xf32>, tensor<1x4xi32>
  %kr = moe.rope %k, %pos style = <half_split> rope = <theta = 1.0e4> {rotary_dim = 4 : i64} : tensor<1x4x2x8xf32>, tensor<1x4xi32>
  %a, %kc2, %vc2 = moe.attention %qr, %kr, %v cache(%kc, %vc) at %p {scale = 0.35 : f32} : (tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x8x2x8xf32>, tensor<1x8x2x8xf32>, tensor<1xi32>) -> (tensor<1x4x2x8xf32>, tensor<1x8x2x8xf32>, tensor<1x8x2x8xf32>)
  return %a : tensor<1x4x2x8xf32>
}

// -----

// A projection result read by more than the add keeps its own add; a
// residual defined after the projection cannot feed its epilogue.
// CHECK-LABEL: func.func @residual_not_fused
// CHECK: moe.linear %{{.+}}, %{{.+}} :
// CHECK: arith.addf
// CHECK: moe.linear %{{.+}}, %{{.+}} :
// CHECK: arith.addf
func.func @residual_not_fused(%x: tensor<?x64xf32>, %r: tensor<?x64xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>) {
  %w = moe.weight "w" : tensor<64x64xf32>
  %y = moe.linear %x, %w : (tensor<?x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
  %s = arith.addf %r, %y : tensor<?x64xf32>
  %y2 = moe.linear %x, %w : (tensor<?x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
  %late = arith.mulf %r, %r : tensor<?x64xf32>
  %s2 = arith.addf %late, %y2 : tensor<?x64xf32>
  return %s, %y, %s2 : tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>
}

// -----

// MLA (DeepSeek): q_pe and the shared k_pe (rotated as one head, then
// collapsed) become the MLA op's rope prologue; k_pe is collapsed unrotated.
// CHECK-LABEL: func.func @mla_rope
// CHECK-SAME: (%[[QN:[^:]+]]: {{[^,]+}}, %[[QP:[^:]+]]: {{[^,]+}}, %[[LAT:[^:]+]]: {{[^,]+}}, %[[KP:[^:]+]]: {{[^,]+}}, %[[POS:[^:]+]]: tensor<1x4xi32>
// CHECK-NOT: moe.rope
// CHECK: %[[K:.+]] = tensor.collapse_shape %[[KP]] {{\[\[}}0], [1], [2, 3]]
// CHECK: moe.mla %[[QN]], %[[QP]], %[[LAT]], %[[K]] kv_b(%{{.+}}) cache(%{{.+}}) at %{{.+}} rope(%[[POS]]) {rope = #moe.rope<theta = 5.000000e+04>, rope_style = #moe.rope_style<interleaved>
func.func @mla_rope(%qn: tensor<1x4x2x16xf32>, %qp: tensor<1x4x2x8xf32>, %lat: tensor<1x4x32xf32>, %kp: tensor<1x4x1x8xf32>, %pos: tensor<1x4xi32>, %c: tensor<1x16x40xf32>, %p: tensor<1xi32>) -> tensor<1x4x2x16xf32> {
  %kvb = moe.weight "kv_b" : tensor<64x32xf32>
  %qr = moe.rope %qp, %pos style = <interleaved> rope = <theta = 5.0e4> : tensor<1x4x2x8xf32>, tensor<1x4xi32>
  %kr = moe.rope %kp, %pos style = <interleaved> rope = <theta = 5.0e4> : tensor<1x4x1x8xf32>, tensor<1x4xi32>
  %k = tensor.collapse_shape %kr [[0], [1], [2, 3]] : tensor<1x4x1x8xf32> into tensor<1x4x8xf32>
  %o, %c2 = moe.mla %qn, %qr, %lat, %k kv_b(%kvb) cache(%c) at %p {scale = 0.2 : f32} : (tensor<1x4x2x16xf32>, tensor<1x4x2x8xf32>, tensor<1x4x32xf32>, tensor<1x4x8xf32>, tensor<64x32xf32>, tensor<1x16x40xf32>, tensor<1xi32>) -> (tensor<1x4x2x16xf32>, tensor<1x16x40xf32>)
  return %o : tensor<1x4x2x16xf32>
}

// -----

// Different tables on q_pe and k_pe: left alone.
// CHECK-LABEL: func.func @mla_rope_mismatch
// CHECK-COUNT-2: moe.rope
// CHECK: moe.mla
// CHECK-NOT: rope(
func.func @mla_rope_mismatch(%qn: tensor<1x4x2x16xf32>, %qp: tensor<1x4x2x8xf32>, %lat: tensor<1x4x32xf32>, %kp: tensor<1x4x1x8xf32>, %pos: tensor<1x4xi32>, %c: tensor<1x16x40xf32>, %p: tensor<1xi32>) -> tensor<1x4x2x16xf32> {
  %kvb = moe.weight "kv_b" : tensor<64x32xf32>
  %qr = moe.rope %qp, %pos style = <interleaved> rope = <theta = 5.0e4> : tensor<1x4x2x8xf32>, tensor<1x4xi32>
  %kr = moe.rope %kp, %pos style = <interleaved> rope = <theta = 1.0e4> : tensor<1x4x1x8xf32>, tensor<1x4xi32>
  %k = tensor.collapse_shape %kr [[0], [1], [2, 3]] : tensor<1x4x1x8xf32> into tensor<1x4x8xf32>
  %o, %c2 = moe.mla %qn, %qr, %lat, %k kv_b(%kvb) cache(%c) at %p {scale = 0.2 : f32} : (tensor<1x4x2x16xf32>, tensor<1x4x2x8xf32>, tensor<1x4x32xf32>, tensor<1x4x8xf32>, tensor<64x32xf32>, tensor<1x16x40xf32>, tensor<1xi32>) -> (tensor<1x4x2x16xf32>, tensor<1x16x40xf32>)
  return %o : tensor<1x4x2x16xf32>
}
