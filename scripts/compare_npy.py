#!/usr/bin/env python3
"""Compares two float32 .npy arrays with only the standard library (the GPU
machines scripts/gpu-check.sh runs on may have no numpy).

Usage: compare_npy.py GOT.npy WANT.npy REL_TOL [--rows-argmax]

Passes when max|got - want| <= REL_TOL * max|want| and the shapes agree;
with --rows-argmax, also reports how many rows (the last dimension's
vectors) have the same argmax. Prints one line, exits 0 on pass, 1 on
failure, 2 on unreadable input.
"""
import ast
import struct
import sys


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        raise ValueError(f"{path}: not a .npy file")
    major = data[6]
    if major == 1:
        (length,) = struct.unpack("<H", data[8:10])
        start = 10
    else:
        (length,) = struct.unpack("<I", data[8:12])
        start = 12
    header = ast.literal_eval(data[start:start + length].decode("latin1"))
    if header["descr"] != "<f4" or header["fortran_order"]:
        raise ValueError(f"{path}: {header['descr']} (only C-order <f4)")
    shape = tuple(header["shape"])
    count = 1
    for d in shape:
        count *= d
    body = data[start + length:]
    values = struct.unpack(f"<{count}f", body[:4 * count])
    return shape, values


def main():
    if len(sys.argv) not in (4, 5):
        print(__doc__)
        return 2
    try:
        got_shape, got = load(sys.argv[1])
        want_shape, want = load(sys.argv[2])
    except (OSError, ValueError, KeyError, SyntaxError) as e:
        print(f"FAIL unreadable: {e}")
        return 2
    tol = float(sys.argv[3])
    if got_shape != want_shape:
        print(f"FAIL shape {list(got_shape)} != {list(want_shape)}")
        return 1
    scale = max((abs(w) for w in want), default=0.0) or 1.0
    err = max((abs(g - w) for g, w in zip(got, want)), default=0.0)
    finite = all(g == g and abs(g) != float("inf") for g in got)
    line = f"max|diff| = {err / scale:.2e} x max|want| (tol {tol:g})"
    if len(sys.argv) == 5 and want_shape:
        width = want_shape[-1]
        rows = len(want) // width if width else 0
        same = 0
        for r in range(rows):
            g = got[r * width:(r + 1) * width]
            w = want[r * width:(r + 1) * width]
            same += g.index(max(g)) == w.index(max(w))
        line += f", argmax equal in {same}/{rows} rows"
    ok = finite and err <= tol * scale
    print(("OK " if ok else "FAIL ") + line + ("" if finite else ", non-finite values"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
