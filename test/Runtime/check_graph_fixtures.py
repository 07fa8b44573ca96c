#!/usr/bin/env python3
"""Compiles every ONNX fixture under FIXTURES to a graph artifact at -O0
and -O2 and checks each with check_graph.py against onnxruntime's recorded
outputs. Standard library only.

  check_graph_fixtures.py MOEC MOE_RUN FIXTURES WORK_DIR [--tolerance T]
                          [--levels=-O0,-O2]

A fixture folder holds model.onnx and either input.npy/expected.npy (one
input, one output) or in.NAME.npy per input and out.NAME.npy per output,
NAME being the graph name sanitised as moe-run does. Graph names come
from `moe-run --signature`. Prints one line per fixture, level and output,
then "fixtures: N checked, M failed"; exits non-zero if any failed.
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_graph import Mismatch, check, sanitise  # noqa: E402


def signature(moe_run, artifact):
    out = subprocess.run([moe_run, artifact, "--signature"], capture_output=True,
                         text=True, check=True).stdout
    names = {"input": [], "output": []}
    for line in out.splitlines():
        kind, rest = line.split(" ", 1)
        names[kind].append(rest.rsplit(": ", 1)[0])
    return names["input"], names["output"]


def files_for(folder, names, prefix, single):
    if len(names) == 1 and os.path.exists(os.path.join(folder, single)):
        return [(names[0], os.path.join(folder, single))]
    pairs = [(n, os.path.join(folder, f"{prefix}.{sanitise(n)}.npy")) for n in names]
    for n, path in pairs:
        if not os.path.exists(path):
            raise Mismatch(f"no recorded file {path} for '{n}'")
    return pairs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("moec")
    p.add_argument("moe_run")
    p.add_argument("fixtures")
    p.add_argument("work")
    p.add_argument("--tolerance", type=float, default=1e-4)
    p.add_argument("--levels", default="-O0,-O2")
    p.add_argument("--target", default="cpu",
                   help="moec --target for the artifacts (cpu or cuda-on-host)")
    a = p.parse_args()
    checked = failed = 0
    for name in sorted(os.listdir(a.fixtures)):
        folder = os.path.join(a.fixtures, name)
        if not os.path.exists(os.path.join(folder, "model.onnx")):
            continue
        for level in a.levels.split(","):
            checked += 1
            artifact = os.path.join(a.work, f"{name}{level}.moec")
            try:
                compiled = subprocess.run(
                    [a.moec, os.path.join(folder, "model.onnx"), level,
                     "--target=" + a.target, "-o", artifact],
                    capture_output=True, text=True)
                if compiled.returncode != 0:
                    raise Mismatch(f"moec failed: {compiled.stderr.strip()}")
                inputs, outputs = signature(a.moe_run, artifact)
                lines = check(a.moe_run, artifact,
                              os.path.join(a.work, f"{name}{level}.out"),
                              files_for(folder, inputs, "in", "input.npy"),
                              files_for(folder, outputs, "out", "expected.npy"),
                              a.tolerance)
                for line in lines:
                    print(f"{name} {level}: {line}")
            except Mismatch as e:
                failed += 1
                print(f"{name} {level}: FAILED: {e}")
    print(f"fixtures: {checked} checked, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
