#!/usr/bin/env python3
"""Rewrites manifest lines of a moec artifact, keeping the code where it is,
to test that the runtime refuses hostile or inconsistent manifests.

  edit_manifest.py SRC DST --set 'PREFIX=NEW LINE' [--drop PREFIX] [--add LINE]
                   [--stale-check]

`--set` replaces the first line starting with PREFIX; \\t in PREFIX and NEW LINE are
written as \\t. The manifest's 'check' line is recomputed (so the edit itself
is what the runtime sees), unless --stale-check keeps the old one.
Standard library only.
"""
import argparse
import re

p = argparse.ArgumentParser()
p.add_argument("src")
p.add_argument("dst")
p.add_argument("--set", action="append", default=[])
p.add_argument("--drop", action="append", default=[])
p.add_argument("--add", action="append", default=[])
p.add_argument("--stale-check", action="store_true")
a = p.parse_args()


def checksum(data):
    """include/moe/Support/Checksum.h, in Python."""
    m = (1 << 64) - 1
    p1, p2, p3 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9
    rotl = lambda x, r: ((x << r) | (x >> (64 - r))) & m
    word = lambda i: int.from_bytes(data[i:i + 8], "little")
    n = len(data)
    h = [n ^ p1, p2, p3, p1 ^ p2]
    i = 0
    while i + 32 <= n:
        for j in range(4):
            h[j] = rotl(h[j] ^ (word(i + 8 * j) * p1 & m), 31) * p2 & m
        i += 32
    while i + 8 <= n:
        h[0] = rotl(h[0] ^ (word(i) * p1 & m), 31) * p2 & m
        i += 8
    while i < n:
        h[1] = rotl(h[1] ^ (data[i] * p3 & m), 23) * p1 & m
        i += 1
    x = h[0] ^ rotl(h[1], 7) ^ rotl(h[2], 12) ^ rotl(h[3], 18)
    x ^= x >> 33
    x = x * p2 & m
    x ^= x >> 29
    x = x * p3 & m
    x ^= x >> 32
    return x


data = open(a.src, "rb").read()
code = int(re.search(rb"\ncode\t(\d+)", data).group(1))
end = data.index(b"\nend\n")
lines = data[:end].decode().split("\n")
for item in a.set:
    prefix, new = item.split("=", 1)
    prefix = prefix.replace("\\t", "\t")
    i = next(i for i, l in enumerate(lines) if l.startswith(prefix))
    lines[i] = new.replace("\\t", "\t")
for prefix in a.drop:
    prefix = prefix.replace("\\t", "\t")
    i = next(i for i, l in enumerate(lines) if l.startswith(prefix))
    del lines[i]
for line in a.add:
    lines.insert(len(lines) - 1, line.replace("\\t", "\t"))
if not a.stale_check:
    i = next(i for i, l in enumerate(lines) if l.startswith("check\t"))
    lines[i] = "check\t%x" % checksum(("\n".join(lines[:i]) + "\n").encode())
head = ("\n".join(lines) + "\nend\n").encode()
assert len(head) <= code
open(a.dst, "wb").write(head + b"\n" * (code - len(head)) + data[code:])
