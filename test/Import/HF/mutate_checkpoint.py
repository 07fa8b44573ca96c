#!/usr/bin/env python3
"""Copies a checkpoint folder and breaks it in one chosen way, for tests of
the importer's diagnostics. Needs only the standard library.

  mutate_checkpoint.py SRC DST [--set KEY=JSON] [--delete KEY]
                               [--drop-tensor NAME] [--add-tensor NAME]
                               [--config-from FILE] [--to-f16]
"""

import argparse
import json
import os
import shutil
import struct
import sys


def to_f16(info, raw):
    count = len(raw) // 4
    values = struct.unpack(f"<{count}f", raw)
    return dict(info, dtype="F16"), struct.pack(f"<{count}e", *values)


def rewrite_safetensors(path, drop=None, add=None, f16=False):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    meta = header.pop("__metadata__", None)
    tensors = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    out_header, chunks, offset = {}, [], 0
    for name, info in tensors:
        if name == drop:
            continue
        begin, end = info["data_offsets"]
        raw = body[begin:end]
        # The DeepSeek selection bias stays f32, as transformers keeps it.
        if f16 and info["dtype"] == "F32" and not name.endswith("e_score_correction_bias"):
            info, raw = to_f16(info, raw)
        chunks.append(raw)
        out_header[name] = dict(info, data_offsets=[offset, offset + len(raw)])
        offset += len(raw)
    if add:
        out_header[add] = {"dtype": "F32", "shape": [1], "data_offsets": [offset, offset + 4]}
        chunks.append(struct.pack("<f", 1.0))
    if meta is not None:
        out_header["__metadata__"] = meta
    text = json.dumps(out_header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--delete", action="append", default=[])
    p.add_argument("--drop-tensor")
    p.add_argument("--add-tensor")
    p.add_argument("--config-from")
    p.add_argument("--to-f16", action="store_true",
                   help="store every F32 tensor as F16")
    a = p.parse_args()
    if os.path.exists(a.dst):
        shutil.rmtree(a.dst)
    shutil.copytree(a.src, a.dst)
    config_path = os.path.join(a.dst, "config.json")
    if a.config_from:
        shutil.copy(os.path.join(a.src, a.config_from), config_path)
    with open(config_path) as f:
        config = json.load(f)
    for item in a.set:
        key, value = item.split("=", 1)
        config[key] = json.loads(value)
    for key in a.delete:
        config.pop(key, None)
    with open(config_path, "w") as f:
        json.dump(config, f, indent=2)
    if a.drop_tensor or a.add_tensor or a.to_f16:
        files = [x for x in os.listdir(a.dst) if x.endswith(".safetensors")]
        if len(files) != 1:
            sys.exit("tensor edits need a single-file checkpoint")
        rewrite_safetensors(os.path.join(a.dst, files[0]), a.drop_tensor, a.add_tensor,
                            a.to_f16)


if __name__ == "__main__":
    main()
