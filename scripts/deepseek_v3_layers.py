#!/usr/bin/env python3
"""Writes a header-only DeepSeek-V3 checkpoint: config.json plus one
safetensors file whose header names every tensor of the real model's
layout at full size (bf16) and whose data is a hole in a sparse file, so
no weight byte is stored. moec compiles it like the real checkpoint;
`moe-run --random-weights SEED` runs the artifact without opening it.

Every layer is an MoE layer (first_k_dense_replace = 0), so one layer is
the timing unit scripts/gpu-check.sh reports. Standard library only.

Usage: deepseek_v3_layers.py OUT_DIR [--layers N] [--experts E]
  --layers N   decoder layers (default 1)
  --experts E  routed experts (default 256, DeepSeek-V3's; E must be a
               multiple of n_group = 8)
"""
import argparse
import json
import math
import os

# DeepSeek-V3's config.json (671B), less the layers and the MTP module.
CONFIG = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "dtype": "bfloat16",
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "q_lora_rank": 1536,
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "n_shared_experts": 1,
    "num_experts_per_tok": 8,
    "n_group": 8,
    "topk_group": 4,
    "norm_topk_prob": True,
    "routed_scaling_factor": 2.5,
    "scoring_func": "sigmoid",
    "topk_method": "noaux_tc",
    "rms_norm_eps": 1e-06,
    "max_position_embeddings": 4096,
    "rope_theta": 10000.0,
    "rope_interleave": True,
    "vocab_size": 129280,
    "tie_word_embeddings": False,
    "hidden_act": "silu",
    "bos_token_id": 0,
    "eos_token_id": 1,
    "first_k_dense_replace": 0,
}


def tensors(c, layers, experts):
    h, v = c["hidden_size"], c["vocab_size"]
    heads, nope, rope, vd = (c["num_attention_heads"], c["qk_nope_head_dim"],
                             c["qk_rope_head_dim"], c["v_head_dim"])
    q, kv, inter = c["q_lora_rank"], c["kv_lora_rank"], c["moe_intermediate_size"]
    shared = inter * c["n_shared_experts"]
    yield "model.embed_tokens.weight", [v, h]
    for n in range(layers):
        p = f"model.layers.{n}."
        yield p + "input_layernorm.weight", [h]
        yield p + "post_attention_layernorm.weight", [h]
        yield p + "self_attn.q_a_proj.weight", [q, h]
        yield p + "self_attn.q_a_layernorm.weight", [q]
        yield p + "self_attn.q_b_proj.weight", [heads * (nope + rope), q]
        yield p + "self_attn.kv_a_proj_with_mqa.weight", [kv + rope, h]
        yield p + "self_attn.kv_a_layernorm.weight", [kv]
        yield p + "self_attn.kv_b_proj.weight", [heads * (nope + vd), kv]
        yield p + "self_attn.o_proj.weight", [h, heads * vd]
        yield p + "mlp.gate.weight", [experts, h]
        yield p + "mlp.gate.e_score_correction_bias", [experts]
        for e in range(experts):
            yield p + f"mlp.experts.{e}.gate_proj.weight", [inter, h]
            yield p + f"mlp.experts.{e}.up_proj.weight", [inter, h]
            yield p + f"mlp.experts.{e}.down_proj.weight", [h, inter]
        yield p + "mlp.shared_experts.gate_proj.weight", [shared, h]
        yield p + "mlp.shared_experts.up_proj.weight", [shared, h]
        yield p + "mlp.shared_experts.down_proj.weight", [h, shared]
    yield "model.norm.weight", [h]
    yield "lm_head.weight", [v, h]


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--experts", type=int, default=256)
    args = parser.parse_args()
    if args.layers < 1 or args.experts < 8 or args.experts % 8:
        parser.error("need --layers >= 1 and --experts a multiple of 8")
    config = dict(CONFIG, num_hidden_layers=args.layers,
                  n_routed_experts=args.experts)
    os.makedirs(args.out, exist_ok=True)
    header, offset = {}, 0
    for name, shape in tensors(config, args.layers, args.experts):
        nbytes = 2 * math.prod(shape)
        header[name] = {"dtype": "BF16", "shape": shape,
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with open(os.path.join(args.out, "model.safetensors"), "wb") as f:
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        f.truncate(8 + len(blob) + offset)  # a hole: nothing is written
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    print(f"{args.out}: {len(header)} tensors, {offset / 2 / 1e9:.2f}B "
          f"parameters ({offset / 2**30:.1f} GiB bf16, not stored)")


if __name__ == "__main__":
    main()
