#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""libkeel.so exports Keel's public API and nothing else: every dynamic symbol it defines is a
keel_* function declared with KEEL_API in include/keel/, and every such declaration is exported.

Usage: check_symbols.py SOURCE_DIR LIBKEEL_SO. Exits 1 naming every difference."""
import glob
import os
import re
import subprocess
import sys

source, lib = sys.argv[1:3]
out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True, capture_output=True, text=True).stdout
exported = {line.split()[-1] for line in out.splitlines() if line.strip()}
declared = set()
for header in glob.glob(os.path.join(source, "include", "keel", "*.h")):
    with open(header) as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    for m in re.finditer(r"KEEL_API\s+[^;(]*?\b(keel_\w+)\s*\(", text):
        declared.add(m.group(1))

problems = []
for s in sorted(exported - declared):
    problems.append(f"exported but not declared with KEEL_API in include/keel/: {s}")
for s in sorted(declared - exported):
    problems.append(f"declared with KEEL_API but not exported: {s}")
for p in problems:
    print("symbols:", p)
print(f"symbols: {len(exported)} exported, {len(declared)} declared, {len(problems)} differences")
sys.exit(1 if problems or not exported else 0)
