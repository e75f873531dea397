#!/usr/bin/env python3
"""Turns a file into a C header with one string constant: embed.py IN OUT NAME."""
import sys

src, dst, name = sys.argv[1:4]
data = open(src, "rb").read()
with open(dst, "w") as f:
    f.write(f"/* Generated from {src.rsplit('/', 1)[-1]} by embed.py; do not edit. */\n")
    f.write(f"static const char {name}[] =\n")
    for i in range(0, len(data), 64):
        chunk = data[i:i + 64]
        f.write('\t"' + "".join(f"\\x{b:02x}" for b in chunk) + '"\n')
    f.write(";\n")
