#!/usr/bin/env python3
"""Copies a moec artifact with one byte inverted, to test that the runtime
detects corruption: in the middle of the code section (`code`), or in the
last byte of the last weight part of the manifest (`last-weight`).

  flip_byte.py SRC DST code|last-weight

Standard library only.
"""
import re
import sys

src, dst, where = sys.argv[1:4]
data = bytearray(open(src, "rb").read())
head = data[:data.index(b"\nend\n")].decode()
if where == "code":
    offset, size = map(int, re.search(r"\ncode\t(\d+)\t(\d+)", head).groups())
    at = offset + size // 2
else:
    fields = [l.split("\t") for l in head.split("\n") if l.startswith("weight\t")][-1]
    offset, size = int(fields[-2]), int(fields[-1])
    at = offset + size - 1
data[at] ^= 0xFF
open(dst, "wb").write(data)
