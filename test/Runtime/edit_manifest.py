#!/usr/bin/env python3
"""Rewrites manifest lines of a moec artifact, keeping the code where it is,
to test that the runtime refuses hostile or inconsistent manifests.

  edit_manifest.py SRC DST --set 'PREFIX=NEW LINE' [--drop PREFIX] [--add LINE]

`--set` replaces the first line starting with PREFIX; \\t in PREFIX and NEW LINE are
written as \\t. Standard library only.
"""
import argparse
import re

p = argparse.ArgumentParser()
p.add_argument("src")
p.add_argument("dst")
p.add_argument("--set", action="append", default=[])
p.add_argument("--drop", action="append", default=[])
p.add_argument("--add", action="append", default=[])
a = p.parse_args()
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
head = ("\n".join(lines) + "\nend\n").encode()
assert len(head) <= code
open(a.dst, "wb").write(head + b"\n" * (code - len(head)) + data[code:])
