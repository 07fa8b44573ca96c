// RUN: moe-opt %s -moe-fuse-routing -split-input-file | FileCheck %s
// RUN: moe-opt %s -moe-fuse-routing=tile=4 -split-input-file | FileCheck %s --check-prefix=TILE4

// A router feeding experts becomes one fused kernel with the permutation;
// every routing attribute is kept (the default tile, 16, is not printed)
// and the experts read the same ids and weights.
// CHECK-LABEL: func.func @fused
// CHECK: %[[IDS:.+]], %[[W:.+]], %{{.+}}, %{{.+}} = moe.fused_route %{{.+}}, %{{.+}} bias(%{{.+}}) {group_score = #moe.group_score<top2_sum>, n_group = 4 : i64, renorm = #moe.renorm<sum>, scaling_factor = 2.500000e+00 : f32, score = #moe.score<sigmoid>, top_k = 2 : i64, topk_group = 2 : i64}
// CHECK-SAME: -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>, tensor<?xi32>)
// CHECK-NOT: moe.route
// CHECK: moe.experts %{{.+}}, %[[IDS]], %[[W]]
// TILE4-LABEL: func.func @fused
// TILE4: moe.fused_route {{.*}}tile = 4 : i64
func.func @fused(%x: tensor<?x64xf32>, %b: tensor<8xf32>) -> tensor<?x64xf32> {
  %r = moe.weight "router" : tensor<8x64xf32>
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xf32>
  %ids, %w = moe.route %x, %r bias(%b) {top_k = 2 : i64, score = #moe.score<sigmoid>, n_group = 4 : i64, topk_group = 2 : i64, group_score = #moe.group_score<top2_sum>, renorm = #moe.renorm<sum>, scaling_factor = 2.5 : f32} : (tensor<?x64xf32>, tensor<8x64xf32>, tensor<8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) : (tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// With a static token count the permutation has T * k + E * (tile - 1)
// entries: 3 * 2 + 8 * 15 = 126 (tile 16), 3 * 2 + 8 * 3 = 30 (tile 4).
// CHECK-LABEL: func.func @static_tokens
// CHECK: moe.fused_route {{.*}} -> (tensor<3x2xi32>, tensor<3x2xf32>, tensor<9xi32>, tensor<126xi32>)
// TILE4-LABEL: func.func @static_tokens
// TILE4: -> (tensor<3x2xi32>, tensor<3x2xf32>, tensor<9xi32>, tensor<30xi32>)
func.func @static_tokens(%x: tensor<3x64xbf16>) -> tensor<3x64xbf16> {
  %r = moe.weight "router" : tensor<8x64xbf16>
  %g = moe.weight "g" : tensor<8x32x64xbf16>
  %d = moe.weight "d" : tensor<8x64x32xbf16>
  %ids, %w = moe.route %x, %r {top_k = 2 : i64, score = #moe.score<softmax>} : (tensor<3x64xbf16>, tensor<8x64xbf16>) -> (tensor<3x2xi32>, tensor<3x2xf32>)
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) : (tensor<3x64xbf16>, tensor<3x2xi32>, tensor<3x2xf32>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<3x64xbf16>
  return %y : tensor<3x64xbf16>
}

// -----

// A router whose results no moe.experts reads is left alone: nobody would
// read the permutation.
// CHECK-LABEL: func.func @route_only
// CHECK: moe.route
// CHECK-NOT: moe.fused_route
func.func @route_only(%x: tensor<?x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %r = moe.weight "router" : tensor<8x64xf32>
  %ids, %w = moe.route %x, %r {top_k = 2 : i64, score = #moe.score<softmax>} : (tensor<?x64xf32>, tensor<8x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}
