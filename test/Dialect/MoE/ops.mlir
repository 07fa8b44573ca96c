// Round trip of every moe op: custom form, and generic form re-parsed.
// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --mlir-print-op-generic | moe-opt | FileCheck %s

// CHECK-LABEL: func.func @weight
func.func @weight() -> tensor<16x64xbf16> {
  // CHECK: %[[W:.+]] = moe.weight "model.layers.0.mlp.gate.weight" : tensor<16x64xbf16>
  %w = moe.weight "model.layers.0.mlp.gate.weight" : tensor<16x64xbf16>
  // CHECK: return %[[W]]
  return %w : tensor<16x64xbf16>
}

// CHECK-LABEL: func.func @stacked_weight
func.func @stacked_weight() -> tensor<2x32x64xbf16> {
  // CHECK: moe.stacked_weight ["layers.1.mlp.experts.0.gate_proj.weight", "layers.1.mlp.experts.1.gate_proj.weight"] : tensor<2x32x64xbf16>
  %w = moe.stacked_weight ["layers.1.mlp.experts.0.gate_proj.weight", "layers.1.mlp.experts.1.gate_proj.weight"] : tensor<2x32x64xbf16>
  return %w : tensor<2x32x64xbf16>
}

// CHECK-LABEL: func.func @embedding
// CHECK-SAME: (%[[IDS:.+]]: tensor<?x8xi32>)
func.func @embedding(%ids: tensor<?x8xi32>) -> tensor<?x8x64xf32> {
  // CHECK: %[[T:.+]] = moe.weight "model.embed_tokens.weight"
  %t = moe.weight "model.embed_tokens.weight" : tensor<256x64xf32>
  // CHECK: moe.embedding %[[T]][%[[IDS]]] : tensor<256x64xf32>, tensor<?x8xi32> -> tensor<?x8x64xf32>
  %h = moe.embedding %t[%ids] : tensor<256x64xf32>, tensor<?x8xi32> -> tensor<?x8x64xf32>
  return %h : tensor<?x8x64xf32>
}

// CHECK-LABEL: func.func @rms_norm
// CHECK-SAME: (%[[X:.+]]: tensor<2x?x64xbf16>, %[[W:.+]]: tensor<64xf32>)
func.func @rms_norm(%x: tensor<2x?x64xbf16>, %w: tensor<64xf32>) -> tensor<2x?x64xbf16> {
  // CHECK: moe.rms_norm %[[X]], %[[W]] eps(9.99999997E-7) : tensor<2x?x64xbf16>, tensor<64xf32>
  %y = moe.rms_norm %x, %w eps(1.0e-6) : tensor<2x?x64xbf16>, tensor<64xf32>
  return %y : tensor<2x?x64xbf16>
}

// CHECK-LABEL: func.func @rope
// CHECK-SAME: (%[[X:.+]]: tensor<1x?x4x64xf32>, %[[P:.+]]: tensor<1x?xi64>)
func.func @rope(%x: tensor<1x?x4x64xf32>, %pos: tensor<1x?xi64>) -> (tensor<1x?x4x64xf32>, tensor<1x?x4x64xf32>, tensor<1x?x4x64xf32>) {
  // Parameters at their default are elided when printing.
  // CHECK: moe.rope %[[X]], %[[P]] style = <half_split> rope = <> : tensor<1x?x4x64xf32>, tensor<1x?xi64>
  %a = moe.rope %x, %pos style = <half_split> rope = <theta = 10000.0> : tensor<1x?x4x64xf32>, tensor<1x?xi64>
  // CHECK: moe.rope %[[X]], %[[P]] style = <half_split> rope = <theta = 5.000000e+05, scaling = linear, factor = 8.000000e+00> {rotary_dim = 32 : i64}
  %b = moe.rope %x, %pos style = <half_split> rope = <theta = 500000.0, scaling = linear, factor = 8.0> {rotary_dim = 32 : i64} : tensor<1x?x4x64xf32>, tensor<1x?xi64>
  // CHECK: moe.rope %[[X]], %[[P]] style = <interleaved> rope = <scaling = yarn, factor = 4.000000e+01, original_max_position = 4096, mscale = 1.000000e+00, mscale_all_dim = 7.070000e-01, attention_factor = 1.250000e+00>
  %c = moe.rope %x, %pos style = <interleaved> rope = <scaling = yarn, factor = 40.0, original_max_position = 4096, beta_fast = 32.0, mscale = 1.0, mscale_all_dim = 0.707, attention_factor = 1.25> : tensor<1x?x4x64xf32>, tensor<1x?xi64>
  // Llama 3.1 band scaling (the DeepSeek-R1 Llama distills).
  // CHECK: moe.rope %[[X]], %[[P]] style = <half_split> rope = <theta = 5.000000e+05, scaling = llama3, factor = 8.000000e+00, original_max_position = 8192>
  %d = moe.rope %x, %pos style = <half_split> rope = <theta = 500000.0, scaling = llama3, factor = 8.0, original_max_position = 8192, low_freq_factor = 1.0, high_freq_factor = 4.0> : tensor<1x?x4x64xf32>, tensor<1x?xi64>
  return %a, %b, %c : tensor<1x?x4x64xf32>, tensor<1x?x4x64xf32>, tensor<1x?x4x64xf32>
}

