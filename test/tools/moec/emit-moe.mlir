// moec --emit=moe: weights checked, program canonicalized, printed.
// RUN: moec %s | FileCheck %s
// RUN: moec %s --emit=moe -o %t.mlir && FileCheck %s --input-file=%t.mlir
// RUN: moec %s --print-pipeline | FileCheck %s --check-prefix=PIPELINE

// PIPELINE: moe-check-weights{list-weights=false},canonicalize{{.*}},cse

// CHECK-LABEL: func.func @router
// The group limit keeps every group, so canonicalization drops it.
// CHECK: moe.route %{{.+}}, %{{.+}} {score = #moe.score<softmax>, top_k = 2 : i64}
// CHECK-NOT: moe.weight "unused"
func.func @router(%x: tensor<?x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %g = moe.weight "gate" : tensor<8x64xf32>
  %unused = moe.weight "unused" : tensor<8x64xf32>
  %i, %w = moe.route %x, %g {top_k = 2 : i64, score = #moe.score<softmax>, n_group = 2 : i64, topk_group = 2 : i64} : (tensor<?x64xf32>, tensor<8x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return %i, %w : tensor<?x2xi32>, tensor<?x2xf32>
}
