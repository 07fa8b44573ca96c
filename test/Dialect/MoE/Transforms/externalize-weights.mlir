// RUN: moe-opt %s -moe-externalize-weights -split-input-file -verify-diagnostics | FileCheck %s

// Each distinct weight becomes one external, constant memref global (no
// initial value: the loader binds it); uses read it through a restrict,
// non-writable tensor view; the module lists symbol -> tensor names.
// CHECK: module attributes {moe.weights = {moe_w_model_norm_weight_[[$H1:[0-9a-f]+]] = ["model.norm.weight"], moe_ws_e_0_x2_[[$H2:[0-9a-f]+]] = ["e.0", "e.1"]}}
// CHECK-DAG: memref.global "public" constant @moe_w_model_norm_weight_[[$H1]] : memref<64xbf16>
// CHECK-DAG: memref.global "public" constant @moe_ws_e_0_x2_[[$H2]] : memref<2x4x8xf32>
// CHECK-LABEL: func.func @f
// CHECK: %[[G:.+]] = memref.get_global @moe_w_model_norm_weight_[[$H1]] : memref<64xbf16>
// CHECK: bufferization.to_tensor %[[G]] restrict : memref<64xbf16> to tensor<64xbf16>
// CHECK: memref.get_global @moe_ws_e_0_x2_[[$H2]]
// CHECK-NOT: moe.weight
func.func @f() -> (tensor<64xbf16>, tensor<64xbf16>, tensor<2x4x8xf32>) {
  %a = moe.weight "model.norm.weight" : tensor<64xbf16>
  %b = moe.weight "model.norm.weight" : tensor<64xbf16>
  %s = moe.stacked_weight ["e.0", "e.1"] : tensor<2x4x8xf32>
  return %a, %b, %s : tensor<64xbf16>, tensor<64xbf16>, tensor<2x4x8xf32>
}

// -----

func.func @conflict() -> (tensor<4xf32>, tensor<8xf32>) {
  %a = moe.weight "w" : tensor<4xf32>
  // expected-error @+1 {{weight 'w' is referenced with two types (run -moe-check-weights for details)}}
  %b = moe.weight "w" : tensor<8xf32>
  return %a, %b : tensor<4xf32>, tensor<8xf32>
}
