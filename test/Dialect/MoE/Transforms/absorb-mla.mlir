// RUN: moe-opt %s -moe-absorb-mla -split-input-file | FileCheck %s
// RUN: moe-opt %s -moe-absorb-mla=max-absorbed-tokens=0 -split-input-file | FileCheck %s --check-prefix=NEVER

// DeepSeek-V3 head sizes (R = 512, Dn = Dv = 128): the absorbed form is
// cheaper for S < 512 * 256 / (1024 - 256), i.e. S <= 170. A dynamic S
// gets both forms behind a run-time test; W_UK and W_UV are views of
// kv_b's per-head row blocks.
// CHECK-LABEL: func.func @dynamic
// CHECK: %[[HEADS:.+]] = tensor.expand_shape %{{.+}} {{\[\[}}0, 1], [2]] output_shape [2, 256, 512] : tensor<512x512xbf16> into tensor<2x256x512xbf16>
// CHECK-DAG: %[[UK:.+]] = tensor.extract_slice %[[HEADS]][0, 0, 0] [2, 128, 512] [1, 1, 1]
// CHECK-DAG: %[[UV:.+]] = tensor.extract_slice %[[HEADS]][0, 128, 0] [2, 128, 512] [1, 1, 1]
// CHECK-DAG: %[[S:.+]] = tensor.dim %{{.+}}, %c1
// CHECK-DAG: %[[LIMIT:.+]] = arith.constant 170 : index
// CHECK: %[[FEW:.+]] = arith.cmpi ule, %[[S]], %[[LIMIT]]
// CHECK: scf.if %[[FEW]]
// CHECK: moe.mla_absorbed {{.*}} w_uk(%[[UK]]) w_uv(%[[UV]])
// CHECK: } else {
// CHECK: moe.mla {{.*}}kv_b(
// NEVER-LABEL: func.func @dynamic
// NEVER: arith.constant 0 : index
// NEVER: scf.if
func.func @dynamic(%qn: tensor<1x?x2x128xbf16>, %qp: tensor<1x?x2x64xbf16>, %lat: tensor<1x?x512xbf16>, %kp: tensor<1x?x64xbf16>, %c: tensor<1x256x576xbf16>, %p: tensor<1xi32>) -> (tensor<1x?x2x128xbf16>, tensor<1x256x576xbf16>) {
  %kvb = moe.weight "kv_b" : tensor<512x512xbf16>
  %o, %c2 = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c) at %p {scale = 0.1352 : f32} : (tensor<1x?x2x128xbf16>, tensor<1x?x2x64xbf16>, tensor<1x?x512xbf16>, tensor<1x?x64xbf16>, tensor<512x512xbf16>, tensor<1x256x576xbf16>, tensor<1xi32>) -> (tensor<1x?x2x128xbf16>, tensor<1x256x576xbf16>)
  return %o, %c2 : tensor<1x?x2x128xbf16>, tensor<1x256x576xbf16>
}

// -----

// A static decode step (S = 1) takes the absorbed form outright.
// CHECK-LABEL: func.func @decode
// CHECK-NOT: scf.if
// CHECK: moe.mla_absorbed
// CHECK-NOT: moe.mla 
// NEVER-LABEL: func.func @decode
// NEVER: moe.mla {{.*}}kv_b(
func.func @decode(%qn: tensor<1x1x2x16xf32>, %qp: tensor<1x1x2x16xf32>, %lat: tensor<1x1x32xf32>, %kp: tensor<1x1x16xf32>, %c: tensor<1x32x48xf32>, %p: tensor<1xi32>) -> (tensor<1x1x2x16xf32>, tensor<1x32x48xf32>) {
  %kvb = moe.weight "kv_b" : tensor<64x32xf32>
  %o, %c2 = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c) at %p {scale = 0.17 : f32} : (tensor<1x1x2x16xf32>, tensor<1x1x2x16xf32>, tensor<1x1x32xf32>, tensor<1x1x16xf32>, tensor<64x32xf32>, tensor<1x32x48xf32>, tensor<1xi32>) -> (tensor<1x1x2x16xf32>, tensor<1x32x48xf32>)
  return %o, %c2 : tensor<1x1x2x16xf32>, tensor<1x32x48xf32>
}

// -----

// A static prefill of 512 tokens keeps the naive form: expanding each
// cached latent once is cheaper than absorbing 512 queries.
// CHECK-LABEL: func.func @long_prefill
// CHECK-NOT: moe.mla_absorbed
// CHECK: moe.mla {{.*}}kv_b(
func.func @long_prefill(%qn: tensor<1x512x2x128xbf16>, %qp: tensor<1x512x2x64xbf16>, %lat: tensor<1x512x512xbf16>, %kp: tensor<1x512x64xbf16>, %c: tensor<1x1024x576xbf16>, %p: tensor<1xi32>) -> (tensor<1x512x2x128xbf16>, tensor<1x1024x576xbf16>) {
  %kvb = moe.weight "kv_b" : tensor<512x512xbf16>
  %o, %c2 = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c) at %p {scale = 0.1352 : f32} : (tensor<1x512x2x128xbf16>, tensor<1x512x2x64xbf16>, tensor<1x512x512xbf16>, tensor<1x512x64xbf16>, tensor<512x512xbf16>, tensor<1x1024x576xbf16>, tensor<1xi32>) -> (tensor<1x512x2x128xbf16>, tensor<1x1024x576xbf16>)
  return %o, %c2 : tensor<1x512x2x128xbf16>, tensor<1x1024x576xbf16>
}
