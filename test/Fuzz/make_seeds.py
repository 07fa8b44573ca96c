#!/usr/bin/env python3
"""Writes a seed corpus for one of moec's libFuzzer targets from the test
fixtures, using only the standard library (and moec, for artifacts).

  make_seeds.py safetensors OUT       small files with each fixture's header
  make_seeds.py hf-config OUT         every fixture config.json
  make_seeds.py onnx OUT              every fixture ONNX model under 64 KiB
  make_seeds.py artifact OUT --moec M graph and decoder artifacts (embedded)

Seeds are kept small: libFuzzer's speed falls with input size, and the
parsers' interesting bytes are headers, not weights.
"""
import argparse
import json
import pathlib
import shutil
import struct
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "test" / "fixtures"

BITS = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "I16": 16,
        "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
        "F64": 64, "I64": 64, "U64": 64}


def safetensors_seeds(out):
    # The fixture's first tensors, shrunk to a few elements each, with
    # offsets recomputed: a valid file the mutator can bend.
    for n, path in enumerate(sorted(FIXTURES.glob("hf/*/*.safetensors"))):
        raw = path.read_bytes()
        (size,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + size])
        small, offset = {}, 0
        if "__metadata__" in header:
            small["__metadata__"] = header.pop("__metadata__")
        for name, info in list(header.items())[:12]:
            shape = [min(d, 3) for d in info["shape"]]
            count = 1
            for d in shape:
                count *= d
            nbytes = count * BITS.get(info["dtype"], 32) // 8
            small[name] = {"dtype": info["dtype"], "shape": shape,
                           "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
        text = json.dumps(small, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        (out / f"{n:02d}.safetensors").write_bytes(
            struct.pack("<Q", len(text)) + text + bytes(range(256)) * (offset // 256)
            + bytes(offset % 256))


def hf_config_seeds(out):
    for n, path in enumerate(sorted(FIXTURES.glob("hf/*/config*.json"))):
        shutil.copy(path, out / f"{n:02d}.json")


def onnx_seeds(out):
    paths = [p for p in sorted(FIXTURES.glob("onnx/*/*.onnx"))
             if p.stat().st_size < 64 * 1024]
    for n, path in enumerate(paths):
        shutil.copy(path, out / f"{n:02d}.onnx")


def artifact_seeds(out, moec):
    jobs = [("graph", FIXTURES / "onnx" / "moe_silu_plain" / "model.onnx", []),
            ("mlp", FIXTURES / "onnx" / "gemm_linear" / "model.onnx", []),
            ("decoder", FIXTURES / "hf" / "llama", ["--max-seq-len=8"])]
    for name, source, extra in jobs:
        subprocess.run([moec, str(source), "--target=cpu", "--embed-weights", "-o",
                        str(out / f"{name}.moec")] + extra, check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target",
                        choices=["safetensors", "hf-config", "onnx", "artifact"])
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--moec", help="moec binary (artifact seeds)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # Past findings run first, every time.
    for path in sorted((pathlib.Path(__file__).parent / "regressions" /
                        args.target).glob("*")):
        shutil.copy(path, args.out / f"regression-{path.name}")
    if args.target == "artifact":
        if not args.moec:
            sys.exit("make_seeds.py: artifact seeds need --moec")
        artifact_seeds(args.out, args.moec)
    else:
        globals()[f"{args.target.replace('-', '_')}_seeds"](args.out)


if __name__ == "__main__":
    main()
