// RUN: moe-opt %s -moe-use-runtime-kernels -split-input-file | FileCheck %s

// The fused router and the grouped experts become kernel calls: operands as
// read-only buffers cast to fully dynamic strided memrefs, results as fresh
// buffers turned into tensors after the call. The permutation is produced
// (sized T * k + E * (tile - 1)) but the experts kernel groups on its own.
// CHECK-DAG: func.func private @moert_route_bf16_bf16(memref<?x?xbf16, strided<[?, ?], offset: ?>>, memref<?x?xbf16, strided<[?, ?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>, memref<?xf32, strided<[?], offset: ?>>, memref<?x?xi32, strided<[?, ?], offset: ?>>, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?xi32, strided<[?], offset: ?>>, memref<?xi32, strided<[?], offset: ?>>, i64, i64, i64, i64, i64, f32, f32) attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @moert_experts_bf16_bf16({{.*}}) attributes {llvm.emit_c_interface}
// CHECK-LABEL: func.func @clamped
// CHECK-DAG: %[[ONE:.+]] = arith.constant 1 : i64
// CHECK-DAG: %[[TILE:.+]] = arith.constant 4 : i64
// CHECK-DAG: %[[PAD:.+]] = arith.constant 24 : index
// CHECK: %[[X:.+]] = bufferization.to_buffer %{{.+}} read_only : tensor<?x64xbf16> to memref<?x64xbf16, strided<[?, ?], offset: ?>>
// CHECK: memref.cast %[[X]] : memref<?x64xbf16, strided<[?, ?], offset: ?>> to memref<?x?xbf16, strided<[?, ?], offset: ?>>
// CHECK: %[[NOBIAS:.+]] = memref.alloca() : memref<0xf32>
// CHECK: %[[IDS:.+]] = memref.alloc(%{{.+}}) : memref<?x2xi32>
// CHECK: %[[SLOTCOUNT:.+]] = arith.addi %{{.+}}, %[[PAD]] : index
// CHECK: memref.alloc(%[[SLOTCOUNT]]) : memref<?xi32>
// score none (2), top-k then softmax and rounded logits (flags 1 | 8),
// one group, tile 4
// CHECK: call @moert_route_bf16_bf16({{.*}}, %c2_i64, %c9_i64, %[[ONE]], %[[ONE]], %[[TILE]], %{{.+}}, %{{.+}})
// CHECK: %[[IDT:.+]] = bufferization.to_tensor %[[IDS]] restrict writable : memref<?x2xi32> to tensor<?x2xi32>
// CHECK: bufferization.to_buffer %[[IDT]] read_only
// CHECK: %[[OUT:.+]] = memref.alloc(%{{.+}}) : memref<?x64xbf16>
// the clamped activation (1), alpha, limit, beta
// CHECK: call @moert_experts_bf16_bf16({{.*}}, %[[ONE]], %cst{{.*}}, %cst{{.*}}, %cst{{.*}})
// CHECK: %[[Y:.+]] = bufferization.to_tensor %[[OUT]] restrict writable
// CHECK: return %[[Y]]
// CHECK-NOT: moe.fused_route
// CHECK-NOT: moe.grouped_experts
func.func @clamped(%x: tensor<?x64xbf16>) -> tensor<?x64xbf16> {
  %r = moe.weight "router" : tensor<8x64xbf16>
  %g = moe.weight "g" : tensor<8x32x64xbf16>
  %d = moe.weight "d" : tensor<8x64x32xbf16>
  %gb = moe.weight "gb" : tensor<8x32xbf16>
  %db = moe.weight "db" : tensor<8x64xbf16>
  %ids, %w, %off, %slots = moe.fused_route %x, %r {top_k = 2 : i64, score = #moe.score<none>, order = #moe.order<topk_then_softmax>, round_logits, tile = 4 : i64} : (tensor<?x64xbf16>, tensor<8x64xbf16>) -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>, tensor<?xi32>)
  %y = moe.grouped_experts %x, %ids, %w permutation(%off, %slots) experts(%g, %g, %d) biases(%gb, %gb, %db) {activation = #moe.act<swiglu_clamped>, limit = 10.0 : f32, tile = 4 : i64} : (tensor<?x64xbf16>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>, tensor<?xi32>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<8x32xbf16>, tensor<8x32xbf16>, tensor<8x64xbf16>) -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// A projection with its norm prologue (an f32 norm weight: flags 1 | 4)
// and residual; the absent bias is an empty buffer.
// CHECK-LABEL: func.func @linear
// CHECK: %[[NOBIAS:.+]] = memref.alloca() : memref<0xbf16>
// CHECK: memref.cast %[[NOBIAS]] : memref<0xbf16> to memref<?xbf16, strided<[?], offset: ?>>
// CHECK: %[[OUT:.+]] = memref.alloc(%{{.+}}) : memref<?x32xf16>
// CHECK: call @moert_linear_f16_bf16({{.*}}, %c5_i64, %cst)
// CHECK: bufferization.to_tensor %[[OUT]] restrict writable : memref<?x32xf16> to tensor<?x32xf16>
func.func @linear(%x: tensor<?x64xf16>, %res: tensor<?x32xf16>) -> tensor<?x32xf16> {
  %w = moe.weight "w" : tensor<32x64xbf16>
  %n = moe.weight "n" : tensor<64xf32>
  %y = moe.linear %x, %w norm(%n) residual(%res) {norm_eps = 1.0e-06 : f32} : (tensor<?x64xf16>, tensor<32x64xbf16>, tensor<64xf32>, tensor<?x32xf16>) -> tensor<?x32xf16>
  return %y : tensor<?x32xf16>
}

// -----

// The plain router gets empty permutation buffers; a sigmoid group-limited
// router with top-2-sum group scores and renormalisation (flags 2 | 4).
// CHECK-LABEL: func.func @route
// CHECK: call @moert_route_f32_f32({{.*}}, %c1_i64, %c6_i64, %c4_i64, %c2_i64, %c1_i64, %cst{{.*}}, %cst{{.*}})
// CHECK-NOT: moe.route
func.func @route(%x: tensor<?x64xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %r = moe.weight "router" : tensor<8x64xf32>
  %b = moe.weight "bias" : tensor<8xf32>
  %ids, %w = moe.route %x, %r bias(%b) {top_k = 2 : i64, score = #moe.score<sigmoid>, n_group = 4 : i64, topk_group = 2 : i64, group_score = #moe.group_score<top2_sum>, renorm = #moe.renorm<sum>, scaling_factor = 2.5 : f32} : (tensor<?x64xf32>, tensor<8x64xf32>, tensor<8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>)
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// -----

// No kernel for f64, nor for experts whose weights differ in type: left
// for the reference lowering.
// CHECK-LABEL: func.func @unsupported
// CHECK: moe.linear
// CHECK: moe.experts
// CHECK-NOT: call
func.func @unsupported(%x: tensor<?x64xf64>, %h: tensor<?x64xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> (tensor<?x32xf64>, tensor<?x64xf32>) {
  %lw = moe.weight "lw" : tensor<32x64xf64>
  %y = moe.linear %x, %lw : (tensor<?x64xf64>, tensor<32x64xf64>) -> tensor<?x32xf64>
  %g = moe.weight "g" : tensor<8x32x64xf32>
  %d = moe.weight "d" : tensor<8x64x32xbf16>
  %e = moe.experts %h, %ids, %w experts(%g, %g, %d) : (tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %y, %e : tensor<?x32xf64>, tensor<?x64xf32>
}
