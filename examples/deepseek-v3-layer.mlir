// One decoder layer of a tiny DeepSeek-V3-architecture model in the moe
// dialect: multi-head latent attention with a low-rank query and YaRN RoPE,
// then a mixture of 8 routed experts (sigmoid routing with a selection-only
// bias, 4 groups of which 2 are kept, renormalised and scaled) plus an
// ungated shared expert. Prefill of 8 tokens of one sequence into a latent
// cache of 64 rows.
//
// Sizes: hidden 64, 4 heads, q_lora_rank 32, kv_lora_rank 32,
// qk_nope_head_dim 16, qk_rope_head_dim 8, v_head_dim 16, 8 experts of
// width 32, top-2. Weights are external references by checkpoint name.
//
// Compile it with:  moec examples/deepseek-v3-layer.mlir

#x_wt = affine_map<(m, n, k) -> (m, k)>
#w_wt = affine_map<(m, n, k) -> (n, k)>
#y_wt = affine_map<(m, n, k) -> (m, n)>

func.func @decoder_layer(%h: tensor<8x64xf32>, %pos: tensor<1x8xi32>,
                         %cache: tensor<1x64x40xf32>, %start: tensor<1xi32>)
    -> (tensor<8x64xf32>, tensor<1x64x40xf32>) {
  %zero = arith.constant 0.0 : f32

  // --- Attention -----------------------------------------------------------
  %w_in = moe.weight "model.layers.3.input_layernorm.weight" : tensor<64xf32>
  %x = moe.rms_norm %h, %w_in eps(1.0e-6) : tensor<8x64xf32>, tensor<64xf32>

  // Low-rank query: q_b_proj(q_a_layernorm(q_a_proj(x))).
  %w_qa = moe.weight "model.layers.3.self_attn.q_a_proj.weight" : tensor<32x64xf32>
  %e_qa = tensor.empty() : tensor<8x32xf32>
  %z_qa = linalg.fill ins(%zero : f32) outs(%e_qa : tensor<8x32xf32>) -> tensor<8x32xf32>
  %qa = linalg.matmul indexing_maps = [#x_wt, #w_wt, #y_wt]
      ins(%x, %w_qa : tensor<8x64xf32>, tensor<32x64xf32>)
      outs(%z_qa : tensor<8x32xf32>) -> tensor<8x32xf32>
  %w_qan = moe.weight "model.layers.3.self_attn.q_a_layernorm.weight" : tensor<32xf32>
  %qan = moe.rms_norm %qa, %w_qan eps(1.0e-6) : tensor<8x32xf32>, tensor<32xf32>
  %w_qb = moe.weight "model.layers.3.self_attn.q_b_proj.weight" : tensor<96x32xf32>
  %e_q = tensor.empty() : tensor<8x96xf32>
  %z_q = linalg.fill ins(%zero : f32) outs(%e_q : tensor<8x96xf32>) -> tensor<8x96xf32>
  %q2d = linalg.matmul indexing_maps = [#x_wt, #w_wt, #y_wt]
      ins(%qan, %w_qb : tensor<8x32xf32>, tensor<96x32xf32>)
      outs(%z_q : tensor<8x96xf32>) -> tensor<8x96xf32>
  %q = tensor.expand_shape %q2d [[0, 1], [2, 3]] output_shape [1, 8, 4, 24]
      : tensor<8x96xf32> into tensor<1x8x4x24xf32>
  %q_nope = tensor.extract_slice %q[0, 0, 0, 0] [1, 8, 4, 16] [1, 1, 1, 1]
      : tensor<1x8x4x24xf32> to tensor<1x8x4x16xf32>
  %q_pe0 = tensor.extract_slice %q[0, 0, 0, 16] [1, 8, 4, 8] [1, 1, 1, 1]
      : tensor<1x8x4x24xf32> to tensor<1x8x4x8xf32>
  %q_pe = moe.rope %q_pe0, %pos style = <interleaved>
      rope = <scaling = yarn, factor = 40.0, original_max_position = 4096,
              mscale = 1.0, mscale_all_dim = 1.0>
      : tensor<1x8x4x8xf32>, tensor<1x8xi32>

  // Compressed KV: kv_a_proj_with_mqa(x) = [latent (32) | k_pe (8)].
  %w_kva = moe.weight "model.layers.3.self_attn.kv_a_proj_with_mqa.weight" : tensor<40x64xf32>
  %e_kv = tensor.empty() : tensor<8x40xf32>
  %z_kv = linalg.fill ins(%zero : f32) outs(%e_kv : tensor<8x40xf32>) -> tensor<8x40xf32>
  %ckv = linalg.matmul indexing_maps = [#x_wt, #w_wt, #y_wt]
      ins(%x, %w_kva : tensor<8x64xf32>, tensor<40x64xf32>)
      outs(%z_kv : tensor<8x40xf32>) -> tensor<8x40xf32>
  %c0 = tensor.extract_slice %ckv[0, 0] [8, 32] [1, 1] : tensor<8x40xf32> to tensor<8x32xf32>
  %kpe0 = tensor.extract_slice %ckv[0, 32] [8, 8] [1, 1] : tensor<8x40xf32> to tensor<8x8xf32>
  %w_kvan = moe.weight "model.layers.3.self_attn.kv_a_layernorm.weight" : tensor<32xf32>
  %c1 = moe.rms_norm %c0, %w_kvan eps(1.0e-6) : tensor<8x32xf32>, tensor<32xf32>
  %latent = tensor.expand_shape %c1 [[0, 1], [2]] output_shape [1, 8, 32]
      : tensor<8x32xf32> into tensor<1x8x32xf32>
  %kpe1 = tensor.expand_shape %kpe0 [[0, 1], [2, 3]] output_shape [1, 8, 1, 8]
      : tensor<8x8xf32> into tensor<1x8x1x8xf32>
  %kpe2 = moe.rope %kpe1, %pos style = <interleaved>
      rope = <scaling = yarn, factor = 40.0, original_max_position = 4096,
              mscale = 1.0, mscale_all_dim = 1.0>
      : tensor<1x8x1x8xf32>, tensor<1x8xi32>
  %k_pe = tensor.collapse_shape %kpe2 [[0], [1], [2, 3]]
      : tensor<1x8x1x8xf32> into tensor<1x8x8xf32>

  // Softmax scale: (16 + 8)^-0.5 * mscale(40, 1.0)^2 = 0.382499.
  %w_kvb = moe.weight "model.layers.3.self_attn.kv_b_proj.weight" : tensor<128x32xf32>
  %attn, %new_cache = moe.mla %q_nope, %q_pe, %latent, %k_pe kv_b(%w_kvb)
      cache(%cache) at %start {scale = 0.382499 : f32}
      : (tensor<1x8x4x16xf32>, tensor<1x8x4x8xf32>, tensor<1x8x32xf32>,
         tensor<1x8x8xf32>, tensor<128x32xf32>, tensor<1x64x40xf32>,
         tensor<1xi32>) -> (tensor<1x8x4x16xf32>, tensor<1x64x40xf32>)
  %attn2d = tensor.collapse_shape %attn [[0, 1], [2, 3]]
      : tensor<1x8x4x16xf32> into tensor<8x64xf32>
  %w_o = moe.weight "model.layers.3.self_attn.o_proj.weight" : tensor<64x64xf32>
  %e_o = tensor.empty() : tensor<8x64xf32>
  %z_o = linalg.fill ins(%zero : f32) outs(%e_o : tensor<8x64xf32>) -> tensor<8x64xf32>
  %o = linalg.matmul indexing_maps = [#x_wt, #w_wt, #y_wt]
      ins(%attn2d, %w_o : tensor<8x64xf32>, tensor<64x64xf32>)
      outs(%z_o : tensor<8x64xf32>) -> tensor<8x64xf32>
  %h1 = arith.addf %h, %o : tensor<8x64xf32>

  // --- Mixture of experts --------------------------------------------------
  %w_post = moe.weight "model.layers.3.post_attention_layernorm.weight" : tensor<64xf32>
  %y = moe.rms_norm %h1, %w_post eps(1.0e-6) : tensor<8x64xf32>, tensor<64xf32>
  %w_gate = moe.weight "model.layers.3.mlp.gate.weight" : tensor<8x64xf32>
  %w_bias = moe.weight "model.layers.3.mlp.gate.e_score_correction_bias" : tensor<8xf32>
  %ids, %weights = moe.route %y, %w_gate bias(%w_bias) {
      top_k = 2 : i64, score = #moe.score<sigmoid>,
      n_group = 4 : i64, topk_group = 2 : i64,
      group_score = #moe.group_score<top2_sum>,
      renorm = #moe.renorm<sum>, renorm_eps = 1.0e-20 : f32,
      scaling_factor = 2.5 : f32}
      : (tensor<8x64xf32>, tensor<8x64xf32>, tensor<8xf32>)
      -> (tensor<8x2xi32>, tensor<8x2xf32>)
  %w_eg = moe.weight "model.layers.3.mlp.experts.gate_proj" : tensor<8x32x64xf32>
  %w_eu = moe.weight "model.layers.3.mlp.experts.up_proj" : tensor<8x32x64xf32>
  %w_ed = moe.weight "model.layers.3.mlp.experts.down_proj" : tensor<8x64x32xf32>
  %w_sg = moe.weight "model.layers.3.mlp.shared_experts.gate_proj.weight" : tensor<32x64xf32>
  %w_su = moe.weight "model.layers.3.mlp.shared_experts.up_proj.weight" : tensor<32x64xf32>
  %w_sd = moe.weight "model.layers.3.mlp.shared_experts.down_proj.weight" : tensor<64x32xf32>
  %moe = moe.experts %y, %ids, %weights experts(%w_eg, %w_eu, %w_ed)
      shared(%w_sg, %w_su, %w_sd)
      : (tensor<8x64xf32>, tensor<8x2xi32>, tensor<8x2xf32>,
         tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>,
         tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>)
      -> tensor<8x64xf32>
  %out = arith.addf %h1, %moe : tensor<8x64xf32>
  return %out, %new_cache : tensor<8x64xf32>, tensor<1x64x40xf32>
}