// CHECK-LABEL: func.func @route
// CHECK-SAME: (%[[X:.+]]: tensor<?x64xbf16>)
func.func @route(%x: tensor<?x64xbf16>) -> (tensor<?x8xi32>, tensor<?x8xf32>, tensor<?x2xi32>, tensor<?x4xf32>, tensor<?x4xf32>) {
  %g = moe.weight "gate" : tensor<32x64xbf16>
  %b = moe.weight "bias" : tensor<32xf32>
  // DeepSeek-V3: sigmoid, selection-only bias, groups scored by top-2 sum.
  // CHECK: %{{.+}}, %{{.+}} = moe.route %[[X]], %{{.+}} bias(%{{.+}}) {group_score = #moe.group_score<top2_sum>, n_group = 8 : i64, renorm = #moe.renorm<sum>, renorm_eps = 9.99999968E-21 : f32, scaling_factor = 2.500000e+00 : f32, score = #moe.score<sigmoid>, top_k = 8 : i64, topk_group = 4 : i64} : (tensor<?x64xbf16>, tensor<32x64xbf16>, tensor<32xf32>) -> (tensor<?x8xi32>, tensor<?x8xf32>)
  %i0, %w0 = moe.route %x, %g bias(%b) {top_k = 8 : i64, score = #moe.score<sigmoid>, n_group = 8 : i64, topk_group = 4 : i64, group_score = #moe.group_score<top2_sum>, renorm = #moe.renorm<sum>, renorm_eps = 1.0e-20 : f32, scaling_factor = 2.5 : f32} : (tensor<?x64xbf16>, tensor<32x64xbf16>, tensor<32xf32>) -> (tensor<?x8xi32>, tensor<?x8xf32>)
  // Mixtral: softmax, top-2, renormalised, logits rounded to bf16 as
  // transformers computes them; defaults elided.
  // CHECK: moe.route %[[X]], %{{.+}} {renorm = #moe.renorm<sum>, round_logits, score = #moe.score<softmax>, top_k = 2 : i64} : (tensor<?x64xbf16>, tensor<32x64xbf16>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  %i1, %w1 = moe.route %x, %g {top_k = 2 : i64, score = #moe.score<softmax>, renorm = #moe.renorm<sum>, round_logits} : (tensor<?x64xbf16>, tensor<32x64xbf16>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  // DeepSeek-V2: softmax, groups scored by max, scaled.
  // CHECK: moe.route %[[X]], %{{.+}} {n_group = 4 : i64, scaling_factor = 1.600000e+01 : f32, score = #moe.score<softmax>, top_k = 4 : i64, topk_group = 2 : i64}
  %i2, %w2 = moe.route %x, %g {top_k = 4 : i64, score = #moe.score<softmax>, n_group = 4 : i64, topk_group = 2 : i64, scaling_factor = 16.0 : f32} : (tensor<?x64xbf16>, tensor<32x64xbf16>) -> (tensor<?x4xi32>, tensor<?x4xf32>)
  // GPT-OSS / Granite: top-k of the logits, softmax over the k.
  // CHECK: moe.route %[[X]], %{{.+}} {order = #moe.order<topk_then_softmax>, score = #moe.score<none>, top_k = 4 : i64}
  %i3, %w3 = moe.route %x, %g {top_k = 4 : i64, score = #moe.score<none>, order = #moe.order<topk_then_softmax>} : (tensor<?x64xbf16>, tensor<32x64xbf16>) -> (tensor<?x4xi32>, tensor<?x4xf32>)
  return %i0, %w0, %i1, %w2, %w3 : tensor<?x8xi32>, tensor<?x8xf32>, tensor<?x2xi32>, tensor<?x4xf32>, tensor<?x4xf32>
}

// CHECK-LABEL: func.func @experts
// CHECK-SAME: (%[[X:[^:]+]]: tensor<?x64xf32>, %[[I:[^:]+]]: tensor<?x4xi32>, %[[W:[^:]+]]: tensor<?x4xf32>)
func.func @experts(%x: tensor<?x64xf32>, %ids: tensor<?x4xi32>, %w: tensor<?x4xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>) {
  %g = moe.weight "experts.gate" : tensor<8x32x64xf32>
  %u = moe.weight "experts.up" : tensor<8x32x64xf32>
  %d = moe.weight "experts.down" : tensor<8x64x32xf32>
  %sg = moe.weight "shared.gate" : tensor<128x64xf32>
  %su = moe.weight "shared.up" : tensor<128x64xf32>
  %sd = moe.weight "shared.down" : tensor<64x128xf32>
  %gate = moe.weight "shared_expert_gate" : tensor<1x64xf32>
  // Routed experts only (Mixtral, Qwen3-MoE, OLMoE).
  // CHECK: %{{.+}} = moe.experts %[[X]], %[[I]], %[[W]] experts(%{{[^,]+}}, %{{[^,]+}}, %{{[^)]+}}) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  %y0 = moe.experts %x, %ids, %w experts(%g, %u, %d) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  // Ungated shared expert (DeepSeek), sigmoid-gated one (Qwen2-MoE).
  // CHECK: moe.experts %[[X]], %[[I]], %[[W]] experts({{.+}}) shared({{.+}}) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>) -> tensor<?x64xf32>
  %y1 = moe.experts %x, %ids, %w experts(%g, %u, %d) shared(%sg, %su, %sd) : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>) -> tensor<?x64xf32>
  // CHECK: moe.experts %[[X]], %[[I]], %[[W]] experts({{.+}}) shared({{.+}}) shared_gate(%{{.+}}) {activation = #moe.act<swiglu_clamped>, limit = 1.000000e+01 : f32}
  %y2 = moe.experts %x, %ids, %w experts(%g, %u, %d) shared(%sg, %su, %sd) shared_gate(%gate) {activation = #moe.act<swiglu_clamped>, limit = 10.0 : f32} : (tensor<?x64xf32>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>, tensor<1x64xf32>) -> tensor<?x64xf32>
  return %y0, %y1, %y2 : tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>
}

// CHECK-LABEL: func.func @attention
func.func @attention(%q: tensor<2x?x8x64xbf16>, %k: tensor<2x?x2x64xbf16>, %v: tensor<2x?x2x32xbf16>, %kc: tensor<2x128x2x64xbf16>, %vc: tensor<2x128x2x32xbf16>, %p: tensor<2xi32>) -> (tensor<2x?x8x32xbf16>, tensor<2x128x2x64xbf16>, tensor<2x128x2x32xbf16>) {
  // CHECK: %{{.+}}, %{{.+}}, %{{.+}} = moe.attention %{{[^,]+}}, %{{[^,]+}}, %{{[^ ]+}} cache(%{{[^,]+}}, %{{[^)]+}}) at %{{[^ ]+}} {scale = 1.250000e-01 : f32, sliding_window = 64 : i64} : (tensor<2x?x8x64xbf16>, tensor<2x?x2x64xbf16>, tensor<2x?x2x32xbf16>, tensor<2x128x2x64xbf16>, tensor<2x128x2x32xbf16>, tensor<2xi32>) -> (tensor<2x?x8x32xbf16>, tensor<2x128x2x64xbf16>, tensor<2x128x2x32xbf16>)
  %o, %kc1, %vc1 = moe.attention %q, %k, %v cache(%kc, %vc) at %p {scale = 0.125 : f32, sliding_window = 64 : i64} : (tensor<2x?x8x64xbf16>, tensor<2x?x2x64xbf16>, tensor<2x?x2x32xbf16>, tensor<2x128x2x64xbf16>, tensor<2x128x2x32xbf16>, tensor<2xi32>) -> (tensor<2x?x8x32xbf16>, tensor<2x128x2x64xbf16>, tensor<2x128x2x32xbf16>)
  return %o, %kc1, %vc1 : tensor<2x?x8x32xbf16>, tensor<2x128x2x64xbf16>, tensor<2x128x2x32xbf16>
}

// CHECK-LABEL: func.func @mla
func.func @mla(%qn: tensor<1x?x16x32xf32>, %qp: tensor<1x?x16x16xf32>, %lat: tensor<1x?x64xf32>, %kp: tensor<1x?x16xf32>, %cache: tensor<1x128x80xf32>, %p: tensor<1xi32>) -> (tensor<1x?x16x24xf32>, tensor<1x128x80xf32>, tensor<1x?x16x24xf32>, tensor<1x128x80xf32>) {
  %kvb = moe.weight "self_attn.kv_b_proj.weight" : tensor<896x64xf32>
  %uk = moe.weight "w_uk" : tensor<16x32x64xf32>
  %uv = moe.weight "w_uv" : tensor<16x24x64xf32>
  // CHECK: %{{.+}}, %{{.+}} = moe.mla %{{[^,]+}}, %{{[^,]+}}, %{{[^,]+}}, %{{[^ ]+}} kv_b(%{{[^)]+}}) cache(%{{[^)]+}}) at %{{[^ ]+}} {scale = 1.352300e-01 : f32} : (tensor<1x?x16x32xf32>, tensor<1x?x16x16xf32>, tensor<1x?x64xf32>, tensor<1x?x16xf32>, tensor<896x64xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x?x16x24xf32>, tensor<1x128x80xf32>)
  %o, %c = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%cache) at %p {scale = 0.13523 : f32} : (tensor<1x?x16x32xf32>, tensor<1x?x16x16xf32>, tensor<1x?x64xf32>, tensor<1x?x16xf32>, tensor<896x64xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x?x16x24xf32>, tensor<1x128x80xf32>)
  // CHECK: %{{.+}}, %{{.+}} = moe.mla_absorbed %{{[^,]+}}, %{{[^,]+}}, %{{[^,]+}}, %{{[^ ]+}} w_uk(%{{[^)]+}}) w_uv(%{{[^)]+}}) cache(%{{[^)]+}}) at %{{[^ ]+}} {scale = 1.352300e-01 : f32} : (tensor<1x?x16x32xf32>, tensor<1x?x16x16xf32>, tensor<1x?x64xf32>, tensor<1x?x16xf32>, tensor<16x32x64xf32>, tensor<16x24x64xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x?x16x24xf32>, tensor<1x128x80xf32>)
  %o2, %c2 = moe.mla_absorbed %qn, %qp, %lat, %kp w_uk(%uk) w_uv(%uv) cache(%cache) at %p {scale = 0.13523 : f32} : (tensor<1x?x16x32xf32>, tensor<1x?x16x16xf32>, tensor<1x?x64xf32>, tensor<1x?x16xf32>, tensor<16x32x64xf32>, tensor<16x24x64xf32>, tensor<1x128x80xf32>, tensor<1xi32>) -> (tensor<1x?x16x24xf32>, tensor<1x128x80xf32>)
  return %o, %c, %o2, %c2 : tensor<1x?x16x24xf32>, tensor<1x128x80xf32>, tensor<1x?x16x24xf32>, tensor<1x128x80xf32>
}

// GPT-OSS: router bias in the logits, expert biases, clamped SwiGLU,
// attention sinks, RMSNorm weight applied in f32, untruncated YaRN.
// CHECK-LABEL: func.func @gpt_oss
func.func @gpt_oss(%x: tensor<?x64xbf16>, %h: tensor<1x?x4x16xbf16>, %pos: tensor<1x?xi32>, %kc: tensor<1x64x2x16xbf16>, %p: tensor<1xi32>, %k: tensor<1x?x2x16xbf16>) -> (tensor<?x64xbf16>, tensor<?x64xbf16>, tensor<1x?x4x16xbf16>, tensor<1x?x4x16xbf16>) {
  %g = moe.weight "router.weight" : tensor<8x64xbf16>
  %rb = moe.weight "router.bias" : tensor<8xf32>
  // CHECK: moe.route %{{[^,]+}}, %{{[^ ]+}} logit_bias(%{{[^)]+}}) {order = #moe.order<topk_then_softmax>, score = #moe.score<none>, top_k = 4 : i64} : (tensor<?x64xbf16>, tensor<8x64xbf16>, tensor<8xf32>) -> (tensor<?x4xi32>, tensor<?x4xf32>)
  %ids, %w = moe.route %x, %g logit_bias(%rb) {top_k = 4 : i64, score = #moe.score<none>, order = #moe.order<topk_then_softmax>} : (tensor<?x64xbf16>, tensor<8x64xbf16>, tensor<8xf32>) -> (tensor<?x4xi32>, tensor<?x4xf32>)
  %eg = moe.weight "experts.gate" : tensor<8x32x64xbf16>
  %eu = moe.weight "experts.up" : tensor<8x32x64xbf16>
  %ed = moe.weight "experts.down" : tensor<8x64x32xbf16>
  %bg = moe.weight "experts.gate_bias" : tensor<8x32xbf16>
  %bu = moe.weight "experts.up_bias" : tensor<8x32xbf16>
  %bd = moe.weight "experts.down_bias" : tensor<8x64xbf16>
  // CHECK: moe.experts %{{.+}} experts({{.+}}) biases(%{{[^,]+}}, %{{[^,]+}}, %{{[^)]+}}) {activation = #moe.act<swiglu_clamped>} : (tensor<?x64xbf16>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<8x32xbf16>, tensor<8x32xbf16>, tensor<8x64xbf16>) -> tensor<?x64xbf16>
  %y = moe.experts %x, %ids, %w experts(%eg, %eu, %ed) biases(%bg, %bu, %bd) {activation = #moe.act<swiglu_clamped>} : (tensor<?x64xbf16>, tensor<?x4xi32>, tensor<?x4xf32>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<8x32xbf16>, tensor<8x32xbf16>, tensor<8x64xbf16>) -> tensor<?x64xbf16>
  %nw = moe.weight "norm.weight" : tensor<64xbf16>
  // CHECK: moe.rms_norm %{{[^,]+}}, %{{[^ ]+}} eps(9.99999974E-6) {weight_in_f32} : tensor<?x64xbf16>, tensor<64xbf16>
  %n = moe.rms_norm %x, %nw eps(1.0e-5) {weight_in_f32} : tensor<?x64xbf16>, tensor<64xbf16>
  // CHECK: moe.rope %{{.+}} style = <half_split> rope = <theta = 1.500000e+05, scaling = yarn, factor = 3.200000e+01, original_max_position = 4096, truncate = false>
  %r = moe.rope %h, %pos style = <half_split> rope = <theta = 150000.0, scaling = yarn, factor = 32.0, original_max_position = 4096, truncate = false> : tensor<1x?x4x16xbf16>, tensor<1x?xi32>
  %sinks = moe.weight "self_attn.sinks" : tensor<4xbf16>
  // CHECK: moe.attention {{.+}} at %{{[^ ]+}} sinks(%{{[^)]+}}) {scale = 2.500000e-01 : f32, sliding_window = 128 : i64}
  %o, %kc1, %vc1 = moe.attention %r, %k, %k cache(%kc, %kc) at %p sinks(%sinks) {scale = 0.25 : f32, sliding_window = 128 : i64} : (tensor<1x?x4x16xbf16>, tensor<1x?x2x16xbf16>, tensor<1x?x2x16xbf16>, tensor<1x64x2x16xbf16>, tensor<1x64x2x16xbf16>, tensor<1xi32>, tensor<4xbf16>) -> (tensor<1x?x4x16xbf16>, tensor<1x64x2x16xbf16>, tensor<1x64x2x16xbf16>)
  return %y, %n, %r, %o : tensor<?x64xbf16>, tensor<?x64xbf16>, tensor<1x?x4x16xbf16>, tensor<1x?x4x16xbf16>
}

// CHECK-LABEL: func.func @fused_route_and_grouped_experts
func.func @fused_route_and_grouped_experts(%x: tensor<?x64xf32>, %b: tensor<8xf32>) -> tensor<?x64xf32> {
  %r = moe.weight "router" : tensor<8x64xf32>
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  %sg = moe.weight "sg" : tensor<128x64xf32>
  %sd = moe.weight "sd" : tensor<64x128xf32>
  %gate = moe.weight "gate" : tensor<1x64xf32>
  // CHECK: %[[I:.+]], %[[W:.+]], %[[O:.+]], %[[S:.+]] = moe.fused_route %{{.+}}, %{{.+}} bias(%{{.+}}) {n_group = 4 : i64, score = #moe.score<sigmoid>, tile = 4 : i64, top_k = 2 : i64, topk_group = 2 : i64} : (tensor<?x64xf32>, tensor<8x64xf32>, tensor<8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>, tensor<?xi32>)
  %ids, %w, %off, %slots = moe.fused_route %x, %r bias(%b) {top_k = 2 : i64, score = #moe.score<sigmoid>, n_group = 4 : i64, topk_group = 2 : i64, tile = 4 : i64} : (tensor<?x64xf32>, tensor<8x64xf32>, tensor<8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>, tensor<?xi32>)
  // CHECK: moe.grouped_experts %{{.+}}, %[[I]], %[[W]] permutation(%[[O]], %[[S]]) experts(%{{.+}}, %{{.+}}, %{{.+}}) shared(%{{.+}}, %{{.+}}, %{{.+}}) shared_gate(%{{.+}}) {gemv_max_tokens = 8 : i64, tile = 4 : i64}
  %y = moe.grouped_experts %x, %ids, %w permutation(%off, %slots) experts(%g, %g, %d) shared(%sg, %sg, %sd) shared_gate(%gate) {tile = 4 : i64, gemv_max_tokens = 8 : i64} : (tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>, tensor<?xi32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>, tensor<1x64xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @linear
func.func @linear(%x: tensor<?x64xbf16>, %r: tensor<?x32xbf16>) -> (tensor<?x32xbf16>, tensor<?x32xf32>) {
  %w = moe.weight "w" : tensor<32x64xbf16>
  %b = moe.weight "b" : tensor<32xbf16>
  %n = moe.weight "n" : tensor<64xbf16>
  // CHECK: moe.linear %{{.+}}, %{{.+}} bias(%{{.+}}) norm(%{{.+}}) residual(%{{.+}}) {norm_eps = 9.99999997E-7 : f32, norm_weight_in_f32} : (tensor<?x64xbf16>, tensor<32x64xbf16>, tensor<32xbf16>, tensor<64xbf16>, tensor<?x32xbf16>) -> tensor<?x32xbf16>
  %y = moe.linear %x, %w bias(%b) norm(%n) residual(%r) {norm_eps = 1.0e-6 : f32, norm_weight_in_f32} : (tensor<?x64xbf16>, tensor<32x64xbf16>, tensor<32xbf16>, tensor<64xbf16>, tensor<?x32xbf16>) -> tensor<?x32xbf16>
  // CHECK: moe.linear %{{.+}}, %{{.+}} : (tensor<?x64xbf16>, tensor<32x64xbf16>) -> tensor<?x32xf32>
  %z = moe.linear %x, %w : (tensor<?x64xbf16>, tensor<32x64xbf16>) -> tensor<?x32xf32>
  return %y, %z : tensor<?x32xbf16>, tensor<?x32xf32>
}

// CHECK-LABEL: func.func @attention_rope
func.func @attention_rope(%q: tensor<1x4x2x8xf32>, %k: tensor<1x4x2x8xf32>, %v: tensor<1x4x2x8xf32>, %pos: tensor<1x4xi32>, %kc: tensor<1x8x2x8xf32>, %vc: tensor<1x8x2x8xf32>, %p: tensor<1xi32>) -> tensor<1x4x2x8xf32> {
  // CHECK: moe.attention %{{.+}}, %{{.+}}, %{{.+}} cache(%{{.+}}, %{{.+}}) at %{{.+}} rope(%{{.+}}) {rope = #moe.rope<theta = 5.000000e+05>, rope_style = #moe.rope_style<interleaved>, scale = 3.500000e-01 : f32}
  %a, %kc2, %vc2 = moe.attention %q, %k, %v cache(%kc, %vc) at %p rope(%pos) {scale = 0.35 : f32, rope_style = #moe.rope_style<interleaved>, rope = #moe.rope<theta = 5.0e5>} : (tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x8x2x8xf32>, tensor<1x8x2x8xf32>, tensor<1xi32>, tensor<1x4xi32>) -> (tensor<1x4x2x8xf32>, tensor<1x8x2x8xf32>, tensor<1x8x2x8xf32>)
  return %a : tensor<1x4x2x8xf32>
}

// CHECK-LABEL: func.func @mla_rope
func.func @mla_rope(%qn: tensor<1x4x2x16xf32>, %qp: tensor<1x4x2x8xf32>, %lat: tensor<1x4x32xf32>, %kp: tensor<1x4x8xf32>, %pos: tensor<1x4xi32>, %c: tensor<1x16x40xf32>, %p: tensor<1xi32>, %uk: tensor<2x16x32xf32>) -> tensor<1x4x2x16xf32> {
  %kvb = moe.weight "kv_b" : tensor<64x32xf32>
  // CHECK: moe.mla %{{.+}} kv_b(%{{.+}}) cache(%{{.+}}) at %{{.+}} rope(%{{.+}}) {rope = #moe.rope<theta = 5.000000e+04>, rope_style = #moe.rope_style<interleaved>, scale = 2.000000e-01 : f32}
  %o, %c2 = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c) at %p rope(%pos) {scale = 0.2 : f32, rope_style = #moe.rope_style<interleaved>, rope = #moe.rope<theta = 5.0e4>} : (tensor<1x4x2x16xf32>, tensor<1x4x2x8xf32>, tensor<1x4x32xf32>, tensor<1x4x8xf32>, tensor<64x32xf32>, tensor<1x16x40xf32>, tensor<1xi32>, tensor<1x4xi32>) -> (tensor<1x4x2x16xf32>, tensor<1x16x40xf32>)
  // CHECK: moe.mla_absorbed %{{.+}} cache(%{{.+}}) at %{{.+}} rope(%{{.+}}) {rope = #moe.rope<theta = 5.000000e+04>, rope_style = #moe.rope_style<interleaved>, scale = 2.000000e-01 : f32}
  %o2, %c3 = moe.mla_absorbed %qn, %qp, %lat, %kp w_uk(%uk) w_uv(%uk) cache(%c) at %p rope(%pos) {scale = 0.2 : f32, rope_style = #moe.rope_style<interleaved>, rope = #moe.rope<theta = 5.0e4>} : (tensor<1x4x2x16xf32>, tensor<1x4x2x8xf32>, tensor<1x4x32xf32>, tensor<1x4x8xf32>, tensor<2x16x32xf32>, tensor<2x16x32xf32>, tensor<1x16x40xf32>, tensor<1xi32>, tensor<1x4xi32>) -> (tensor<1x4x2x16xf32>, tensor<1x16x40xf32>)
  return %o : tensor<1x4x2x16xf32>
}
