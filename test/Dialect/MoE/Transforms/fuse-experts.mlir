// RUN: moe-opt %s -moe-fuse-experts -split-input-file | FileCheck %s
// RUN: moe-opt %s -moe-fuse-experts=gemv-max-tokens=0 -split-input-file | FileCheck %s --check-prefix=NOGEMV

// Experts routed by moe.fused_route run as grouped GEMMs over its
// permutation; the shared expert and its gate come along, the tile comes
// from the route.
// CHECK-LABEL: func.func @grouped
// CHECK: %[[IDS:.+]], %[[W:.+]], %[[OFF:.+]], %[[SLOTS:.+]] = moe.fused_route
// CHECK: moe.grouped_experts %{{.+}}, %[[IDS]], %[[W]] permutation(%[[OFF]], %[[SLOTS]]) experts(%{{.+}}, %{{.+}}, %{{.+}}) shared(%{{.+}}, %{{.+}}, %{{.+}}) shared_gate(%{{.+}}) {tile = 4 : i64}
// CHECK-NOT: moe.experts
// NOGEMV-LABEL: func.func @grouped
// NOGEMV: moe.grouped_experts {{.*}} {gemv_max_tokens = 0 : i64, tile = 4 : i64}
func.func @grouped(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = moe.weight "router" : tensor<8x64xf32>
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  %sg = moe.weight "sg" : tensor<128x64xf32>
  %sd = moe.weight "sd" : tensor<64x128xf32>
  %gate = moe.weight "gate" : tensor<1x64xf32>
  %ids, %w, %off, %slots = moe.fused_route %x, %r {top_k = 2 : i64, score = #moe.score<softmax>, tile = 4 : i64} : (tensor<?x64xf32>, tensor<8x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>, tensor<?xi32>)
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) shared(%sg, %sg, %sd) shared_gate(%gate) : (tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>, tensor<1x64xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// GPT-OSS-style experts keep their biases and clamped activation.
// CHECK-LABEL: func.func @clamped
// CHECK: moe.grouped_experts {{.*}} biases(%{{.+}}, %{{.+}}, %{{.+}}) {activation = #moe.act<swiglu_clamped>, limit = 1.000000e+01 : f32}
func.func @clamped(%x: tensor<?x64xbf16>) -> tensor<?x64xbf16> {
  %r = moe.weight "router" : tensor<8x64xbf16>
  %g = moe.weight "g" : tensor<8x32x64xbf16>
  %d = moe.weight "d" : tensor<8x64x32xbf16>
  %gb = moe.weight "gb" : tensor<8x32xbf16>
  %db = moe.weight "db" : tensor<8x64xbf16>
  %ids, %w, %off, %slots = moe.fused_route %x, %r {top_k = 2 : i64, score = #moe.score<none>, order = #moe.order<topk_then_softmax>} : (tensor<?x64xbf16>, tensor<8x64xbf16>) -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>, tensor<?xi32>)
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) biases(%gb, %gb, %db) {activation = #moe.act<swiglu_clamped>, limit = 10.0 : f32} : (tensor<?x64xbf16>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<8x32xbf16>, tensor<8x32xbf16>, tensor<8x64xbf16>) -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// Experts routed by a plain moe.route are left alone: there is no
// permutation to group by.
// CHECK-LABEL: func.func @unfused_route
// CHECK: moe.route
// CHECK: moe.experts
// CHECK-NOT: moe.grouped_experts
func.func @unfused_route(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = moe.weight "router" : tensor<8x64xf32>
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  %ids, %w = moe.route %x, %r {top_k = 2 : i64, score = #moe.score<softmax>} : (tensor<?x64xf32>, tensor<8x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) : (tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Ids and weights from two different routes cannot share one permutation.
// CHECK-LABEL: func.func @mixed_routes
// CHECK: moe.experts
// CHECK-NOT: moe.grouped_experts
func.func @mixed_routes(%x: tensor<?x64xf32>, %w2: tensor<?x2xf32>) -> tensor<?x64xf32> {
  %r = moe.weight "router" : tensor<8x64xf32>
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  %ids, %w, %off, %slots = moe.fused_route %x, %r {top_k = 2 : i64, score = #moe.score<softmax>} : (tensor<?x64xf32>, tensor<8x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>, tensor<?xi32>)
  %y = moe.experts %x, %ids, %w2 experts(%g, %g, %d) : (tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
