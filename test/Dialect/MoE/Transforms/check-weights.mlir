// RUN: moe-opt %s -moe-check-weights -split-input-file -verify-diagnostics | FileCheck %s
// RUN: moe-opt %s -moe-check-weights="list-weights" -split-input-file -verify-diagnostics -o /dev/null 2>&1 | FileCheck %s --check-prefix=LIST

// Consistent references pass unchanged; the manifest lists each name once,
// in first-use order, across functions.
// CHECK-LABEL: func.func @layer0
// CHECK: moe.weight "model.layers.0.mlp.gate.weight" : tensor<16x64xf32>
// LIST: model.layers.0.mlp.gate.weight: tensor<16x64xf32>
// LIST-NEXT: model.norm.weight: tensor<64xbf16>
// LIST-NOT: model.layers.0.mlp.gate.weight
func.func @layer0() -> (tensor<16x64xf32>, tensor<64xbf16>) {
  %a = moe.weight "model.layers.0.mlp.gate.weight" : tensor<16x64xf32>
  %b = moe.weight "model.norm.weight" : tensor<64xbf16>
  return %a, %b : tensor<16x64xf32>, tensor<64xbf16>
}
// CHECK-LABEL: func.func @layer0_again
func.func @layer0_again() -> tensor<16x64xf32> {
  %a = moe.weight "model.layers.0.mlp.gate.weight" : tensor<16x64xf32>
  return %a : tensor<16x64xf32>
}

// -----

// Same name, other shape.
func.func @shape_conflict() -> (tensor<4x8xf32>, tensor<8x4xf32>) {
  // expected-note @+1 {{first used here}}
  %a = moe.weight "w" : tensor<4x8xf32>
  // expected-error @+1 {{weight 'w' is used as 'tensor<8x4xf32>' here but as 'tensor<4x8xf32>' before}}
  %b = moe.weight "w" : tensor<8x4xf32>
  return %a, %b : tensor<4x8xf32>, tensor<8x4xf32>
}

// -----

// Same name, other element type, in another function.
func.func @first() -> tensor<4xf32> {
  // expected-note @+1 {{first used here}}
  %a = moe.weight "model.norm.weight" : tensor<4xf32>
  return %a : tensor<4xf32>
}
func.func @second() -> tensor<4xbf16> {
  // expected-error @+1 {{weight 'model.norm.weight' is used as 'tensor<4xbf16>' here but as 'tensor<4xf32>' before}}
  %a = moe.weight "model.norm.weight" : tensor<4xbf16>
  return %a : tensor<4xbf16>
}

// -----

// A stacked reference and a single one must agree on each tensor's type.
func.func @stacked_conflict() -> (tensor<2x4xf32>, tensor<8xf32>) {
  // expected-note @+1 {{first used here}}
  %s = moe.stacked_weight ["e0", "e1"] : tensor<2x4xf32>
  // expected-error @+1 {{weight 'e1' is used as 'tensor<8xf32>' here but as 'tensor<4xf32>' before}}
  %w = moe.weight "e1" : tensor<8xf32>
  return %s, %w : tensor<2x4xf32>, tensor<8xf32>
}
