#!/usr/bin/env python3
"""Runs two artifacts of the same model on a fixture's prompt (prefill, then
greedy decode steps) and checks that they compute the same logits: the
numerical test of an optimisation pass, run before (-O0) and after it.
Standard library only.

  compare_runs.py MOE_RUN BEFORE AFTER FIXTURE_DIR WORK_PREFIX [--tolerance T]

Exits non-zero if the generated ids differ, or any logit of AFTER is further
than T x max|logit of BEFORE| (default 1e-5) from BEFORE's. Also prefills
prompt + generated tokens in one step, so that both the prefill (many
tokens) and decode (one token) forms of each kernel are compared.
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_oracle import read_npy  # noqa: E402


def run(moe_run, artifact, tokens, generate, dump):
    result = subprocess.run([moe_run, artifact, "--tokens", ",".join(map(str, tokens)),
                             "--generate", str(generate), "--dump-logits", dump],
                            capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"moe-run {artifact} failed: {result.stderr.strip()}")
    return [int(x) for x in result.stdout.split()], read_npy(dump)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("moe_run")
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("fixture")
    p.add_argument("work")
    p.add_argument("--tolerance", type=float, default=1e-5)
    a = p.parse_args()
    with open(f"{a.fixture}/oracle/expected.json") as f:
        expected = json.load(f)
    prompt = expected["prompt_ids"]
    steps = len(expected["greedy_ids"])
    worst = 0.0
    for label, tokens, generate in [("prefill+decode", prompt, steps),
                                    ("long prefill", prompt + expected["greedy_ids"], 1)]:
        ids_b, before = run(a.moe_run, a.before, tokens, generate, a.work + ".before.npy")
        ids_a, after = run(a.moe_run, a.after, tokens, generate, a.work + ".after.npy")
        if ids_a != ids_b:
            sys.exit(f"{label}: generated ids differ: {ids_b} before, {ids_a} after")
        if len(before) != len(after):
            sys.exit(f"{label}: {len(before)} logits rows before, {len(after)} after")
        scale = max(abs(v) for row in before for v in row)
        error = max(abs(x - y) for rb, ra in zip(before, after) for x, y in zip(rb, ra))
        if error > a.tolerance * scale:
            sys.exit(f"{label}: logits differ by {error:.3g} > {a.tolerance} x {scale:.3g}")
        worst = max(worst, error / scale)
    print(f"same ids; max logit difference {worst:.3g} x max|logit|")


if __name__ == "__main__":
    main()
