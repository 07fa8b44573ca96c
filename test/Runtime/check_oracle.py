#!/usr/bin/env python3
"""Runs moe-run on an artifact with a fixture's prompt and compares its
greedy tokens and logits with the transformers oracle of that fixture.
Standard library only (CI has no numpy).

  check_oracle.py MOE_RUN ARTIFACT FIXTURE_DIR WORK_PREFIX [--tolerance T]

Exits non-zero, saying what differs, if the generated ids differ from
expected.json's greedy_ids, any logits row is further than
T x max|oracle logit| (default 1e-4) from the oracle, or prefilling then
decoding gives logits further than that from prefilling the whole sequence.
"""

import argparse
import json
import subprocess
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_graph import read_npy as read_array  # noqa: E402


def read_npy(path):
    """A float32 .npy of rank 2 as a list of rows."""
    descr, shape, values = read_array(path)
    if descr != "<f4" or len(shape) != 2:
        sys.exit(f"{path}: not a 2-D float32 array")
    return [list(values[i * shape[1]:(i + 1) * shape[1]]) for i in range(shape[0])]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("moe_run")
    p.add_argument("artifact")
    p.add_argument("fixture")
    p.add_argument("work")
    p.add_argument("--tolerance", type=float, default=1e-4)
    p.add_argument("--prefill-only", metavar="ORACLE_NPY",
                   help="compare only the prompt's logits with this oracle file "
                        "(BF16 fixtures: transformers' f32 run), no token check")
    a = p.parse_args()
    with open(f"{a.fixture}/oracle/expected.json") as f:
        expected = json.load(f)
    prompt = expected["prompt_ids"]
    greedy = expected["greedy_ids"]
    dump = a.work + ".npy"
    run = subprocess.run([a.moe_run, a.artifact, "--tokens", ",".join(map(str, prompt)),
                          "--generate", str(len(greedy)), "--dump-logits", dump],
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"moe-run failed: {run.stderr.strip()}")
    ids = [int(x) for x in run.stdout.split()]
    ours = read_npy(dump)
    if a.prefill_only:
        oracle = read_npy(f"{a.fixture}/{a.prefill_only}")
        scale = max(abs(v) for row in oracle for v in row)
        error = max(abs(x - y) for i in range(len(prompt)) for x, y in zip(ours[i], oracle[i]))
        print(f"prefill max logit error {error:.3g} = {error / scale:.3g} x max|logit| ({scale:.3g})")
        if len(ids) != len(greedy) or error > a.tolerance * scale:
            sys.exit(f"prefill logit error {error:.3g} exceeds {a.tolerance} x {scale:.3g}")
        return
    prefill = read_npy(f"{a.fixture}/oracle/logits.npy")
    decode = read_npy(f"{a.fixture}/oracle/decode_logits.npy")
    scale = max(abs(v) for row in prefill for v in row)
    s = len(prompt)
    # Our rows: the prompt's, then one per decode step; the oracle's decode
    # rows start with the last prompt row.
    pairs = [(ours[i], prefill[i]) for i in range(s)]
    pairs += [(ours[s - 1 + i], decode[i]) for i in range(len(greedy))]
    error = max(abs(x - y) for mine, theirs in pairs for x, y in zip(mine, theirs))
    print(f"greedy ids {'match' if ids == greedy else 'DIFFER'}; max logit error "
          f"{error:.3g} = {error / scale:.3g} x max|logit| ({scale:.3g})")
    if ids != greedy:
        sys.exit(f"generated {ids}, transformers {greedy}")
    if error > a.tolerance * scale:
        sys.exit(f"logit error {error:.3g} exceeds {a.tolerance} x {scale:.3g}")

    # Prefill-then-decode must equal prefilling the whole sequence at once.
    whole = a.work + ".whole.npy"
    full = prompt + greedy[:-1]
    run = subprocess.run([a.moe_run, a.artifact, "--tokens", ",".join(map(str, full)),
                          "--generate", "1", "--dump-logits", whole],
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"moe-run failed: {run.stderr.strip()}")
    at_once = read_npy(whole)
    drift = max(abs(x - y) for mine, other in zip(ours, at_once) for x, y in zip(mine, other))
    print(f"prefill-then-decode vs one prefill: max difference {drift / scale:.3g} x max|logit|")
    if len(at_once) != len(ours) or drift > a.tolerance * scale:
        sys.exit(f"decode differs from a full prefill by {drift:.3g}")


if __name__ == "__main__":
    main()
