#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The framework boundary (issue 11): the agent's services and identity layer are written against
include/keel/ alone, as a plugin author outside this tree would have to. Two checks:

1. In the build's compile_commands.json, no translation unit under services/ has one of core's
   folders (or observers/) on its include path: a service that includes a core header does not
   compile.
2. No file under services/ includes a header that exists only in core/ or observers/, whatever
   the include path says (a header by a relative path, or a copy of the include path by hand).
3. Inside core (issue 26), a room's state stays in its room: the headers that define it are
   included only by the files of the folders named below (the unit tests may look anywhere).

Usage: check_boundary.py SOURCE_DIR BUILD_DIR. Exits 1 naming every offence."""
import json
import os
import re
import shlex
import sys

source, build = (os.path.realpath(p) for p in sys.argv[1:3])
private = [os.path.join(source, d) for d in ("core", "observers")]
offences = []


def inside(path, roots):
    path = os.path.realpath(path)
    return any(path == r or path.startswith(r + os.sep) for r in roots)


with open(os.path.join(build, "compile_commands.json")) as f:
    commands = json.load(f)
# The agent's own targets; the unit tests that compile a service's files may see more.
services = [c for c in commands if inside(c["file"], [os.path.join(source, "services")]) and
            re.search(r"CMakeFiles/keel-(services|identity)\.dir/", c.get("output", "") + c.get("command", ""))]
if not services:
    offences.append("no translation unit of services/ in compile_commands.json: is the build configured?")
for c in services:
    args = shlex.split(c["command"]) if "command" in c else c["arguments"]
    for i, a in enumerate(args):
        d = a[2:] if a.startswith("-I") and len(a) > 2 else args[i + 1] if a in ("-I", "-isystem", "-iquote") else None
        if d and inside(os.path.join(c["directory"], d), private):
            offences.append(f"{os.path.relpath(c['file'], source)} is compiled with {d} on its include path")

core_headers = {n for root in private for _, _, files in os.walk(root) for n in files if n.endswith(".h")}
for dirpath, _, files in os.walk(os.path.join(source, "services")):
    for name in files:
        if not name.endswith((".c", ".h")):
            continue
        path = os.path.join(dirpath, name)
        own = {n for n in os.listdir(dirpath)} | set(os.listdir(os.path.join(source, "services", "identity")))
        with open(path, errors="replace") as f:
            for number, line in enumerate(f, 1):
                m = re.match(r'\s*#\s*include\s*[<"]([^>"]+)[>"]', line)
                if not m:
                    continue
                inc = m.group(1)
                base = os.path.basename(inc)
                if ".." in inc or inside(os.path.join(dirpath, inc), private) or (base in core_headers and base not in own
                                                                                  and not inc.startswith("keel/")):
                    offences.append(f"{os.path.relpath(path, source)}:{number}: includes {inc}, a header of core")

# A room's private state: the header, and the folders whose files may include it.
ROOM_HEADERS = {
    "app-state-internal.h": ("core/app",),
    "observer-internal.h": ("core/app", "core/machine", "observers"),
    "app-metrics-internal.h": ("core/telemetry", "core/machine", "core/app"),
    "settings-internal.h": ("core/config", "core/app", "core/http"),
    "config-load-internal.h": ("core/config",),
    "work-shards-internal.h": ("core/work",),
}
for root in private:
    for dirpath, _, files in os.walk(root):
        room = os.path.relpath(dirpath, source)
        for name in files:
            if not name.endswith((".c", ".h")):
                continue
            with open(os.path.join(dirpath, name), errors="replace") as f:
                for number, line in enumerate(f, 1):
                    m = re.match(r'\s*#\s*include\s*"([^"]+)"', line)
                    allowed = ROOM_HEADERS.get(os.path.basename(m.group(1))) if m else None
                    if allowed and room not in allowed:
                        offences.append(f"{room}/{name}:{number}: includes {m.group(1)}, which only {', '.join(allowed)} may")

for o in offences:
    print("boundary:", o)
print(f"boundary: {len(services)} translation units of services/ checked, {len(offences)} offences")
sys.exit(1 if offences else 0)
