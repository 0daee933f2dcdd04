#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Where exec to READY=1 goes before keel's first trace record, against the floor program: each
started RUNS times in turn with tests/bench/exec-stamps.c preloaded (stamps on CLOCK_MONOTONIC),
medians in ms from posix_spawn(). The floor reaches its first constructor (the loader done with
libsystemd and its six libraries) and READY=1; keel its first constructor, the agent's dlopen()
(libcrypto, libjansson), keel_app_new(), keel_app_run_with(), its first trace record and READY=1,
on a state directory made by a first run.
Usage: exec_split.py BUILD [RUNS]"""

import os
import re
import signal
import socket
import statistics
import sys
import tempfile
import time


def one(argv, env, sock, trace):
    r, w = os.pipe()
    null = os.open(os.devnull, os.O_WRONLY)
    t0 = time.monotonic_ns() / 1e6
    pid = os.posix_spawn(argv[0], argv, env, file_actions=[(os.POSIX_SPAWN_DUP2, w, 2), (os.POSIX_SPAWN_DUP2, null, 1)])
    os.close(w)
    os.close(null)
    sock.settimeout(10)
    while b"READY=1" not in sock.recv(4096):
        pass
    row = {"READY=1": time.monotonic_ns() / 1e6 - t0}
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        err = f.read()
    for m in re.finditer(r"STAMP (\S+) ([\d.]+)(?: ([\d.]+))?", err):
        name, a, b = m.group(1), float(m.group(2)), m.group(3)
        row[name if name != "dlopen" else "dlopen begins"] = a - t0
        if b:
            row["dlopen ends"] = float(b) - t0
    if trace and os.path.exists(trace):
        with open(trace) as f:
            stamps = [int(x) for x in re.findall(r'"ts":(\d+)', f.read())]
        if stamps:
            row["first trace record"] = min(stamps) / 1000 - t0
    return row


def main():
    build, runs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 20
    d = tempfile.mkdtemp(prefix="keel-exec-split-")
    path = os.path.join(d, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    trace = os.path.join(d, "trace.json")
    env = dict(os.environ, NOTIFY_SOCKET=path, KEEL_STATE_DIR=os.path.join(d, "state"), KEEL_DEFAULTS_FILE="/nonexistent",
               KEEL_TOKEN_ADDRESS="127.0.0.1:0", KEEL_METRICS_ADDRESS="127.0.0.1:0", KEEL_HEALTHCHECK_ADDRESS="127.0.0.1:0",
               LD_PRELOAD=os.path.join(build, "tests", "libexec-stamps.so"))
    floor = [os.path.join(build, "tests", "floor")]
    keel = [os.path.join(build, "keel"), "--trace", trace, "serve"]
    one(keel, env, sock, None)  # the first run makes the state directory
    rows = {"floor": [], "keel": []}
    for _ in range(runs):
        rows["floor"].append(one(floor, env, sock, None))
        rows["keel"].append(one(keel, env, sock, trace))
    for name, rs in rows.items():
        keys = [k for k in rs[0] if all(k in r for r in rs)]
        keys.sort(key=lambda k: statistics.median(r[k] for r in rs))
        print(f"{name}: " + ", ".join(f"{k} {statistics.median(r[k] for r in rs):.2f}" for k in keys))


if __name__ == "__main__":
    main()
