// RUN: moe-opt %s -canonicalize="test-convergence" -split-input-file | FileCheck %s

// Keeping every group masks nothing: the group limit is dropped.
// CHECK-LABEL: func.func @all_groups_kept
// CHECK: moe.route %{{.+}}, %{{.+}} bias(%{{.+}}) {renorm = #moe.renorm<sum>, score = #moe.score<sigmoid>, top_k = 4 : i64} :
func.func @all_groups_kept(%x: tensor<?x64xf32>, %g: tensor<16x64xf32>, %b: tensor<16xf32>) -> (tensor<?x4xi32>, tensor<?x4xf32>) {
  %i, %w = moe.route %x, %g bias(%b) {top_k = 4 : i64, score = #moe.score<sigmoid>, n_group = 4 : i64, topk_group = 4 : i64, group_score = #moe.group_score<top2_sum>, renorm = #moe.renorm<sum>} : (tensor<?x64xf32>, tensor<16x64xf32>, tensor<16xf32>) -> (tensor<?x4xi32>, tensor<?x4xf32>)
  return %i, %w : tensor<?x4xi32>, tensor<?x4xf32>
}

// -----

// A group score without groups means nothing: canonicalized to max.
// CHECK-LABEL: func.func @group_score_without_groups
// CHECK: moe.route %{{.+}}, %{{.+}} bias(%{{.+}}) {score = #moe.score<sigmoid>, top_k = 4 : i64} :
func.func @group_score_without_groups(%x: tensor<?x64xf32>, %g: tensor<16x64xf32>, %b: tensor<16xf32>) -> (tensor<?x4xi32>, tensor<?x4xf32>) {
  %i, %w = moe.route %x, %g bias(%b) {top_k = 4 : i64, score = #moe.score<sigmoid>, group_score = #moe.group_score<top2_sum>} : (tensor<?x64xf32>, tensor<16x64xf32>, tensor<16xf32>) -> (tensor<?x4xi32>, tensor<?x4xf32>)
  return %i, %w : tensor<?x4xi32>, tensor<?x4xf32>
}

// -----

// Dropping groups changes the selection: left alone.
// CHECK-LABEL: func.func @some_groups_dropped
// CHECK: moe.route {{.+}}group_score = #moe.group_score<top2_sum>, n_group = 4 : i64{{.+}}topk_group = 2 : i64
func.func @some_groups_dropped(%x: tensor<?x64xf32>, %g: tensor<16x64xf32>, %b: tensor<16xf32>) -> (tensor<?x4xi32>, tensor<?x4xf32>) {
  %i, %w = moe.route %x, %g bias(%b) {top_k = 4 : i64, score = #moe.score<sigmoid>, n_group = 4 : i64, topk_group = 2 : i64, group_score = #moe.group_score<top2_sum>} : (tensor<?x64xf32>, tensor<16x64xf32>, tensor<16xf32>) -> (tensor<?x4xi32>, tensor<?x4xf32>)
  return %i, %w : tensor<?x4xi32>, tensor<?x4xf32>
}

// -----

// A softmax over the k selected logits already sums to one.
// CHECK-LABEL: func.func @renorm_after_softmax
// CHECK: moe.route %{{.+}}, %{{.+}} {order = #moe.order<topk_then_softmax>, score = #moe.score<none>, top_k = 2 : i64} :
func.func @renorm_after_softmax(%x: tensor<?x64xf32>, %g: tensor<16x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %i, %w = moe.route %x, %g {top_k = 2 : i64, score = #moe.score<none>, order = #moe.order<topk_then_softmax>, renorm = #moe.renorm<sum>} : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return %i, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// -----

// With an epsilon the division is not exactly a no-op: left alone.
// CHECK-LABEL: func.func @renorm_with_eps_after_softmax
// CHECK: moe.route {{.+}}renorm = #moe.renorm<sum>, renorm_eps = 9.99999997E-7 : f32
func.func @renorm_with_eps_after_softmax(%x: tensor<?x64xf32>, %g: tensor<16x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %i, %w = moe.route %x, %g {top_k = 2 : i64, score = #moe.score<none>, order = #moe.order<topk_then_softmax>, renorm = #moe.renorm<sum>, renorm_eps = 1.0e-6 : f32} : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return %i, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// -----

// Renormalising softmax scores taken before the top-k is not a no-op.
// CHECK-LABEL: func.func @renorm_after_topk_of_softmax
// CHECK: moe.route {{.+}}renorm = #moe.renorm<sum>, score = #moe.score<softmax>
func.func @renorm_after_topk_of_softmax(%x: tensor<?x64xf32>, %g: tensor<16x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %i, %w = moe.route %x, %g {top_k = 2 : i64, score = #moe.score<softmax>, renorm = #moe.renorm<sum>} : (tensor<?x64xf32>, tensor<16x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return %i, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// -----

// Weight references are pure: an unused one is erased.
// CHECK-LABEL: func.func @unused_weight
// CHECK-NEXT: %[[W:.+]] = moe.weight "used"
// CHECK-NEXT: return %[[W]]
func.func @unused_weight() -> tensor<4xf32> {
  %a = moe.weight "used" : tensor<4xf32>
  %unused = moe.weight "unused" : tensor<8xf32>
  return %a : tensor<4xf32>
}
