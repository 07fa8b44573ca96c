#!/usr/bin/env python3
"""Compiles models with `moec --target=cuda --emit=ptx` and assembles the PTX
with ptxas, as the CUDA driver's JIT would.

Usage: ptxas_check.py --moec M --ptxas P --arch sm_90a [--allow-spills]
                      MODEL...

Each MODEL is a checkpoint folder or an .onnx file. Prints one line per
model (kernels, most registers, stack, spill bytes) and fails when moec or
ptxas fails, or when a kernel spills registers (ptxas -v reports spill
stores or loads), unless --allow-spills.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

PROPERTIES = re.compile(
    r"Function properties for (\S+)\n\s*(\d+) bytes stack frame, "
    r"(\d+) bytes spill stores, (\d+) bytes spill loads")
REGISTERS = re.compile(r"Used (\d+) registers")


def check(model, args, scratch):
    name = model.rstrip("/")
    ptx = os.path.join(scratch, re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".ptx")
    moec = subprocess.run(
        [args.moec, model, "--target=cuda", "--gpu-arch=" + args.arch,
         "--emit=ptx", "-o", ptx], capture_output=True, text=True)
    if moec.returncode != 0:
        return False, f"FAIL {name}: moec: {moec.stderr.strip()}"
    ptxas = subprocess.run(
        [args.ptxas, "-arch=" + args.arch, "-v", ptx, "-o", os.devnull],
        capture_output=True, text=True)
    log = ptxas.stdout + ptxas.stderr
    if ptxas.returncode != 0:
        errors = [l for l in log.splitlines() if "error" in l.lower()]
        return False, f"FAIL {name}: ptxas: {'; '.join(errors[:3]) or log[:300]}"
    kernels = PROPERTIES.findall(log)
    if not kernels:
        return False, f"FAIL {name}: ptxas reported no kernels"
    spilling = [(k, int(s) + int(l)) for k, _, s, l in kernels
                if int(s) or int(l)]
    registers = max((int(r) for r in REGISTERS.findall(log)), default=0)
    stack = max(int(f) for _, f, _, _ in kernels)
    line = (f"{name}: {len(kernels)} kernels, up to {registers} registers, "
            f"{stack} bytes of stack")
    if spilling and not args.allow_spills:
        listed = ", ".join(f"{k} ({b} bytes)" for k, b in spilling)
        return False, f"FAIL {line}; spills in {listed}"
    return True, ("OK " if not spilling else "OK (spills allowed) ") + line


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moec", required=True)
    parser.add_argument("--ptxas", required=True)
    parser.add_argument("--arch", required=True)
    parser.add_argument("--allow-spills", action="store_true")
    parser.add_argument("models", nargs="+")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as scratch:
        for model in args.models:
            passed, line = check(model, args, scratch)
            print(line, flush=True)
            ok &= passed
    print(f"{args.arch}: {len(args.models)} models " +
          ("assembled" if ok else "NOT all assembled"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
