// Bad input: one diagnostic naming file, line and op; non-zero exit; no
// output file left behind.
// RUN: rm -f %t.out
// RUN: not moec %s -o %t.out 2>&1 | FileCheck %s
// RUN: test ! -e %t.out

// Conflicting weight references are caught before anything is written.
// RUN: not moec %S/../../Inputs/weight-conflict.mlir -o %t.out 2>&1 | FileCheck %s --check-prefix=CONFLICT
// RUN: test ! -e %t.out
// CONFLICT: weight-conflict.mlir:4:8: error: weight 'w' is used as 'tensor<8x4xf32>' here but as 'tensor<4x8xf32>' before

// Folders that are not checkpoints, and missing files.
// RUN: not moec %S -o %t.out 2>&1 | FileCheck %s --check-prefix=DIR
// DIR: moec: error: {{.*}}moec: is not a Hugging Face checkpoint folder (it has no config.json)
// RUN: not moec %t.missing.mlir 2>&1 | FileCheck %s --check-prefix=MISSING
// MISSING: moec: error: cannot open input file '{{.*}}.missing.mlir'

// CHECK: errors.mlir:[[@LINE+4]]:12: error: 'moe.route' op 'top_k' (9) must be in [1, E = 8]
// CHECK-NOT: see current operation
func.func @bad(%x: tensor<?x64xf32>) -> (tensor<?x9xi32>, tensor<?x9xf32>) {
  %g = moe.weight "gate" : tensor<8x64xf32>
  %i, %w = moe.route %x, %g {top_k = 9 : i64, score = #moe.score<softmax>} : (tensor<?x64xf32>, tensor<8x64xf32>) -> (tensor<?x9xi32>, tensor<?x9xf32>)
  return %i, %w : tensor<?x9xi32>, tensor<?x9xf32>
}
