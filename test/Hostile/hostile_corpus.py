#!/usr/bin/env python3
"""The hostile-input corpus: every way a downloaded checkpoint, ONNX file or
artifact can be broken that we know of, each paired with the one-line
diagnostic moec or moe-run must give.

For every case the tool must exit with a status in 1..125 (not a signal,
not 0), within the time limit, print exactly one diagnostic line on stderr
(indented detail lines may follow it) with the expected text there, and
leave no output file (nor a temporary one) behind. Each case's input is built in WORK from the test fixtures with the
standard library only (ONNX cases are text protos encoded by protoc).

  hostile_corpus.py --moec M --moe-run R --protoc P --onnx-proto-dir D WORK
  [--only SUBSTRING] [--list]
"""
import argparse
import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
HF = ROOT / "test" / "fixtures" / "hf"
TIMEOUT = 120


# --- safetensors helpers ----------------------------------------------------

def read_st(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_st(path, header, body, header_text=None):
    text = header_text if header_text is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + body)


def tensors_by_offset(header):
    return sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                  key=lambda kv: kv[1]["data_offsets"][0])


class Case:
    def __init__(self, name, tool, expect, build):
        self.name, self.tool, self.expect, self.build = name, tool, expect, build


CASES = []


def case(name, expect, tool="moec"):
    def register(build):
        CASES.append(Case(name, tool, expect, build))
        return build
    return register


def checkpoint(d, fixture="llama"):
    """A copy of a fixture checkpoint in d; returns (dir, shard path)."""
    shutil.copytree(HF / fixture, d, ignore=shutil.ignore_patterns("oracle"))
    return d, d / "model.safetensors"


def edit_header(d, fn, fixture="llama"):
    d, st = checkpoint(d, fixture)
    header, body = read_st(st)
    body = fn(header, body)
    write_st(st, header, body)
    return d


