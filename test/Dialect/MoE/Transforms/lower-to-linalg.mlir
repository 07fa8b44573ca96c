// RUN: moe-opt %s -moe-lower-to-linalg -split-input-file | FileCheck %s
// RUN: moe-opt %s -moe-lower-to-linalg=grouped-gemm=false -split-input-file | FileCheck %s --check-prefix=GATHER
// RUN: moe-opt %s -moe-lower-to-linalg=staged-mla=true -split-input-file | FileCheck %s --check-prefix=STAGED

// The router: f32 logits by linalg.matmul, then one token per iteration of
// an scf.forall, which writes the token's row of ids and of weights; no moe
// op survives.
// CHECK-LABEL: func.func @route
// CHECK: linalg.matmul {{.*}}ins(%{{.+}}, %{{.+}} : tensor<4x16xbf16>, tensor<8x16xbf16>) outs(%{{.+}} : tensor<4x8xf32>)
// CHECK: %{{.+}}:2 = scf.forall (%[[T:.+]]) in (4) shared_outs(%[[IDS:.+]] = %{{.+}}, %[[WS:.+]] = %{{.+}})
// CHECK: scf.for
// CHECK: scf.forall.in_parallel
// CHECK-NEXT: tensor.parallel_insert_slice %{{.+}} into %[[IDS]][%[[T]], 0] [1, 2] [1, 1] : tensor<1x2xi32>
// CHECK-NEXT: tensor.parallel_insert_slice %{{.+}} into %[[WS]][%[[T]], 0] [1, 2] [1, 1] : tensor<1x2xf32>
// CHECK-NOT: moe.route
// CHECK: return %{{.+}}, %{{.+}} : tensor<4x2xi32>, tensor<4x2xf32>
func.func @route(%x: tensor<4x16xbf16>, %g: tensor<8x16xbf16>, %b: tensor<8xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>) {
  %i, %w = moe.route %x, %g bias(%b) {top_k = 2 : i64, score = #moe.score<sigmoid>, n_group = 4 : i64, topk_group = 2 : i64, group_score = #moe.group_score<top2_sum>, renorm = #moe.renorm<sum>, scaling_factor = 2.5 : f32} : (tensor<4x16xbf16>, tensor<8x16xbf16>, tensor<8xf32>) -> (tensor<4x2xi32>, tensor<4x2xf32>)
  return %i, %w : tensor<4x2xi32>, tensor<4x2xf32>
}

// -----

// round_logits: each f32 logit is rounded to bf16 and back before scoring.
// CHECK-LABEL: func.func @route_rounded
// CHECK: linalg.matmul
// CHECK: %[[L:.+]] = tensor.extract %{{.+}} : tensor<4x8xf32>
// CHECK: %[[R:.+]] = arith.truncf %[[L]] : f32 to bf16
// CHECK: arith.extf %[[R]] : bf16 to f32
func.func @route_rounded(%x: tensor<4x16xbf16>, %g: tensor<8x16xbf16>) -> (tensor<4x2xi32>, tensor<4x2xf32>) {
  %i, %w = moe.route %x, %g {top_k = 2 : i64, score = #moe.score<softmax>, renorm = #moe.renorm<sum>, round_logits} : (tensor<4x16xbf16>, tensor<8x16xbf16>) -> (tensor<4x2xi32>, tensor<4x2xf32>)
  return %i, %w : tensor<4x2xi32>, tensor<4x2xf32>
}

// -----

// RMSNorm: the f32 sum of squares, rsqrt, the cast back before the weight.
// CHECK-LABEL: func.func @rms_norm
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]
// CHECK: math.rsqrt
// CHECK: arith.truncf {{.*}} : f32 to bf16
// CHECK: arith.mulf {{.*}} : bf16
func.func @rms_norm(%x: tensor<?x64xbf16>, %w: tensor<64xbf16>) -> tensor<?x64xbf16> {
  %y = moe.rms_norm %x, %w eps(1.0e-6) : tensor<?x64xbf16>, tensor<64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// RoPE: the inverse frequencies are a constant table built like
// transformers' (theta^(-2i/d)); cos and sin of position * frequency.
// CHECK-LABEL: func.func @rope
// CHECK: arith.constant dense<[1.000000e+00, 0.00999999977]> : tensor<2xf32>
// CHECK: math.cos
// CHECK: math.sin
func.func @rope(%x: tensor<1x?x2x4xf32>, %pos: tensor<1x?xi32>) -> tensor<1x?x2x4xf32> {
  %r = moe.rope %x, %pos style = <half_split> rope = <theta = 10000.0> : tensor<1x?x2x4xf32>, tensor<1x?xi32>
  return %r : tensor<1x?x2x4xf32>
}

// -----

// Attention writes the new keys and values into the cache first, one
// (sequence, token, KV head) per scf.forall iteration at row p + t, checking
// at run time that they fit; then each (sequence, token, query head) is one
// iteration of an scf.forall that writes its output row.
// CHECK-LABEL: func.func @attention
// CHECK: scf.forall (%[[CB:.+]], %[[CT:.+]], %[[CH:.+]]) in (1, %{{.+}}, 2) shared_outs(%[[KC:.+]] = %{{.+}}, %[[VC:.+]] = %{{.+}})
// CHECK: %[[P:.+]] = arith.index_cast
// CHECK: cf.assert %{{.+}}, "moe.attention: the KV cache is full (or the position is negative)"
// CHECK: %[[ROW:.+]] = arith.addi %[[P]], %[[CT]]
// CHECK: tensor.parallel_insert_slice %{{.+}} into %[[KC]][%[[CB]], %[[ROW]], %[[CH]], 0] [1, 1, 1, 8]
// CHECK-NEXT: tensor.parallel_insert_slice %{{.+}} into %[[VC]][%[[CB]], %[[ROW]], %[[CH]], 0] [1, 1, 1, 8]
// CHECK: scf.forall (%[[B:.+]], %[[T:.+]], %[[H:.+]]) in (1, %{{.+}}, 4) shared_outs(%[[O:.+]] = %{{.+}})
// CHECK: math.exp
// CHECK: tensor.parallel_insert_slice %{{.+}} into %[[O]][%[[B]], %[[T]], %[[H]], 0] [1, 1, 1, 8] [1, 1, 1, 1]
// CHECK-NOT: moe.attention
func.func @attention(%q: tensor<1x?x4x8xf32>, %k: tensor<1x?x2x8xf32>, %kc: tensor<1x16x2x8xf32>, %p: tensor<1xi32>) -> tensor<1x?x4x8xf32> {
  %o, %kc1, %vc1 = moe.attention %q, %k, %k cache(%kc, %kc) at %p {scale = 0.35 : f32} : (tensor<1x?x4x8xf32>, tensor<1x?x2x8xf32>, tensor<1x?x2x8xf32>, tensor<1x16x2x8xf32>, tensor<1x16x2x8xf32>, tensor<1xi32>) -> (tensor<1x?x4x8xf32>, tensor<1x16x2x8xf32>, tensor<1x16x2x8xf32>)
  return %o : tensor<1x?x4x8xf32>
}

// -----

// The naive MLA form appends each token's latent and k_pe as one cache row,
// expands the cached latents of every sequence once
// (one element per iteration of a linalg.generic, up to the longest
// sequence), then attends one query head per iteration.
// CHECK-LABEL: func.func @mla
// CHECK: scf.forall (%{{.+}}, %{{.+}}) in (1, 1) shared_outs(%[[C:.+]] = %{{.+}})
// CHECK: cf.assert %{{.+}}, "moe.mla: the KV cache is full (or the position is negative)"
// CHECK: tensor.parallel_insert_slice %{{.+}} into %[[C]][%{{.+}}, %{{.+}}, 0] [1, 1, 10] [1, 1, 1] : tensor<1x1x10xf32>
// CHECK: linalg.generic {indexing_maps = [#{{.+}}], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%{{.+}} : tensor<1x?x2x8xf32>)
// CHECK: scf.forall (%{{.+}}, %{{.+}}, %{{.+}}) in (1, 1, 2)
// CHECK-NOT: moe.mla
func.func @mla(%qn: tensor<1x1x2x4xf32>, %qp: tensor<1x1x2x2xf32>, %lat: tensor<1x1x8xf32>, %kp: tensor<1x1x2xf32>, %kvb: tensor<16x8xf32>, %c: tensor<1x4x10xf32>, %p: tensor<1xi32>) -> tensor<1x1x2x4xf32> {
  %o, %c1 = moe.mla %qn, %qp, %lat, %kp kv_b(%kvb) cache(%c) at %p {scale = 0.4 : f32} : (tensor<1x1x2x4xf32>, tensor<1x1x2x2xf32>, tensor<1x1x8xf32>, tensor<1x1x2xf32>, tensor<16x8xf32>, tensor<1x4x10xf32>, tensor<1xi32>) -> (tensor<1x1x2x4xf32>, tensor<1x4x10xf32>)
  return %o : tensor<1x1x2x4xf32>
}

// -----

// The gather form: every (token, choice, intermediate) activation, then
// every (token, hidden) output, each an independent element.
// CHECK-LABEL: func.func @experts
// CHECK: linalg.generic {indexing_maps = [#{{.+}}], iterator_types = ["parallel", "parallel", "parallel"]} outs(%{{.+}} : tensor<?x2x6xf32>)
// CHECK: linalg.generic {indexing_maps = [#{{.+}}], iterator_types = ["parallel", "parallel"]} outs(%{{.+}} : tensor<?x8xf32>)
// CHECK-NOT: moe.experts
func.func @experts(%x: tensor<?x8xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>, %g: tensor<4x6x8xf32>, %d: tensor<4x8x6xf32>) -> tensor<?x8xf32> {
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) : (tensor<?x8xf32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<4x6x8xf32>, tensor<4x6x8xf32>, tensor<4x8x6xf32>) -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// Embedding ids are clamped to the table, so no read leaves it.
// CHECK-LABEL: func.func @embedding
// CHECK: %[[LAST:.+]] = arith.constant 15 : index
// CHECK: linalg.generic
// CHECK: arith.maxsi
// CHECK: arith.minsi %{{.+}}, %[[LAST]]
// CHECK: tensor.extract
func.func @embedding(%t: tensor<16x8xf32>, %ids: tensor<1x?xi32>) -> tensor<1x?x8xf32> {
  %h = moe.embedding %t[%ids] : tensor<16x8xf32>, tensor<1x?xi32> -> tensor<1x?x8xf32>
  return %h : tensor<1x?x8xf32>
}

// -----

// A table of run-time rows (an ONNX Gather of a computed tensor) clamps to
// its size minus one.
// CHECK-LABEL: func.func @embedding_dynamic_table
// CHECK: %[[ROWS:.+]] = tensor.dim %arg0, %c0
// CHECK: %[[LAST:.+]] = arith.subi %[[ROWS]], %c1
// CHECK: linalg.generic
// CHECK: arith.minsi %{{.+}}, %[[LAST]]
func.func @embedding_dynamic_table(%t: tensor<?x8xf32>, %ids: tensor<3xi64>) -> tensor<3x8xf32> {
  %h = moe.embedding %t[%ids] : tensor<?x8xf32>, tensor<3xi64> -> tensor<3x8xf32>
  return %h : tensor<3x8xf32>
}

// -----

// Weight references are not this pass's business.
// CHECK-LABEL: func.func @weights_stay
// CHECK: moe.weight "w"
func.func @weights_stay() -> tensor<4xf32> {
  %w = moe.weight "w" : tensor<4xf32>
  return %w : tensor<4xf32>
}

// -----

// The shared expert is a plain SwiGLU FFN even when the routed experts use
// the clamped activation: the clamp's two minimumf ops (gate and up against
// the limit) are built once, for the routed experts only.
// CHECK-LABEL: func.func @clamped_with_shared
// CHECK-COUNT-2: arith.minimumf
// CHECK-NOT: arith.minimumf
func.func @clamped_with_shared(%x: tensor<2x8xf32>, %ids: tensor<2x1xi32>, %w: tensor<2x1xf32>, %g: tensor<2x4x8xf32>, %d: tensor<2x8x4xf32>, %sg: tensor<4x8xf32>, %sd: tensor<8x4xf32>) -> tensor<2x8xf32> {
  %y = moe.experts %x, %ids, %w experts(%g, %g, %d) shared(%sg, %sg, %sd) {activation = #moe.act<swiglu_clamped>} : (tensor<2x8xf32>, tensor<2x1xi32>, tensor<2x1xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x8x4xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<8x4xf32>) -> tensor<2x8xf32>
  return %y : tensor<2x8xf32>
}

// -----

// The fused router selects as moe.route does, then builds the permutation:
// per-expert counts, offsets padded to the tile (ceildiv), slots
// initialised to -1 and scattered.
// CHECK-LABEL: func.func @fused_route
// CHECK: linalg.matmul
// CHECK: scf.forall
// CHECK: scf.for
// CHECK: arith.ceildivui %{{.+}}, %c4
// CHECK: linalg.fill ins(%c-1_i32 : i32)
// CHECK-NOT: moe.fused_route
// CHECK: return %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} : tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>, tensor<?xi32>
func.func @fused_route(%x: tensor<?x16xf32>, %g: tensor<8x16xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>, tensor<?xi32>) {
  %i, %w, %o, %s = moe.fused_route %x, %g {top_k = 2 : i64, score = #moe.score<softmax>, tile = 4 : i64} : (tensor<?x16xf32>, tensor<8x16xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>, tensor<?xi32>)
  return %i, %w, %o, %s : tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>, tensor<?xi32>
}

// -----

// Grouped experts choose their form on the token count at run time: up to
// gemv_max_tokens tokens gather their experts' weights per token, more
// run tiles of the permutation (step = tile) for each expert, then the
// shared expert's tiles over all tokens. Without grouped GEMMs (the CUDA
// target), the gather form runs every token count: the routed and shared
// activations, the shared gate, then the outputs.
// GATHER-LABEL: func.func @grouped_experts
// GATHER-NOT: scf.if
// GATHER: linalg.generic {{.*}}outs(%{{.+}} : tensor<?x2x8xf32>)
// GATHER: linalg.generic {{.*}}outs(%{{.+}} : tensor<?x32xf32>)
// GATHER: linalg.generic {{.*}}outs(%{{.+}} : tensor<?xf32>)
// GATHER: linalg.generic {{.*}}outs(%{{.+}} : tensor<?x16xbf16>)
// GATHER-NOT: moe.grouped_experts
// CHECK-LABEL: func.func @grouped_experts
// CHECK: %[[MAX:.+]] = arith.constant 2 : index
// CHECK: %[[FEW:.+]] = arith.cmpi ule, %{{.+}}, %[[MAX]]
// CHECK: scf.if %[[FEW]]
// CHECK: } else {
// CHECK: %[[E:.+]] = arith.constant 8 : index
// CHECK: scf.for %{{.+}} = %{{.+}} to %[[E]] step
// CHECK: %[[TILE:.+]] = arith.constant 4 : index
// CHECK: scf.for %{{.+}} = %{{.+}} to %{{.+}} step %[[TILE]]
// CHECK: %[[TILE2:.+]] = arith.constant 4 : index
// CHECK: scf.for %{{.+}} = %{{.+}} to %{{.+}} step %[[TILE2]]
// CHECK-NOT: moe.grouped_experts
func.func @grouped_experts(%x: tensor<?x16xbf16>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>, %off: tensor<9xi32>, %slots: tensor<?xi32>, %g: tensor<8x8x16xbf16>, %d: tensor<8x16x8xbf16>, %sg: tensor<32x16xbf16>, %sd: tensor<16x32xbf16>) -> tensor<?x16xbf16> {
  %y = moe.grouped_experts %x, %ids, %w permutation(%off, %slots) experts(%g, %g, %d) shared(%sg, %sg, %sd) {tile = 4 : i64, gemv_max_tokens = 2 : i64} : (tensor<?x16xbf16>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<9xi32>, tensor<?xi32>, tensor<8x8x16xbf16>, tensor<8x8x16xbf16>, tensor<8x16x8xbf16>, tensor<32x16xbf16>, tensor<32x16xbf16>, tensor<16x32xbf16>) -> tensor<?x16xbf16>
  return %y : tensor<?x16xbf16>
}

// -----

// A projection with a norm prologue: each row's statistics (rsqrt once per
// row), the normalised rows rounded to bf16 as moe.rms_norm rounds them,
// one matmul by W^T; then the epilogue writing bias + cast + residual over
// the residual.
// CHECK-LABEL: func.func @linear_fused
// CHECK-SAME: (%[[X:.+]]: tensor<?x16xbf16>, %[[R:.+]]: tensor<?x8xbf16>)
// CHECK: %[[INV:.+]] = linalg.generic {{.*}}iterator_types = ["parallel"]{{.*}} outs(%{{.+}} : tensor<?xf32>)
// CHECK: math.rsqrt
// CHECK: %[[XN:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel"]{{.*}} outs(%{{.+}} : tensor<?x16xf32>)
// CHECK: tensor.extract %[[INV]]
// CHECK: arith.truncf {{.*}} : f32 to bf16
// CHECK: linalg.matmul {{.*}}ins(%[[XN]], %{{.+}} : tensor<?x16xf32>, tensor<8x16xbf16>)
// CHECK-NOT: math.rsqrt
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel"]{{.*}} outs(%[[R]] : tensor<?x8xbf16>)
// CHECK-NOT: moe.linear
func.func @linear_fused(%x: tensor<?x16xbf16>, %r: tensor<?x8xbf16>) -> tensor<?x8xbf16> {
  %w = moe.weight "w" : tensor<8x16xbf16>
  %b = moe.weight "b" : tensor<8xbf16>
  %n = moe.weight "n" : tensor<16xbf16>
  %y = moe.linear %x, %w bias(%b) norm(%n) residual(%r) {norm_eps = 1.0e-6 : f32} : (tensor<?x16xbf16>, tensor<8x16xbf16>, tensor<8xbf16>, tensor<16xbf16>, tensor<?x8xbf16>) -> tensor<?x8xbf16>
  return %y : tensor<?x8xbf16>
}

// -----

// A plain f32 projection is one matmul with nothing after it.
// CHECK-LABEL: func.func @linear_plain
// CHECK: %[[M:.+]] = linalg.matmul
// CHECK-NEXT: return %[[M]]
func.func @linear_plain(%x: tensor<?x16xf32>) -> tensor<?x8xf32> {
  %w = moe.weight "w" : tensor<8x16xf32>
  %y = moe.linear %x, %w : (tensor<?x16xf32>, tensor<8x16xf32>) -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// Attention with a rope prologue rotates keys on their way into the cache
// and each query head before its scores; no separate rotated tensor.
// CHECK-LABEL: func.func @attention_rope
// CHECK: arith.constant dense<{{.+}}> : tensor<4xf32>
// CHECK: math.cos
// CHECK: math.sin
// CHECK: scf.forall
// CHECK-NOT: linalg.generic
// CHECK-NOT: moe.attention
func.func @attention_rope(%q: tensor<1x4x2x8xf32>, %k: tensor<1x4x2x8xf32>, %v: tensor<1x4x2x8xf32>, %pos: tensor<1x4xi32>, %kc: tensor<1x8x2x8xf32>, %vc: tensor<1x8x2x8xf32>, %p: tensor<1xi32>) -> tensor<1x4x2x8xf32> {
  %a, %kc2, %vc2 = moe.attention %q, %k, %v cache(%kc, %vc) at %p rope(%pos) {scale = 0.35 : f32, rope_style = #moe.rope_style<half_split>, rope = #moe.rope<theta = 1.0e4>} : (tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x8x2x8xf32>, tensor<1x8x2x8xf32>, tensor<1xi32>, tensor<1x4xi32>) -> (tensor<1x4x2x8xf32>, tensor<1x8x2x8xf32>, tensor<1x8x2x8xf32>)
  return %a : tensor<1x4x2x8xf32>
}

// -----

// moe.mla_absorbed: by default one scf.forall iteration per (sequence,
// token, head) with its sums serial; with staged-mla (the CUDA targets),
// stages of independent elements behind a check that the [B, S, N, J]
// scores fit in 2^26 floats, the per-head form otherwise.
// CHECK-LABEL: func.func @mla_absorbed
// CHECK-NOT: scf.if
// CHECK: scf.forall (%{{.*}}, %{{.*}}, %{{.*}}) in (1, %{{.*}}, 2)
// STAGED-LABEL: func.func @mla_absorbed
// STAGED: %[[FITS:.*]] = arith.cmpi ule, %{{.*}}, %c67108864
// STAGED: scf.if %[[FITS]] -> (tensor<1x?x2x16xf32>) {
// q_lat, the rotated q_pe, then the scores (masked past each token's
// position):
// STAGED:   linalg.generic {{.*}} outs(%{{.*}} : tensor<1x?x2x32xf32>)
// STAGED:   linalg.generic {{.*}} outs(%{{.*}} : tensor<1x?x2x8xf32>)
// STAGED:   linalg.generic {{.*}} outs(%{{.*}} : tensor<1x?x2x?xf32>)
// STAGED:     arith.cmpi sle
// STAGED:     arith.select
// the softmax maximum and sum per head, the latent sums, the output:
// STAGED:   linalg.generic {{.*}} outs(%{{.*}} : tensor<1x?x2xf32>)
// STAGED:     arith.maximumf
// STAGED:   linalg.generic {{.*}} outs(%{{.*}} : tensor<1x?x2xf32>)
// STAGED:     math.exp
// STAGED:   linalg.generic {{.*}} outs(%{{.*}} : tensor<1x?x2x32xf32>)
// STAGED:   linalg.generic {{.*}} outs(%{{.*}} : tensor<1x?x2x16xf32>)
// STAGED: } else {
// STAGED:   scf.forall (%{{.*}}, %{{.*}}, %{{.*}}) in (1, %{{.*}}, 2)
func.func @mla_absorbed(%qn: tensor<1x?x2x16xf32>, %qp: tensor<1x?x2x8xf32>, %lat: tensor<1x?x32xf32>, %kp: tensor<1x?x8xf32>, %c: tensor<1x16x40xf32>, %p: tensor<1xi32>) -> (tensor<1x?x2x16xf32>, tensor<1x16x40xf32>) {
  %uk = moe.weight "w_uk" : tensor<2x16x32xf32>
  %uv = moe.weight "w_uv" : tensor<2x16x32xf32>
  %o, %c2 = moe.mla_absorbed %qn, %qp, %lat, %kp w_uk(%uk) w_uv(%uv) cache(%c) at %p {scale = 0.2 : f32} : (tensor<1x?x2x16xf32>, tensor<1x?x2x8xf32>, tensor<1x?x32xf32>, tensor<1x?x8xf32>, tensor<2x16x32xf32>, tensor<2x16x32xf32>, tensor<1x16x40xf32>, tensor<1xi32>) -> (tensor<1x?x2x16xf32>, tensor<1x16x40xf32>)
  return %o, %c2 : tensor<1x?x2x16xf32>, tensor<1x16x40xf32>
}
