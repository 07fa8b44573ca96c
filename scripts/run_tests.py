#!/usr/bin/env python3
"""Runs every moec test (lit and ctest) from a build folder and prints one
summary line, `N passed, N failed[, N skipped]`, summed over both.

Exits non-zero if any test failed or a runner could not run.

    scripts/run_tests.py --build-dir build [--lit lit-22] [-j N]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

LIT_PASS = {"PASS", "XFAIL", "FLAKYPASS"}
LIT_SKIP = {"UNSUPPORTED", "SKIPPED", "EXCLUDED"}


def run_lit(args, tmp):
    results = os.path.join(tmp, "lit.json")
    cmd = [args.lit, "-sv", "-j", str(args.jobs), "-o", results,
           os.path.join(args.build_dir, "test")]
    print("==> " + " ".join(cmd), flush=True)
    exit_code = subprocess.run(cmd).returncode
    if not os.path.exists(results):
        print("error: lit produced no results", file=sys.stderr)
        return None
    with open(results) as f:
        data = json.load(f)
    passed = failed = skipped = 0
    for test in data.get("tests", []):
        code = test.get("code")
        if code in LIT_PASS:
            passed += 1
        elif code in LIT_SKIP:
            skipped += 1
        else:
            failed += 1
    return fold_exit_code("lit", exit_code, passed, failed, skipped)


def fold_exit_code(runner, exit_code, passed, failed, skipped):
    """A runner that ran nothing, or failed without a failing test (a crash, a
    broken configuration), counts as one failure."""
    if passed + failed == 0:
        print(f"error: {runner} ran no test", file=sys.stderr)
        failed += 1
    elif exit_code != 0 and failed == 0:
        print(f"error: {runner} exited with {exit_code}", file=sys.stderr)
        failed += 1
    return passed, failed, skipped


def run_ctest(args, tmp):
    junit = os.path.join(tmp, "ctest.xml")
    cmd = ["ctest", "--test-dir", args.build_dir, "--output-on-failure",
           "-j", str(args.jobs), "--output-junit", junit]
    print("==> " + " ".join(cmd), flush=True)
    exit_code = subprocess.run(cmd).returncode
    if not os.path.exists(junit):
        print("error: ctest produced no results", file=sys.stderr)
        return None
    suite = ET.parse(junit).getroot()
    passed = failed = skipped = 0
    for case in suite.iter("testcase"):
        status = case.get("status", "")
        if case.find("failure") is not None or status == "fail":
            failed += 1
        elif status == "disabled":
            skipped += 1
        elif status == "notrun" or case.find("skipped") is not None:
            # ctest reports a test it could not run (missing executable,
            # failed fixture) as "notrun": that is a failure, not a skip.
            failed += 1
        else:
            passed += 1
    return fold_exit_code("ctest", exit_code, passed, failed, skipped)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", default="build")
    parser.add_argument("--lit", default=shutil.which("lit-22") or "lit")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()

    # A sanitizer build (MOE_SANITIZE=ON): any report fails its test.
    # allow_user_poisoning=0: LLVM's headers poison their allocators' memory
    # when they see ASan, but Debian's libMLIR (not instrumented) reuses it,
    # which ASan would take for use-after-poison in MLIR's own code.
    cache = os.path.join(args.build_dir, "CMakeCache.txt")
    if os.path.exists(cache) and "MOE_SANITIZE:BOOL=ON" in open(cache).read():
        os.environ.setdefault("ASAN_OPTIONS",
                              "allow_user_poisoning=0:detect_leaks=1:"
                              "strict_string_checks=1:detect_stack_use_after_return=1")
        os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")

    with tempfile.TemporaryDirectory() as tmp:
        counts = [run_lit(args, tmp), run_ctest(args, tmp)]
    if any(c is None for c in counts):
        print("0 passed, 1 failed")
        return 1
    passed = sum(c[0] for c in counts)
    failed = sum(c[1] for c in counts)
    skipped = sum(c[2] for c in counts)
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