def edit_config(d, fixture="llama", **changes):
    d, _ = checkpoint(d, fixture)
    config = json.loads((d / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (d / "config.json").write_text(json.dumps(config))
    return d


# --- checkpoint shards --------------------------------------------------------

@case("shard-truncated", "but the file holds 130684 bytes of tensor data (truncated or trailing data)")
def _(d):
    d, st = checkpoint(d)
    raw = st.read_bytes()
    st.write_bytes(raw[:len(raw) // 2])
    return d


@case("shard-shorter-than-length", "model.safetensors: is 5 bytes long, too small for a safetensors header")
def _(d):
    d, st = checkpoint(d)
    st.write_bytes(b"\x10\x00\x00\x00\x00")
    return d


@case("shard-empty", "model.safetensors: is 0 bytes long, too small for a safetensors header")
def _(d):
    d, st = checkpoint(d)
    st.write_bytes(b"")
    return d


@case("header-length-past-file", "header size 1000000 runs past the end of the file (1000 bytes)")
def _(d):
    d, st = checkpoint(d)
    raw = st.read_bytes()
    st.write_bytes(struct.pack("<Q", 1000000) + raw[8:1000])
    return d


@case("header-length-over-cap", "header size 100000001 exceeds the limit of 100000000 bytes")
def _(d):
    d, st = checkpoint(d)
    with open(st, "wb") as f:
        f.write(struct.pack("<Q", 100_000_001))
        f.truncate(100_000_100)  # sparse: costs no disk
    return d


@case("header-not-json", "model.safetensors: header is not valid JSON: [1:11, byte=11]")
def _(d):
    d, st = checkpoint(d)
    header, body = read_st(st)
    write_st(st, header, body, header_text=b'{"a": [1, 2')
    return d


@case("header-not-object", "model.safetensors: header does not start with '{'")
def _(d):
    d, st = checkpoint(d)
    write_st(st, None, b"", header_text=b"[1, 2, 3]")
    return d


@case("header-duplicate-key", "header has a duplicate key 'model.norm.weight'")
def _(d):
    d, st = checkpoint(d)
    header, body = read_st(st)
    text = json.dumps(header)
    norm = json.dumps(header["model.norm.weight"])
    text = text[:-1] + ', "model.norm.weight": ' + norm + "}"
    write_st(st, header, body, header_text=text.encode())
    return d


@case("offsets-overlap", "'data_offsets' begin 65532 overlaps the previous tensor, which ends at 65536")
def _(d):
    def fn(header, body):
        (a, ia), (b, ib) = tensors_by_offset(header)[:2]
        ib["data_offsets"] = [ib["data_offsets"][0] - 4, ib["data_offsets"][1] - 4]
        return body
    return edit_header(d, fn)


@case("offsets-gap", "'data_offsets' begin 65552 leaves a gap after the previous tensor, which ends at 65536")
def _(d):
    def fn(header, body):
        # Shift every tensor after the first by 16 bytes of padding.
        first = tensors_by_offset(header)[0][1]["data_offsets"][1]
        for name, info in tensors_by_offset(header)[1:]:
            info["data_offsets"] = [o + 16 for o in info["data_offsets"]]
        return body[:first] + bytes(16) + body[first:]
    return edit_header(d, fn)


@case("offsets-reversed", "tensor 'model.embed_tokens.weight': 'data_offsets' end 0 is before begin 65536")
def _(d):
    def fn(header, body):
        info = tensors_by_offset(header)[0][1]
        info["data_offsets"] = info["data_offsets"][::-1]
        return body
    return edit_header(d, fn)


@case("offsets-past-data", "tensors cover 263488 bytes, but the file holds 263424 bytes of tensor data")
def _(d):
    def fn(header, body):
        info = tensors_by_offset(header)[-1][1]
        info["data_offsets"][1] += 64
        info["shape"] = [info["data_offsets"][1] - info["data_offsets"][0]]
        info["dtype"] = "U8"
        return body
    return edit_header(d, fn)


@case("offsets-not-integers", "'data_offsets' holds a value that is not a size")
def _(d):
    def fn(header, body):
        tensors_by_offset(header)[0][1]["data_offsets"] = ["0", "16"]
        return body
    return edit_header(d, fn)


@case("dtype-unknown", "tensor 'model.embed_tokens.weight': unknown 'dtype' \"F17\"")
def _(d):
    def fn(header, body):
        tensors_by_offset(header)[0][1]["dtype"] = "F17"
        return body
    return edit_header(d, fn)


@case("dtype-size-mismatch", "tensor 'model.norm.weight': 'data_offsets' span 256 bytes, but shape and dtype need 512")
def _(d):
    def fn(header, body):
        info = header["model.norm.weight"]
        info["dtype"] = "F64"
        return body
    return edit_header(d, fn)


@case("shape-size-mismatch", "tensor 'model.norm.weight': 'data_offsets' span 256 bytes, but shape and dtype need 768")
def _(d):
    def fn(header, body):
        header["model.norm.weight"]["shape"] = [3, 64]
        return body
    return edit_header(d, fn)


@case("shape-negative", "tensor 'model.norm.weight': 'shape' holds a value that is not a size")
def _(d):
    def fn(header, body):
        header["model.norm.weight"]["shape"] = [-64]
        return body
    return edit_header(d, fn)


@case("shape-product-overflows", "tensor 'model.norm.weight': 'shape' overflows when multiplied out")
def _(d):
    def fn(header, body):
        header["model.norm.weight"]["shape"] = [2**32, 2**32, 16]
        return body
    return edit_header(d, fn)


@case("metadata-not-strings", "'__metadata__' entry 'format' is not a string")
def _(d):
    def fn(header, body):
        header["__metadata__"] = {"format": 7}
        return body
    return edit_header(d, fn)


@case("git-lfs-pointer", "model.safetensors: is a Git LFS pointer file, not the tensor data")
def _(d):
    d, st = checkpoint(d)
    st.write_text("version https://git-lfs.github.com/spec/v1\n"
                  "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
                  "size 265480\n")
    return d


@case("weight-dtype-unsupported", "tensor 'model.norm.weight' has dtype I32; only F32, F16 and BF16 weights are supported")
def _(d):
    def fn(header, body):
        info = header["model.norm.weight"]
        info["dtype"] = "I32"
        return body
    return edit_header(d, fn)


@case("weight-shape-contradicts-config", "tensor 'model.norm.weight' has shape [32], but config.json implies [64]")
def _(d):
    def fn(header, body):
        header["model.norm.weight"]["shape"] = [32]
        header["model.norm.weight"]["dtype"] = "F64"
        return body
    return edit_header(d, fn)


@case("weight-missing", "the checkpoint has no tensor 'model.norm.weight'")
def _(d):
    d, st = checkpoint(d)
    header, body = read_st(st)
    del header["model.norm.weight"]
    # Keep the buffer covered: the tensor's bytes become an unused tensor
    # of the same size... which would be refused for being extra; instead
    # rebuild the body without it.
    out, chunks, offset = {}, [], 0
    for name, info in tensors_by_offset(header):
        a, b = info["data_offsets"]
        chunks.append(body[a:b])
        out[name] = dict(info, data_offsets=[offset, offset + b - a])
        offset += b - a
    write_st(st, out, b"".join(chunks))
    return d


@case("weight-extra", "tensor 'model.layers.0.surprise' is not part of a llama model")
def _(d):
    def fn(header, body):
        end = len(body)
        header["model.layers.0.surprise"] = {"dtype": "F32", "shape": [2],
                                             "data_offsets": [end, end + 8]}
        return body + bytes(8)
    return edit_header(d, fn)


# --- config.json ----------------------------------------------------------------

@case("config-missing", "is not a Hugging Face checkpoint folder (it has no config.json)")
def _(d):
    d, _ = checkpoint(d)
    (d / "config.json").unlink()
    return d


@case("config-not-json", "config.json: is not valid JSON: [1:23, byte=23]")
def _(d):
    d, _ = checkpoint(d)
    (d / "config.json").write_text('{"model_type": "llama",')
    return d


@case("config-not-object", "config.json: is not a JSON object")
def _(d):
    d, _ = checkpoint(d)
    (d / "config.json").write_text("[]")
    return d


@case("config-model-type-missing", "field 'model_type' is missing")
def _(d):
    return edit_config(d, model_type=None)


@case("config-model-type-unsupported", "field 'model_type' 'gpt2' is not supported")
def _(d):
    return edit_config(d, model_type="gpt2")


@case("config-wrong-type-string", "field 'hidden_size' must be an integer")
def _(d):
    return edit_config(d, hidden_size="64")


@case("config-wrong-type-bool", "field 'tie_word_embeddings' must be true or false")
def _(d):
    return edit_config(d, tie_word_embeddings="yes")


@case("config-wrong-type-list", "field 'hidden_size' must be an integer")
def _(d):
    return edit_config(d, hidden_size=[64])


@case("config-negative-layers", "field 'num_hidden_layers' must be positive, got -2")
def _(d):
    return edit_config(d, num_hidden_layers=-2)


@case("config-absurd-layers", "field 'num_hidden_layers' is 1000000000000, beyond any real model")
def _(d):
    return edit_config(d, num_hidden_layers=10**12)


@case("config-absurd-experts", "field 'num_local_experts' is 1000000000000, beyond any real model")
def _(d):
    return edit_config(d, "mixtral", num_local_experts=10**12)


@case("config-absurd-vocab", "field 'vocab_size' is 100000000000, beyond any real model")
def _(d):
    return edit_config(d, vocab_size=10**11)


@case("config-topk-exceeds-experts", "field 'num_experts_per_tok' (9) exceeds the number of experts (8)")
def _(d):
    return edit_config(d, "mixtral", num_experts_per_tok=9)


@case("config-kv-heads-indivisible", "field 'num_key_value_heads' (3) must divide num_attention_heads")
def _(d):
    return edit_config(d, num_key_value_heads=3)


@case("config-act-unsupported", "field 'hidden_act' 'relu' is not supported")
def _(d):
    return edit_config(d, hidden_act="relu")


@case("config-eps-infinite", "field 'rms_norm_eps' must be a finite number")
def _(d):
    d, _ = checkpoint(d)
    text = (d / "config.json").read_text()
    cfg = json.loads(text)
    cfg["rms_norm_eps"] = "__INF__"
    (d / "config.json").write_text(json.dumps(cfg).replace('"__INF__"', "1e999"))
    return d


@case("config-rope-unsupported", "field 'rope_scaling.rope_type' 'dynamic' is not a supported RoPE type")
def _(d):
    return edit_config(d, rope_scaling={"rope_type": "dynamic", "factor": 2.0},
                       rope_parameters={"rope_type": "dynamic", "factor": 2.0,
                                        "rope_theta": 10000.0})


@case("config-groups-indivisible", "field 'n_group' (3) must divide n_routed_experts")
def _(d):
    return edit_config(d, "deepseek_v3_fused_noqlora", n_group=3)


# Found by moe-fuzz-hf-config: each once passed the reader and broke an
# invariant the importer relies on (or divided by zero).
@case("config-topk-group-without-groups", "field 'topk_group' (2) exceeds n_group (1)")
def _(d):
    return edit_config(d, "deepseek_v3_fused_noqlora", n_group=None, topk_group=2)


@case("config-heads-not-dividing-hidden", "field 'num_attention_heads' (128) must divide hidden_size (64) when head_dim is not given")
def _(d):
    return edit_config(d, num_attention_heads=128, num_key_value_heads=128,
                       head_dim=None)


@case("config-sparse-step-zero", "field 'decoder_sparse_step' must be positive, got 0")
def _(d):
    return edit_config(d, "qwen2_moe", decoder_sparse_step=0)


# --- sharded checkpoints and their index ----------------------------------------

def sharded(d):
    """llama split into two shards with an index."""
    d, st = checkpoint(d)
    header, body = read_st(st)
    items = tensors_by_offset(header)
    half = len(items) // 2
    weight_map = {}
    for i, part in enumerate((items[:half], items[half:])):
        name = f"model-0000{i + 1}-of-00002.safetensors"
        out, chunks, offset = {}, [], 0
        for tname, info in part:
            a, b = info["data_offsets"]
            chunks.append(body[a:b])
            out[tname] = dict(info, data_offsets=[offset, offset + b - a])
            offset += b - a
            weight_map[tname] = name
        write_st(d / name, out, b"".join(chunks))
    st.unlink()
    index = {"metadata": {}, "weight_map": weight_map}
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    return d, index


@case("index-missing-shard", "model-00002-of-00002.safetensors")
def _(d):
    d, index = sharded(d)
    (d / "model-00002-of-00002.safetensors").unlink()  # not downloaded
    return d


def edit_index(d, fn):
    """The sharded llama with its weight_map changed by fn."""
    d, index = sharded(d)
    fn(index["weight_map"])
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    return d


@case("index-missing-tensor", "weight_map puts tensor 'model.layers.9.ghost.weight' in model-00001-of-00002.safetensors, which does not contain it")
def _(d):
    return edit_index(d, lambda m: m.update(
        {"model.layers.9.ghost.weight": "model-00001-of-00002.safetensors"}))


@case("index-wrong-shard", "weight_map puts tensor 'model.norm.weight' in model-00001-of-00002.safetensors, which does not contain it")
def _(d):
    def move(m):
        shard = m["model.norm.weight"]
        m["model.norm.weight"] = [s for s in set(m.values()) if s != shard][0]
    return edit_index(d, move)


@case("index-not-json", "model.safetensors.index.json: is not valid JSON")
def _(d):
    d, _ = sharded(d)
    (d / "model.safetensors.index.json").write_text("{ weight_map: ")
    return d


@case("index-escaping-path", "weight_map names shard \"../../etc/passwd\", which is not a file inside the checkpoint folder")
def _(d):
    return edit_index(d, lambda m: m.update({"model.norm.weight": "../../etc/passwd"}))


# --- ONNX -------------------------------------------------------------------------

ONNX_HEAD = 'ir_version: 8 opset_import { domain: "" version: 17 } '
ONNX_IO = ('input { name: "x" type { tensor_type { elem_type: 1 shape { dim { dim_value: 2 } dim { dim_value: 2 } } } } } '
           'output { name: "y" type { tensor_type { elem_type: 1 shape { dim { dim_value: 2 } dim { dim_value: 2 } } } } }')


def onnx_case(name, expect, graph, files=None, head=ONNX_HEAD):
    def build(d, encode):
        d.mkdir(parents=True)
        for rel, data in (files or {}).items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_bytes(data)
        encode(head + "graph { " + graph + " }", d / "model.onnx")
        return d / "model.onnx"
    CASES.append(Case(name, "moec-onnx", expect, build))


def ext_init(location, extra=""):
    return ('initializer { name: "w" data_type: 1 dims: 2 dims: 2 data_location: EXTERNAL '
            f'external_data {{ key: "location" value: "{location}" }} {extra}}} ')


MATMUL = 'node { input: "x" input: "w" output: "y" op_type: "MatMul" } '
WEIGHTS = {"weights.bin": bytes(16)}

onnx_case("onnx-cycle", "the graph has a cycle: #0 (Add) <- #1 (Add)",
          'node { input: "x" input: "b" output: "a" op_type: "Add" } '
          'node { input: "a" input: "x" output: "b" op_type: "Add" } '
          'node { input: "a" input: "b" output: "y" op_type: "Add" } ' + ONNX_IO)
onnx_case("onnx-dangling-input", "node #0 (Add) input 'nowhere' is not defined by any node, graph input or initializer",
          'node { input: "x" input: "nowhere" output: "y" op_type: "Add" } ' + ONNX_IO)
onnx_case("onnx-undefined-output", "graph output 'y' is not defined by any node, graph input or initializer",
          'node { input: "x" input: "x" output: "z" op_type: "Add" } ' + ONNX_IO)
# Found by moe-fuzz-onnx: handlers read their required inputs directly.
onnx_case("onnx-missing-required-input", "first node #0 (Reshape): has 1 input; the operator needs 2",
          'node { input: "x" output: "y" op_type: "Reshape" } ' + ONNX_IO)
onnx_case("onnx-missing-output", "first node #0 (Add): has 0 outputs; the operator gives 1",
          'node { input: "x" input: "x" op_type: "Add" } '
          'node { input: "x" output: "y" op_type: "Identity" } ' + ONNX_IO)
onnx_case("onnx-external-absolute", "external data location '/etc/passwd' is absolute",
          ext_init("/etc/passwd") + MATMUL + ONNX_IO)
onnx_case("onnx-external-dotdot", "contains '..'",
          ext_init("sub/../../weights.bin") + MATMUL + ONNX_IO, WEIGHTS)
onnx_case("onnx-external-missing", "does not name a readable file",
          ext_init("nothere.bin") + MATMUL + ONNX_IO)
onnx_case("onnx-external-length", "has external data length 8, but its shape and type need 16 bytes",
          ext_init("weights.bin", 'external_data { key: "length" value: "8" } ') + MATMUL + ONNX_IO,
          WEIGHTS)
onnx_case("onnx-external-past-end", "lies past the end of 'weights.bin'",
          ext_init("weights.bin", 'external_data { key: "offset" value: "8" } ') + MATMUL + ONNX_IO,
          WEIGHTS)
onnx_case("onnx-raw-data-size", "has 12 bytes of raw_data, but its shape and type need 16",
          'initializer { name: "w" data_type: 1 dims: 2 dims: 2 raw_data: "0123456789ab" } '
          + MATMUL + ONNX_IO)
onnx_case("onnx-dims-overflow", "has a shape whose element count overflows",
          'initializer { name: "w" data_type: 1 dims: 4294967296 dims: 4294967296 dims: 4294967296 raw_data: "" } '
          + MATMUL + ONNX_IO)
onnx_case("onnx-ir-version", "ir_version 3 is not supported",
          MATMUL + ONNX_IO, head='ir_version: 3 opset_import { domain: "" version: 17 } ')
onnx_case("onnx-unknown-op", "1 of the graph's 1 node (1 op kind) cannot be imported:",
          'node { input: "x" output: "y" op_type: "FrobnicateTensor" } ' + ONNX_IO)


def onnx_symlink_escape(d, encode):
    (d / "outside").mkdir(parents=True)
    (d / "outside" / "w.bin").write_bytes(bytes(16))
    (d / "model").mkdir()
    os.symlink("../outside/w.bin", d / "model" / "link.bin")
    encode(ONNX_HEAD + "graph { " + ext_init("link.bin") + MATMUL + ONNX_IO + " }",
           d / "model" / "model.onnx")
    return d / "model" / "model.onnx"


CASES.append(Case("onnx-external-symlink-escape", "moec-onnx",
                  "leaves the model's folder through a symbolic link", onnx_symlink_escape))


def onnx_garbage(d, encode):
    d.mkdir(parents=True)
    (d / "model.onnx").write_bytes(b"not a protobuf \xff\xff\xff\x01\x02")
    return d / "model.onnx"


CASES.append(Case("onnx-not-protobuf", "moec-onnx", "is not an ONNX model", onnx_garbage))


# --- artifacts ----------------------------------------------------------------------

def compiled(d, tools, embed=True, capacity=16):
    d.mkdir(parents=True)
    ckpt = d / "ckpt"
    shutil.copytree(HF / "llama", ckpt, ignore=shutil.ignore_patterns("oracle"))
    art = d / "m.moec"
    cmd = [tools.moec, str(ckpt), "--target=cpu", f"--max-seq-len={capacity}",
           "-o", str(art)]
    subprocess.run(cmd + (["--embed-weights"] if embed else []), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return art, ckpt


def artifact_case(name, expect, mutate, embed=True, capacity=16):
    def build(d, tools):
        art, ckpt = compiled(d, tools, embed, capacity)
        mutate(art, ckpt)
        return art
    CASES.append(Case(name, "moe-run", expect, build))


def flip(offset_from_end):
    def mutate(art, ckpt):
        raw = bytearray(art.read_bytes())
        raw[len(raw) - offset_from_end] ^= 0x40
        art.write_bytes(bytes(raw))
    return mutate


def manifest_edit(fn):
    def mutate(art, ckpt):
        raw = art.read_bytes()
        art.write_bytes(fn(raw))
    return mutate


artifact_case("artifact-corrupt-weights", "the embedded weights are corrupt", flip(100))
artifact_case("artifact-corrupt-manifest", "the manifest is corrupt or was edited",
              manifest_edit(lambda raw: raw.replace(b"vocab\t256", b"vocab\t255", 1)))
artifact_case("artifact-other-format", "artifact format 3, but this runtime reads format 4",
              manifest_edit(lambda raw: raw.replace(b"moec-artifact\t4", b"moec-artifact\t3", 1)))
artifact_case("artifact-truncated", "embedded weights do not match the file size (truncated artifact?)",
              manifest_edit(lambda raw: raw[:len(raw) * 2 // 3]))
artifact_case("artifact-not-an-artifact", "not a moec artifact",
              manifest_edit(lambda raw: b"\x7fELF" + raw[4:]))
artifact_case("artifact-empty", "not a moec artifact (empty file)",
              manifest_edit(lambda raw: b""))


def change_shard(art, ckpt):
    # Same size, other header: the tensors listed in reverse order.
    st = ckpt / "model.safetensors"
    raw = st.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    text = json.dumps(dict(reversed(list(header.items()))),
                      separators=(",", ":")).encode()
    assert len(text) <= n
    st.write_bytes(raw[:8] + text + b" " * (n - len(text)) + raw[8 + n:])


def grow_shard(art, ckpt):
    with open(ckpt / "model.safetensors", "ab") as f:
        f.write(b"\0")


artifact_case("artifact-checkpoint-changed", "the checkpoint shard changed since the artifact was compiled (header fingerprint differs)",
              change_shard, embed=False)
artifact_case("artifact-checkpoint-resized", "the checkpoint shard changed since the artifact was compiled (size differs)",
              grow_shard, embed=False)
# A KV cache no machine has (2^30 tokens): refused before the compiled code
# tries to allocate it.
artifact_case("artifact-kv-cache-too-large",
              "the KV cache for 1073741824 tokens needs 512.0 GiB of host memory",
              lambda art, ckpt: None, capacity=2**30)
artifact_case("artifact-checkpoint-moved", "cannot open the checkpoint shard",
              lambda art, ckpt: shutil.rmtree(ckpt), embed=False)


# --- the driver -----------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moec", required=True)
    parser.add_argument("--moe-run", required=True)
    parser.add_argument("--protoc", required=True)
    parser.add_argument("--onnx-proto-dir", required=True)
    parser.add_argument("--only", default="")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("work", type=pathlib.Path)
    tools = parser.parse_args()
    if tools.list:
        for c in CASES:
            print(c.name)
        return 0

    def encode(text, path):
        with open(path, "wb") as out:
            subprocess.run([tools.protoc, "--encode=onnx.ModelProto",
                            f"-I{tools.onnx_proto_dir}", "onnx/onnx.proto"],
                           input=text.encode(), stdout=out, check=True)

    shutil.rmtree(tools.work, ignore_errors=True)
    tools.work.mkdir(parents=True)
    failures = 0
    selected = [c for c in CASES if tools.only in c.name]
    for c in selected:
        d = tools.work / c.name
        if c.tool == "moec":
            source = c.build(d)
            out = tools.work / (c.name + ".out")
            cmd = [tools.moec, str(source), "--target=cpu", "-o", str(out)]
        elif c.tool == "moec-onnx":
            source = c.build(d, encode)
            out = tools.work / (c.name + ".out")
            cmd = [tools.moec, str(source), "--target=cpu", "-o", str(out)]
        else:
            source = c.build(d, tools)
            out = None
            cmd = [tools.moe_run, str(source), "--tokens", "1,2,3", "--generate", "2"]
        before = set(os.listdir(tools.work))
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
            status, err = r.returncode, r.stderr
        except subprocess.TimeoutExpired:
            status, err = "timeout", ""
        # One diagnostic line; a report may follow it as indented detail
        # lines (the ONNX importer lists every op kind it lacks).
        lines = [line for line in err.splitlines()
                 if line.strip() and not line.startswith("  ")]
        problems = []
        if status == "timeout":
            problems.append(f"no answer within {TIMEOUT} s")
        elif status == 0:
            problems.append("exit status 0")
        elif status < 0 or status > 125:
            problems.append(f"killed or crashed (status {status})")
        if status != "timeout" and len(lines) != 1:
            problems.append(f"{len(lines)} lines on stderr, want 1")
        if status != "timeout" and c.expect not in err:
            problems.append(f"no '{c.expect}' on stderr")
        left = set(os.listdir(tools.work)) - before
        if out is not None and out.exists():
            problems.append("the output file exists")
        if left:
            problems.append(f"left behind: {sorted(left)}")
        if problems:
            failures += 1
            print(f"FAIL {c.name}: {'; '.join(problems)}")
            for line in err.splitlines()[:5]:
                print(f"     | {line}")
        else:
            print(f"ok   {c.name}: {lines[0]}")
        if out is not None and out.exists():
            out.unlink()
    print(f"{len(selected)} cases, {len(selected) - failures} refused as expected, "
          f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
