#!/usr/bin/env python3
"""Counts the kernels of each layer function of a program in the moe dialect
(`moec CKPT -O<n>` output): every op that computes, at the top level of the
function or inside the scf.if that chooses between two forms (counted once:
only one branch runs). Views (reshapes, slices, dims), constants and weight
references are not kernels. Each moe op is one kernel in moec's design,
except moe.grouped_experts, which is two (the gate/up GEMM and the down
GEMM). Compare levels with:

  moec CKPT -O0 | scripts/count-kernels.py
"""
import re
import sys
from collections import Counter

VIEWS = {"tensor.collapse_shape", "tensor.expand_shape", "tensor.reshape",
         "tensor.extract_slice", "tensor.dim", "tensor.cast", "arith.constant",
         "arith.cmpi", "moe.weight", "moe.stacked_weight", "func.return",
         "scf.yield", "scf.if", "tensor.from_elements"}
WEIGHT = {"moe.grouped_experts": 2}

text = sys.stdin.read()
for m in re.finditer(r"^  func\.func (?:private )?@(\w+)\(.*?\n(.*?)^  }\n", text, re.S | re.M):
    name, body = m.group(1), m.group(2)
    ops = []
    branch = None  # None, "then" or "else" of a top-level scf.if
    for line in body.split("\n"):
        indent = len(line) - len(line.lstrip())
        stripped = line.strip()
        if indent == 4 and re.match(r"(%[^=]+= )?scf\.if", stripped):
            branch = "then"
            continue
        if branch and indent == 4 and stripped.startswith("} else {"):
            branch = "else"  # the other form of a choice: one of the two runs
            continue
        if branch and indent == 4 and stripped == "}":
            branch = None
            continue
        if indent != (6 if branch else 4) or branch == "else":
            continue  # nested in a kernel's body
        op = re.match(r"(?:%[^=]+= )?([a-z_]+\.[a-z_.]+)", stripped)
        if op and op.group(1) not in VIEWS:
            ops.append(op.group(1))
    total = sum(WEIGHT.get(o, 1) for o in ops)
    counts = ", ".join(f"{k} x{v}" if v > 1 else k for k, v in Counter(ops).items())
    print(f"@{name}: {total} kernels ({counts})")
