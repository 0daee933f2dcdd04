#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""libkeel.so's exported ABI is the committed baseline, tests/abi/libkeel.abi: libabigail's abidw
describes the built library (its exported functions and the public types they reach, from
include/keel/), and abidiff compares the two. Any change — a function added, removed or given
another signature, a public struct's layout — fails until it is made a deliberate, reviewed edit
of the baseline (`make abi-baseline`), with the SONAME raised for an incompatible one.

Usage: check_abi.py SOURCE_DIR LIBKEEL_SO [--write]. Exits 1 with abidiff's report."""
import os
import shutil
import subprocess
import sys
import tempfile

source, lib = sys.argv[1:3]
baseline = os.path.join(source, "tests", "abi", "libkeel.abi")
if not shutil.which("abidw"):
    sys.exit("abi: abidw is missing: abigail-tools, which `make deps` installs")


def describe(path):
    subprocess.run(["abidw", "--no-corpus-path", "--no-comp-dir-path", "--headers-dir", os.path.join(source, "include", "keel"),
                    "--drop-private-types", "--out-file", path, lib], check=True)


if sys.argv[3:] == ["--write"]:
    describe(baseline)
    print(f"abi: wrote {baseline}")
    sys.exit(0)
with tempfile.TemporaryDirectory() as tmp:
    now = os.path.join(tmp, "libkeel.abi")
    describe(now)
    p = subprocess.run(["abidiff", baseline, now], capture_output=True, text=True)
print(p.stdout, end="")
print(p.stderr, end="", file=sys.stderr)
if p.returncode != 0:
    incompatible = p.returncode & 8
    print(f"abi: libkeel.so's ABI differs from tests/abi/libkeel.abi (abidiff status {p.returncode}"
          f"{', incompatible' if incompatible else ''}). If the change is meant, run `make abi-baseline`, review and commit "
          f"the baseline{', and raise the SONAME (project VERSION major)' if incompatible else ''}.")
    sys.exit(1)
print("abi: libkeel.so matches tests/abi/libkeel.abi")
