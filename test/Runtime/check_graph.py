#!/usr/bin/env python3
"""Runs a graph artifact (a compiled ONNX model) with moe-run on named
.npy inputs and compares every output with a reference .npy (onnxruntime's
output, recorded by scripts/fixtures/make_onnx_fixtures.py). Standard
library only (CI has no numpy).

  check_graph.py MOE_RUN ARTIFACT OUT_DIR --input NAME=FILE ...
                 --expect NAME=FILE ... [--tolerance T]

Float outputs must have the reference's shape and lie within
T x max|reference| (default 1e-4) of it everywhere; integer and bool
outputs must be equal. Prints one line per output and exits non-zero on
the first difference, naming the output and the worst element.
"""

import argparse
import ast
import os
import re
import struct
import subprocess
import sys

FORMATS = {"<f4": "f", "<f8": "d", "<f2": "e", "<i8": "q", "<i4": "i",
           "|b1": "?", "<u2": "H"}


def read_npy(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        sys.exit(f"{path}: not a .npy file")
    if data[6] == 1:
        header_len, start = struct.unpack("<H", data[8:10])[0], 10
    else:
        header_len, start = struct.unpack("<I", data[8:12])[0], 12
    header = ast.literal_eval(data[start:start + header_len].decode("latin1"))
    descr, shape = header["descr"], tuple(header["shape"])
    if descr not in FORMATS or header["fortran_order"]:
        sys.exit(f"{path}: unsupported array type {descr}")
    count = 1
    for d in shape:
        count *= d
    body = data[start + header_len:]
    values = struct.unpack(f"<{count}{FORMATS[descr]}",
                           body[:count * struct.calcsize(FORMATS[descr])])
    return descr, shape, values


def sanitise(name):
    file = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return "_" + file if not file or file.startswith(".") else file


class Mismatch(Exception):
    pass


def check(moe_run, artifact, out_dir, inputs, expects, tolerance):
    """Runs `artifact` on `inputs` [(name, file)] and compares the outputs
    with `expects` [(name, file)]; returns one line per output, raises
    Mismatch on the first difference."""
    cmd = [moe_run, artifact, "--output-dir", out_dir]
    for name, path in inputs:
        cmd += ["--input", f"{name}={path}"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise Mismatch(f"moe-run failed: {run.stderr.strip()}")
    lines = []
    for name, ref_path in expects:
        out_path = os.path.join(out_dir, sanitise(name) + ".npy")
        if not os.path.exists(out_path):
            raise Mismatch(f"output '{name}': moe-run wrote no {out_path}")
        rdescr, rshape, ref = read_npy(ref_path)
        odescr, oshape, out = read_npy(out_path)
        if (rdescr, rshape) != (odescr, oshape):
            raise Mismatch(f"output '{name}': {odescr} {oshape}, onnxruntime's "
                           f"{rdescr} {rshape}")
        if rdescr[1] == "f":
            scale = max((abs(v) for v in ref), default=0.0) or 1.0
            worst = max(range(len(ref)), key=lambda i: abs(out[i] - ref[i]),
                        default=None)
            diff = 0.0 if worst is None else abs(out[worst] - ref[worst])
            if diff != diff or diff > tolerance * scale:
                raise Mismatch(f"output '{name}': element {worst} is "
                               f"{out[worst]}, onnxruntime's {ref[worst]} "
                               f"(difference {diff / scale:.3g} x max|ref|, "
                               f"tolerance {tolerance})")
            lines.append(f"{name}: OK {odescr} {list(oshape)} max diff "
                         f"{diff / scale:.2g} x max|ref|")
        else:
            bad = [i for i in range(len(ref)) if out[i] != ref[i]]
            if bad:
                raise Mismatch(f"output '{name}': element {bad[0]} is "
                               f"{out[bad[0]]}, onnxruntime's {ref[bad[0]]} "
                               f"({len(bad)} differ)")
            lines.append(f"{name}: OK {odescr} {list(oshape)} exact")
    return lines


def main():
    p = argparse.ArgumentParser()
    p.add_argument("moe_run")
    p.add_argument("artifact")
    p.add_argument("out_dir")
    p.add_argument("--input", action="append", default=[])
    p.add_argument("--expect", action="append", default=[])
    p.add_argument("--tolerance", type=float, default=1e-4)
    a = p.parse_args()
    split = lambda specs: [tuple(spec.split("=", 1)) for spec in specs]
    try:
        for line in check(a.moe_run, a.artifact, a.out_dir, split(a.input),
                          split(a.expect), a.tolerance):
            print(line)
    except Mismatch as e:
        sys.exit(str(e))


if __name__ == "__main__":
    main()
